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


def run_playbook_json(playbook: Path, inventory: Path, timeout: int, *args: str, **env: str):
    """Runs ansible-playbook with the JSON callback (one run, many hosts) and
    returns its parsed output."""
    run_env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                   ANSIBLE_FORKS="20", **env)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook), *args],
        capture_output=True, text=True, cwd=ROOT, env=run_env, timeout=timeout,
    )
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def run_playbook_failures(playbook: Path, inventory: Path, timeout: int, *args: str, **env: str):
    """Runs ansible-playbook with the JSON callback (one run, many hosts) and
    returns (stats per host, first failure message per host as JSON text)."""
    result = run_playbook_json(playbook, inventory, timeout, *args, **env)
    failures = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    failures.setdefault(host, json.dumps(res.get("msg", res)))
    return result["stats"], failures
