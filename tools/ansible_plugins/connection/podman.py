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
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as CollectionConnection


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
        return self._podman(exec_args, cmd_args, in_data)

    def put_file(self, in_path, out_path):
        self._mounted()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mounted()
        super().fetch_file(in_path, out_path)
