"""Shared fixtures: paths of the repository and its roles."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())


def load_yaml(path: Path):
    with path.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


# The Jinja plugins load once in the controller, not in every forked worker
# (tools/ansible_plugins/callback/jinja_preload.py).
JINJA_PRELOAD_ENV = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tools" / "ansible_plugins" / "callback"),
                     "ANSIBLE_CALLBACKS_ENABLED": "jinja_preload"}


def run_playbook_json(playbook: Path, inventory: Path, timeout: int, *args: str, **env: str):
    """Runs ansible-playbook with the JSON callback (one run, many hosts) and
    returns its parsed output."""
    run_env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                   ANSIBLE_FORKS="20", **JINJA_PRELOAD_ENV, **env)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook), *args],
        capture_output=True, text=True, cwd=ROOT, env=run_env, timeout=timeout,
    )
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def failures_of(result):
    """First failure message per host (as JSON text) of a JSON-callback run."""
    failures = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    failures.setdefault(host, json.dumps(res.get("msg", res)))
    return failures


def run_playbook_failures(playbook: Path, inventory: Path, timeout: int, *args: str, **env: str):
    """Runs ansible-playbook with the JSON callback (one run, many hosts) and
    returns (stats per host, first failure message per host as JSON text)."""
    result = run_playbook_json(playbook, inventory, timeout, *args, **env)
    return result["stats"], failures_of(result)


RENDER_PLAYBOOK = """
- name: Render the roles' templates with the roles' own variables
  hosts: all
  gather_facts: false
  tasks:
{loads}
    - name: Create the output directory
      ansible.builtin.file: {{path: "{{{{ out_dir }}}}/{{{{ inventory_hostname }}}}", state: directory, mode: "0755"}}
    - name: Render
      ansible.builtin.template:
        src: "{{{{ roles_dir }}}}/{{{{ item.role }}}}/templates/{{{{ item.src }}}}"
        dest: "{{{{ out_dir }}}}/{{{{ inventory_hostname }}}}/{{{{ item.src | regex_replace('\\\\.j2$', '') }}}}"
        mode: "0600"
      loop: {templates}
{extra}"""


def render_templates(tmp: Path, roles, templates, hosts, extra_tasks=""):
    """Renders templates ({role, src} items) of the roles with their variables,
    one host (connection local) per case of `hosts` ({name: vars}): each role's
    preflight runs first (public), so its defaults and vars, and obs's, are
    loaded and bad input fails there. Files land in <tmp>/out/<host>/ without
    the .j2. Returns (output directory, the run's JSON result)."""
    inventory = {"all": {"hosts": {name: {"ansible_connection": "local", **hv} for name, hv in hosts.items()},
                         "vars": {"out_dir": str(tmp / "out"), "roles_dir": str(ROOT / "roles")}}}
    loads = "\n".join(
        f"    - name: Load and check the {role} role's variables\n"
        f"      ansible.builtin.include_role: {{name: {role}, tasks_from: preflight, public: true}}"
        for role in roles)
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "render.yml").write_text(RENDER_PLAYBOOK.format(loads=loads, templates=json.dumps(templates), extra=extra_tasks))
    result = run_playbook_json(tmp / "render.yml", tmp / "inventory.yml", 600, ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    return tmp / "out", result
