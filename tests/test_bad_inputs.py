"""Runs every case of tests/bad_inputs/cases.yml through the real roles'
argument specs and preflight asserts, in ONE playbook run: each case is a host
(connection local) carrying its bad variables. Each host must fail in the
preflight play, with a message naming the variable; a control host with the
defaults must pass. A case with `role` (an internal role, which site.yml does
not validate up front) runs through that role's preflight entry point in a
second play instead, next to a control host with valid input for it. The
plays only read (facts, df), so the run changes nothing.

Every host is this machine (connection local), so its facts are gathered once
and handed to every host through Ansible's own fact cache (jsonfile, smart
gathering): fact gathering for each of the ~150 hosts was most of the run's CPU.

The rest is per host-task cost (~6,000 of them, nearly all in forked workers),
cut without changing what runs: the Jinja plugins load once in the controller
(conftest: tools/ansible_plugins/callback/jinja_preload.py), and PERF_ENV below.
"""
import json
import re
import shutil

import pytest
import yaml

from conftest import ROOT, run_playbook_failures, run_playbook_json

CASES = yaml.safe_load((ROOT / "tests" / "bad_inputs" / "cases.yml").read_text())
# Valid input of the internal roles, for their control hosts.
INTERNAL_VALID = {
    "artifact": {"artifact_name": "svc", "artifact_binaries": ["svc"], "artifact_method": "package",
                 "artifact_package": "prometheus", "artifact_flags_file": "/etc/default/prometheus",
                 "artifact_args": ["--web.listen-address=127.0.0.1:9090"], "artifact_notify": ["Restart svc"]},
}
# INJECT_FACT_VARS=False: the roles read facts only as ansible_facts[...] (as
# ansible-core 2.20 requires), so the ~100 facts are not also copied into
# top-level ansible_* variables for each of the ~6,000 host-tasks; a role that
# used such a variable would now fail here instead of passing silently.
# PIPELINING: the local connection runs each module (df, ss, ...) through one
# interpreter's stdin instead of a temporary file and four extra shell commands.
PERF_ENV = {"ANSIBLE_INJECT_FACT_VARS": "False", "ANSIBLE_PIPELINING": "True"}
INTERNAL_PLAYBOOK = """
- name: Validate the site's input
  ansible.builtin.import_playbook: {preflight}

- name: Run the internal roles' preflight
  hosts: internal
  gather_facts: false
  tasks:
    - name: Run the role's preflight
      ansible.builtin.include_role:
        name: "{{{{ bad_input_role }}}}"
        tasks_from: preflight
"""


def test_case_ids_are_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def preflight_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    hosts = {"control_valid": {"ansible_connection": "local"}}
    internal = {f"control_valid_{role}": {"ansible_connection": "local", "bad_input_role": role, **valid}
                for role, valid in INTERNAL_VALID.items()}
    for case in CASES:
        if "role" in case:
            internal[case["id"]] = {"ansible_connection": "local", "bad_input_role": case["role"], **case["vars"]}
        else:
            hosts[case["id"]] = {"ansible_connection": "local", **case["vars"]}
    # Loose group-level thresholds let the control host pass on a small CI
    # disk; the cases' host vars override them.
    inventory = {"all": {"children": {
        "obs_central": {"hosts": hosts, "vars": {"common_min_free_disk_gb": 0, "common_min_memory_mb": 0}},
        "internal": {"hosts": internal}}}}

    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    playbook = tmp / "preflight.yml"
    playbook.write_text(INTERNAL_PLAYBOOK.format(preflight=ROOT / "playbooks" / "preflight.yml"))
    (tmp / ".vault-pass").write_text("test-only-vault-password\n")
    cache_env = share_facts(tmp, ["control_valid", *hosts, *internal])
    return run_playbook_failures(playbook, inv, 1800, "--check",
                                 ANSIBLE_VAULT_PASSWORD_FILE=str(tmp / ".vault-pass"), **cache_env, **PERF_ENV)


FACTS_PLAYBOOK = """
- name: Gather this machine's facts once
  hosts: all
  gather_facts: true
  tasks: []
"""


def share_facts(tmp, hosts):
    """Gathers the facts of one local host into a jsonfile fact cache and gives
    every host a copy of that entry; returns the environment under which
    ansible-playbook reads the cache instead of gathering again."""
    cache = tmp / "facts"
    env = {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache), "ANSIBLE_GATHERING": "smart"}
    (tmp / "facts.yml").write_text(FACTS_PLAYBOOK)
    (tmp / "facts-inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"facts_source": {"ansible_connection": "local"}}}}))
    result = run_playbook_json(tmp / "facts.yml", tmp / "facts-inventory.yml", 300, **env)
    assert result["stats"]["facts_source"]["failures"] == 0, result["stats"]
    (entry,) = cache.iterdir()
    prefix = entry.name[: -len("facts_source")]
    for host in set(hosts):
        shutil.copyfile(entry, cache / f"{prefix}{host}")
    return env


@pytest.mark.parametrize("host", ["control_valid"] + [f"control_valid_{r}" for r in INTERNAL_VALID])
def test_control_host_with_valid_input_passes(preflight_results, host):
    stats, failures = preflight_results
    assert host not in failures, failures.get(host)
    assert stats[host]["failures"] == 0


def test_every_internal_case_names_a_role_with_a_control_host():
    assert {c["role"] for c in CASES if "role" in c} <= set(INTERNAL_VALID)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_rejected_naming_the_variable(case, preflight_results):
    stats, failures = preflight_results
    assert case["id"] in failures, f"{case['id']} was accepted: {case['vars']}"
    assert stats[case["id"]]["changed"] == 0
    message = json.loads(failures[case["id"]]) if failures[case["id"]].startswith('"') else failures[case["id"]]
    assert re.search(case["expect"], message), message
