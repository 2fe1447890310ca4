"""The test runs' jinja_preload callback (tools/ansible_plugins/callback):
ansible-core reports an exception in a callback as a warning and goes on, so
a preload that broke after an upgrade would only make the suite slower.
This fails instead."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import JINJA_PRELOAD_ENV, ROOT

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.assert:
        that: "'a,b' | split(',') | length == 2"
"""


def test_preload_loads_without_a_warning(tmp_path):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", **JINJA_PRELOAD_ENV)
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-vvvv", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "jinja_preload: Jinja filters and tests loaded (xTrue)" in output, "the callback did not run"
    assert "Failure using method" not in output and "[WARNING]" not in output, output[-3000:]
