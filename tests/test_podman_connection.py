"""The test containers' pipelining connection (tools/ansible_plugins/connection/podman.py).

It builds on the containers.podman collection's plugin: when an upgrade of the
collection changes what it builds on (its options, or the source of the
methods it inherits or replaces), these tests fail, naming what to review.
With podman and the test image on the machine, a real container proves the
mechanism: module tasks go through the exec server the plugin starts once in
the container (no podman call each), the server runs a command as `podman
exec` would (environment, directory, exit codes, stdin, stderr), it is started
again when it is gone, a command it dropped fails instead of running twice;
with the server off a module task is one `podman exec --interactive`, files
still copy both ways, and with pipelining off the collection's path still works.
"""
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PLUGIN_DIR = ROOT / "tools" / "ansible_plugins" / "connection"
IMAGE = "localhost/obs-test:bookworm"

# SHA-256 (first 16 hex digits) of the source of each method of the
# collection's Connection that the project's plugin inherits or replaces, as
# reviewed for containers.podman 1.18.0. A change means: read the new code,
# adapt tools/ansible_plugins/connection/podman.py, then update the digest.
REVIEWED_SOURCES = {
    "__init__": "b72843db2fbd67b8",
    "_podman": "fd9dc6a794598448",
    "_connect": "a623e0fbd9a5d228",
    "exec_command": "1ef936d6a99fc81a",
    "put_file": "80e3a144d658b324",
    "fetch_file": "4dd1a964abda125e",
    "close": "5a3aa9d0945029c6",
}


def collection_connection():
    from ansible_collections.containers.podman.plugins.connection import podman

    return podman


def project_connection():
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("obs_podman_connection", PLUGIN_DIR / "podman.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(PLUGIN_DIR))


def source_digest(func):
    return hashlib.sha256(textwrap.dedent(inspect.getsource(func)).encode()).hexdigest()[:16]


def test_options_are_the_collections_plus_pipelining():
    theirs = yaml.safe_load(collection_connection().DOCUMENTATION)["options"]
    ours = yaml.safe_load(project_connection().DOCUMENTATION)["options"]
    assert ours.pop("pipelining")["default"] is True
    assert ours.pop("exec_server")["default"] is True
    assert ours == theirs, "containers.podman changed its connection options: mirror them in podman.py"


def test_collection_methods_are_the_reviewed_ones():
    klass = collection_connection().Connection
    changed = {name: source_digest(getattr(klass, name)) for name in REVIEWED_SOURCES
               if source_digest(getattr(klass, name)) != REVIEWED_SOURCES[name]}
    assert not changed, (
        f"containers.podman changed Connection methods the pipelining plugin builds on: {changed}; "
        "review tools/ansible_plugins/connection/podman.py, then update REVIEWED_SOURCES")


def test_the_collection_still_does_not_pipeline():
    # If it ever does, the project's plugin is no longer needed.
    assert collection_connection().Connection.has_pipelining is False
    assert project_connection().Connection.has_pipelining is True


# ---------------------------------------------------------------- real container
def podman_ready():
    if not shutil.which("podman"):
        return "podman is not installed (make apt)"
    if subprocess.run(["podman", "image", "exists", IMAGE]).returncode != 0:
        return f"no test image {IMAGE} (make image)"
    return ""


@pytest.fixture(scope="module")
def container():
    reason = podman_ready()
    if reason:
        print(f"SKIP: real-container connection tests: {reason}")
        pytest.skip(reason)
    name = f"obs-pytest-connection-{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "run", "--detach", "--name", name, "--systemd=always", "--privileged",
                    "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024", IMAGE, "/sbin/init"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["podman", "exec", name, "systemctl", "is-system-running", "--wait"], capture_output=True)
        yield name
    finally:
        subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True)


PLAYBOOK = """
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Ten module tasks
      ansible.builtin.command: "echo {{ item }}"
      loop: "{{ range(10) | list }}"
      changed_when: false
    - name: Copy content in
      ansible.builtin.copy:
        content: "{{ marker }}\\n"
        dest: /tmp/obs-connection-test
        mode: "0600"
    - name: Fetch it back
      ansible.builtin.fetch:
        src: /tmp/obs-connection-test
        dest: "{{ fetch_dir }}/"
        flat: true
"""


def run_through_plugin(tmp_path, container, connection, **env):
    """Runs PLAYBOOK through `connection`, with podman wrapped by a script that
    logs each call's arguments (the real podman does the work)."""
    calls = tmp_path / "podman-calls.log"
    wrapper = tmp_path / "podman-logging"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\nexec {shutil.which("podman")} "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    marker = uuid.uuid4().hex
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_CONNECTION_PLUGINS=str(PLUGIN_DIR),
                   ANSIBLE_PODMAN_EXECUTABLE=str(wrapper), **env)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", f"{container},", "-c", connection,
         "-e", f"marker={marker}", "-e", f"fetch_dir={tmp_path}", "-e", "ansible_python_interpreter=/usr/bin/python3",
         str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=run_env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (tmp_path / "obs-connection-test").read_text() == marker + "\n"
    return calls.read_text().splitlines()


