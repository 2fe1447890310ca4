"""Runs every case of tests/bad_inputs/cases.yml through the real roles'
argument specs and preflight asserts, in ONE playbook run: each case is a host
(connection local) carrying its bad variables. Each host must fail in the
preflight play, with a message naming the variable; a control host with the
defaults must pass. The play only reads (facts, df), so the run changes nothing.
"""
import json
import re

import pytest
import yaml

from conftest import ROOT, run_playbook_failures

CASES = yaml.safe_load((ROOT / "tests" / "bad_inputs" / "cases.yml").read_text())


def test_case_ids_are_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def preflight_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    hosts = {"control_valid": {"ansible_connection": "local"}}
    for case in CASES:
        hosts[case["id"]] = {"ansible_connection": "local", **case["vars"]}
    # Loose group-level thresholds let the control host pass on a small CI
    # disk; the cases' host vars override them.
    inventory = {"all": {"children": {"obs_central": {
        "hosts": hosts, "vars": {"common_min_free_disk_gb": 0, "common_min_memory_mb": 0}}}}}

    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    (tmp / ".vault-pass").write_text("test-only-vault-password\n")
    return run_playbook_failures(ROOT / "playbooks" / "preflight.yml", inv, 1800, "--check",
                                 ANSIBLE_VAULT_PASSWORD_FILE=str(tmp / ".vault-pass"))


def test_control_host_with_valid_input_passes(preflight_results):
    stats, failures = preflight_results
    assert "control_valid" not in failures, failures.get("control_valid")
    assert stats["control_valid"]["failures"] == 0


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_rejected_naming_the_variable(case, preflight_results):
    stats, failures = preflight_results
    assert case["id"] in failures, f"{case['id']} was accepted: {case['vars']}"
    assert stats[case["id"]]["changed"] == 0
    message = json.loads(failures[case["id"]]) if failures[case["id"]].startswith('"') else failures[case["id"]]
    assert re.search(case["expect"], message), message
