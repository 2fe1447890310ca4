"""The stack's alert rules (templates/prometheus/rules/*.yml) are well-formed
and covered by promtool unit tests (tests/promtool/*.yml).

`promtool test rules` itself runs in the metrics Molecule scenario, inside the
container with Debian's promtool, so it always runs in CI. Here it runs too
when promtool is on the PATH of the machine running pytest; otherwise that one
test is skipped (and says so)."""
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, load_yaml

RULES_DIR = ROOT / "templates" / "prometheus" / "rules"
TESTS_DIR = ROOT / "tests" / "promtool"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))


def alerts():
    out = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out.append((path.name, rule))
    return out


ALERTS = alerts()


def test_there_are_rules_and_tests():
    assert RULE_FILES and TEST_FILES and ALERTS


@pytest.mark.parametrize("rule", [r for _, r in ALERTS], ids=[r["alert"] for _, r in ALERTS])
def test_alert_has_severity_summary_and_runbook(rule):
    assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, "severity label critical|warning"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary"), "summary annotation"
    assert re.match(r"^docs/runbook\.md#[a-z0-9_-]+$", annotations.get("runbook_url", "")), "runbook_url docs/runbook.md#<anchor>"


def test_alert_names_are_unique():
    names = [r["alert"] for _, r in ALERTS]
    assert len(names) == len(set(names))


def test_every_alert_has_a_unit_test_that_expects_it_to_fire():
    fired = set()
    for path in TEST_FILES:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    untested = sorted({r["alert"] for _, r in ALERTS} - fired)
    assert not untested, f"alerts without a firing promtool test: {untested}"


def test_every_rule_file_is_under_test():
    referenced = set()
    for path in TEST_FILES:
        for rule_file in load_yaml(path)["rule_files"]:
            referenced.add((path.parent / rule_file).resolve())
    assert {p.resolve() for p in RULE_FILES} <= referenced


def test_runbook_anchors_file_lists_every_anchor_used():
    listed = (ROOT / "templates" / "prometheus" / "RUNBOOK_ANCHORS.txt").read_text()
    used = {r["annotations"]["runbook_url"] for _, r in ALERTS}
    assert all(url in listed for url in used), sorted(u for u in used if u not in listed)


def test_promtool_unit_tests():
    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIP promtool not on PATH: `promtool test rules` runs in molecule/metrics verify instead")
        pytest.skip("promtool not on PATH; molecule/metrics runs the unit tests in the container")
    check = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([promtool, "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