def test_module_tasks_go_through_the_exec_server(tmp_path, container):
    stop_exec_server(container)
    calls = run_through_plugin(tmp_path, container, "podman")
    # The server's start (a mount, one exec with its source on stdin), then
    # every module and file transfer without podman.
    assert [c.split()[0] for c in calls] == ["mount", "exec"], calls
    assert "ansible-podman-exec" in calls[1], calls
    # The log grows across runs: the second run's calls are the new lines.
    again = run_through_plugin(tmp_path, container, "podman")[len(calls):]
    assert again == [], again
    print("exec server: 2 podman calls for 12 tasks, then 0 for the next 12")


def test_a_module_task_is_one_interactive_exec(tmp_path, container):
    calls = run_through_plugin(tmp_path, container, "podman", ANSIBLE_PODMAN_EXEC_SERVER="false")
    execs = [c for c in calls if c.startswith("exec")]
    interactive = [c for c in execs if c.startswith("exec --interactive")]
    # 10 command tasks + copy (stat, copy) + fetch (stat): pipelined modules only.
    assert len(interactive) >= 12, calls
    assert len(interactive) <= 14, calls
    # The filesystem is mounted only once, for the file transfers.
    assert len([c for c in calls if c.startswith("mount")]) <= 2, calls
    print(f"pipelined: {len(calls)} podman calls for 12 tasks")


def test_without_pipelining_the_collections_path_still_works(tmp_path, container):
    calls = run_through_plugin(tmp_path, container, "podman", ANSIBLE_PIPELINING="false", ANSIBLE_PODMAN_EXEC_SERVER="false")
    assert not [c for c in calls if c.startswith("exec --interactive")], calls
    # The module files are copied in and run: far more calls per task.
    assert len(calls) > 40, calls
    print(f"not pipelined: {len(calls)} podman calls for 12 tasks")


# ---------------------------------------------------------------- exec server
# The bracket keeps the killing command's own command line from matching.
EXEC_SERVER_PATTERN = "[a]nsible-podman-exec/exec.sock"


def stop_exec_server(container):
    subprocess.run(["podman", "exec", container, "pkill", "-f", EXEC_SERVER_PATTERN], capture_output=True)


def plugin_connection(container, exec_server):
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader

    connection_loader.add_directory(str(PLUGIN_DIR))
    context = PlayContext()
    context.remote_addr = container
    conn = connection_loader.get("podman", context, None)
    assert conn.__class__.__doc__.startswith("containers.podman.podman that pipelines"), "not the project's plugin"
    conn.set_options(var_options={"ansible_host": container, "ansible_podman_exec_server": exec_server})
    return conn


PROCESS_VIEW = ("/bin/sh -c 'env | sort; pwd; umask; id; ulimit -n; ulimit -u; cat /proc/self/status | "
                "grep -E \"^(Cap|NoNewPrivs|Seccomp)\"; readlink /proc/1/ns/pid /proc/self/ns/pid /proc/self/ns/mnt "
                "/proc/self/ns/net; echo to-stderr >&2; exit 7'")


@pytest.mark.parametrize("command", [
    PROCESS_VIEW,
    "/bin/sh -c 'kill -9 $$'",            # killed by a signal: 137
    "/bin/sh -c 'exec 1>&-; echo x >&2'",  # stdout closed early
])
def test_exec_server_runs_a_command_as_podman_exec_does(container, command):
    through_server = plugin_connection(container, True).exec_command(command)
    through_podman = plugin_connection(container, False).exec_command(command)
    assert through_server == through_podman


def test_exec_server_feeds_stdin_and_reports_a_missing_command(container):
    conn = plugin_connection(container, True)
    data = os.urandom(3 << 20)
    rc, out, err = conn.exec_command("/bin/sh -c 'cat > /tmp/obs-stdin; sha256sum < /tmp/obs-stdin; wc -c < /tmp/obs-stdin'",
                                     in_data=data)
    assert rc == 0, err
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert out.split()[2] == str(len(data)).encode()
    rc, _, err = conn.exec_command("/no/such/command")
    assert rc == 127 and b"/no/such/command" in err


def test_exec_server_is_started_again_when_gone(container):
    conn = plugin_connection(container, True)
    assert conn.exec_command("true")[0] == 0
    stop_exec_server(container)
    rc, out, _ = conn.exec_command("/bin/sh -c 'echo back'")
    assert (rc, out) == (0, b"back\n")


def test_a_command_the_exec_server_dropped_fails_and_is_not_run_again(container):
    from ansible.errors import AnsibleConnectionFailure

    conn = plugin_connection(container, True)
    marker = f"/tmp/obs-dropped-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AnsibleConnectionFailure, match="went away"):
        conn.exec_command(f"/bin/sh -c 'echo ran >> {marker}; pkill -f \"{EXEC_SERVER_PATTERN}\"'")
    rc, out, _ = conn.exec_command(f"cat {marker}")
    assert (rc, out) == (0, b"ran\n")
