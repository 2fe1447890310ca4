"""The test containers' pipelining connection (tools/ansible_plugins/connection/podman.py).

It builds on the containers.podman collection's plugin: when an upgrade of the
collection changes what it builds on (its options, or the source of the
methods it inherits or replaces), these tests fail, naming what to review.
With podman and the test image on the machine, a real container proves the
mechanism: a module task costs one `podman exec --interactive`, files still
copy both ways, and with pipelining off the collection's path still works.
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


def test_a_module_task_is_one_interactive_exec(tmp_path, container):
    calls = run_through_plugin(tmp_path, container, "podman")
    execs = [c for c in calls if c.startswith("exec")]
    interactive = [c for c in execs if c.startswith("exec --interactive")]
    # 10 command tasks + copy (stat, copy) + fetch (stat): pipelined modules only.
    assert len(interactive) >= 12, calls
    assert len(interactive) <= 14, calls
    # The filesystem is mounted only once, for the file transfers.
    assert len([c for c in calls if c.startswith("mount")]) <= 2, calls
    print(f"pipelined: {len(calls)} podman calls for 12 tasks")


def test_without_pipelining_the_collections_path_still_works(tmp_path, container):
    calls = run_through_plugin(tmp_path, container, "podman", ANSIBLE_PIPELINING="false")
    assert not [c for c in calls if c.startswith("exec --interactive")], calls
    # The module files are copied in and run: far more calls per task.
    assert len(calls) > 40, calls
    print(f"not pipelined: {len(calls)} podman calls for 12 tasks")
