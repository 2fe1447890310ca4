# The test containers' connection: containers.podman.podman, with pipelining.
#
# Molecule's podman driver names the connection `podman`; with this directory
# in ANSIBLE_CONNECTION_PLUGINS (the Molecule base config and `make deploy`
# set it) that short name resolves to this file instead of the collection's
# plugin. Production inventories connect over SSH and never load it.
#
# Why: the collection's plugin sets has_pipelining = False and never passes
# --interactive to `podman exec`, so every module costs six podman calls
# (mount, `echo ~`, mkdir, put, chmod, exec, rm), about 0.16 s each. Here a
# module goes to the interpreter on stdin through `podman exec --interactive`:
# one call. The container's filesystem is mounted only when a file is really
# copied (copy, template, fetch), not on every task.
#
# Then even that one call goes: on its first command for a container, the
# plugin starts ../podman_exec_server.py in it (one `podman exec`), which
# listens on a unix socket inside the container's filesystem; the controller
# reaches that socket through the container's mount (podman mount) and every
# later command, from any worker or playbook, is a connection to it, without
# podman, conmon or runc. A command with a remote user other than the
# container's default, or any command when the server cannot be started (no
# python3 in the container yet), goes through `podman exec` as before.
#
# Everything else is the collection's code. tests/test_podman_connection.py
# fails when the collection's plugin changes under this one (options, or the
# source of the methods this file builds on): review this file then.
from __future__ import annotations

DOCUMENTATION = """
    name: podman
    short_description: Interact with an existing podman container, with pipelining
    description:
        - containers.podman.podman with pipelining (the module on stdin through
          C(podman exec --interactive)) and a filesystem mount only for file transfers.
        - The options are the collection plugin's, plus C(pipelining).
    options:
      remote_addr:
        description:
          - The ID of the container you want to access.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
            - User specified via name or UID which is used to execute commands inside the container. If you
              specify the user via UID, you must set C(ANSIBLE_REMOTE_TMP) to a path that exits
               inside the container and is writable by Ansible.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description:
          - Send modules on stdin instead of copying them into the container.
          - On by default, the reason this plugin exists; C(ANSIBLE_PIPELINING=false) turns it off.
        type: boolean
        default: true
        ini:
          - section: defaults
            key: pipelining
          - section: connection
            key: pipelining
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
      exec_server:
        description:
          - Run commands through an exec server started once in the container
            instead of one C(podman exec) each; C(ANSIBLE_PODMAN_EXEC_SERVER=false) turns it off.
        type: boolean
        default: true
        env:
          - name: ANSIBLE_PODMAN_EXEC_SERVER
        vars:
          - name: ansible_podman_exec_server
"""

import fcntl
import json
import os
import shlex
import socket
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.utils.display import Display
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as CollectionConnection


display = Display()

EXEC_SERVER_SOURCE = Path(__file__).resolve().parent.parent / "podman_exec_server.py"
# Inside the container: a path no role manages.
EXEC_SERVER_SOCKET = "/var/lib/ansible-podman-exec/exec.sock"


def exec_server_links_dir():
    """The controller's directory of links to each container's exec socket
    (the mount path is too long for a unix socket address)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ansible-podman-exec-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid != os.getuid() or path.stat().st_mode & 0o077:
        raise AnsibleConnectionFailure(f"{path} must be a directory of this user's only (mode 0700)")
    return path


def read_exactly(stream, count):
    data = stream.read(count)
    if len(data) != count:
        raise EOFError(f"{len(data)} of {count} bytes")
    return data


class Connection(CollectionConnection):
    """containers.podman.podman that pipelines and mounts lazily."""

    transport = "podman"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mount_tried = False

    def _connect(self):
        # The collection mounts the container's filesystem here, on every
        # task; only file transfers need it (_mounted below).
        ConnectionBase._connect(self)
        self._connected = True

    def _mounted(self):
        if not self._mount_tried:
            self._mount_tried = True
            # The exec server's link already names the mount: no podman call.
            link = self._exec_server_link()
            target = os.readlink(link) if os.path.islink(link) else ""
            mount = target[: -len(EXEC_SERVER_SOCKET)] if target.endswith(EXEC_SERVER_SOCKET) else ""
            if mount and os.path.exists(target):
                self._mount_point = to_bytes(mount, errors="surrogate_or_strict")
            else:
                super()._connect()

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        """Runs cmd in the container; in_data (a pipelined module) goes to its stdin."""
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        exec_args = ["exec"]
        if in_data is not None:
            exec_args.append("--interactive")
        if self.user:
            exec_args.extend(("--user", self.user))
        cmd_args = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        if not self.user and self.get_option("exec_server"):
            result = self._exec_through_server(cmd_args, in_data)
            if result is not None:
                return result
        return self._podman(exec_args, cmd_args, in_data)

    # ---------------------------------------------------------------- exec server
    def _exec_server_link(self):
        """The controller's link to this container's exec socket."""
        return exec_server_links_dir() / f"{self._container_id}.sock"

    def _exec_through_server(self, argv, in_data):
        """(rc, stdout, stderr) of argv run by the container's exec server, or
        None when there is no server and none can be started."""
        link = self._exec_server_link()
        for attempt in (1, 2):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(str(link))
                    header = {"argv": argv, "stdin": None if in_data is None else len(in_data)}
                    sock.sendall(json.dumps(header).encode() + b"\n" + (in_data or b""))
                    stream = sock.makefile("rb")
                    accepted = stream.readline() == b"+\n"
                except OSError:
                    accepted = False
                if not accepted:
                    # No server, a link into a container that is gone, or a
                    # server that went away before starting the command: the
                    # command never ran, it may be sent to a new server.
                    if attempt == 2 or not self._start_exec_server(link):
                        display.vvvv("exec server unavailable: podman exec", host=self._container_id)
                        return None
                    continue
                display.vvv(f"EXEC (exec server) {argv}", host=self._container_id)
                try:
                    reply = json.loads(stream.readline() or b"null")
                    if reply is None:
                        raise EOFError("no reply")
                    stdout = read_exactly(stream, reply["stdout"])
                    stderr = read_exactly(stream, reply["stderr"])
                except (EOFError, OSError) as exc:
                    # The command started and may have run: never run it twice.
                    raise AnsibleConnectionFailure(
                        f"the exec server in {self._container_id} went away during {argv[:3]}: {exc!r}") from exc
                return reply["rc"], stdout, stderr
        return None

    def _start_exec_server(self, link):
        """Starts the exec server in the container (once, whoever asks first)
        and points link at its socket; False when it cannot be started."""
        with open(f"{link}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(link))
                return True  # started meanwhile by another worker
            except OSError:
                pass
            rc, mount, stderr = self._podman("mount")
            mount = to_native(mount).strip()
            if rc != 0 or not mount or not os.path.isdir(mount):
                display.vvvv(f"cannot mount the container: {to_native(stderr)}", host=self._container_id)
                return False
            rc, _, stderr = self._podman(["exec", "--interactive"], ["env", "PYTHONCOERCECLOCALE=0", "python3", "-", EXEC_SERVER_SOCKET],
                                         EXEC_SERVER_SOURCE.read_bytes())
            if rc != 0:
                display.vvvv(f"cannot start the exec server (rc {rc}): {to_native(stderr)}", host=self._container_id)
                return False
            tmp = f"{link}.new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(mount + EXEC_SERVER_SOCKET, tmp)
            os.replace(tmp, link)
            return True

    def put_file(self, in_path, out_path):
        self._mounted()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mounted()
        super().fetch_file(in_path, out_path)
