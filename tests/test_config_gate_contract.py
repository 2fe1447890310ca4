"""Every service role's configure phase goes through the one health gate with
rollback (roles/config_gate): its config files keep a backup and are handed to
the gate, its handlers never fail the host before the gate can roll back, and
no role keeps its own "flush handlers + wait" tail."""
import pytest

from conftest import ROOT, load_yaml

GATED = ["prometheus", "alertmanager", "node_exporter", "loki", "grafana", "nginx"]
FILE_MODULES = {"ansible.builtin.template", "ansible.builtin.copy"}


def tasks(role, name):
    path = ROOT / "roles" / role / "tasks" / f"{name}.yml"
    return (load_yaml(path) or []) if path.exists() else []


def flat(items):
    for task in items:
        yield task
        for key in ("block", "rescue", "always"):
            yield from flat(task.get(key, []))


def gate_includes(role):
    return [t for t in flat(tasks(role, "configure"))
            if (t.get("ansible.builtin.include_role") or {}).get("name") == "config_gate"]


def gate_inputs(include):
    v = include.get("vars", {})
    return str(v.get("config_gate_files", [])) + str(v.get("config_gate_restart_files", []))


def test_the_gate_is_an_internal_role():
    meta = load_yaml(ROOT / "roles" / "config_gate" / "meta" / "main.yml")
    assert meta["galaxy_info"]["internal"] is True
    spec = load_yaml(ROOT / "roles" / "config_gate" / "meta" / "argument_specs.yml")["argument_specs"]["main"]
    assert spec["options"]["config_gate_service"]["required"]
    assert spec["options"]["config_gate_health_url"]["required"]


@pytest.mark.parametrize("role", GATED)
def test_configure_goes_through_the_gate(role):
    includes = gate_includes(role)
    assert len(includes) == 1, f"{role}/tasks/configure.yml must include config_gate once"
    v = includes[0]["vars"]
    # The unit and the health endpoint are the registry's (roles/obs), which
    # config_gate sees through its obs dependency: no per-role copy of them.
    assert v["config_gate_service"] == "{{ obs_registry.%s.unit }}" % role, role
    assert v["config_gate_health_url"] == "{{ obs_registry.%s.health_url }}" % role, role
    assert v["config_gate_name"] == role, role
    facts = [t["ansible.builtin.set_fact"] for t in flat(tasks(role, "configure")) if "ansible.builtin.set_fact" in t]
    assert not any("health_url" in str(f) for f in facts), f"{role}: a health URL shim is back"
    assert v.get("config_gate_apply", "reloaded") in ("reloaded", "restarted")


def test_the_gate_sees_the_stack_facts():
    meta = load_yaml(ROOT / "roles" / "config_gate" / "meta" / "main.yml")
    assert {"role": "obs"} in meta["dependencies"]


@pytest.mark.parametrize("role", GATED)
def test_no_own_flush_and_wait_tail(role):
    for phase in ("install", "configure"):
        for t in flat(tasks(role, phase)):
            assert "ansible.builtin.meta" not in t, f"{role}/{phase}: {t.get('name')}: the gate flushes the handlers"


def service_handlers(role):
    """Names of the handlers that reload or restart the role's service."""
    return {h["name"] for h in load_yaml(ROOT / "roles" / role / "handlers" / "main.yml") or []
            if (h.get("ansible.builtin.systemd_service") or {}).get("state") in ("reloaded", "restarted")}


@pytest.mark.parametrize("role", GATED)
def test_notifying_config_files_keep_a_backup_and_reach_the_gate(role):
    """A file whose change reloads or restarts the service is what the gate
    restores: it keeps a backup and its registered result is handed over."""
    inputs = gate_inputs(gate_includes(role)[0])
    handlers = service_handlers(role)
    assert handlers, role
    for phase in ("install", "configure"):
        for t in flat(tasks(role, phase)):
            include = t.get("ansible.builtin.include_role") or {}
            if include.get("name") == "artifact":
                # The flags file and the unit are written by roles/artifact.
                assert "artifact_unit_file" in inputs, f"{role}: artifact's unit is not passed to config_gate"
                if t["vars"].get("artifact_flags_file"):
                    assert "artifact_flags_written" in inputs, f"{role}: artifact's flags file is not passed to config_gate"
                assert set([t["vars"]["artifact_notify"]] if isinstance(t["vars"]["artifact_notify"], str)
                           else t["vars"]["artifact_notify"]) <= handlers, role
                continue
            module = next((m for m in FILE_MODULES if m in t), None)
            notify = t.get("notify") or []
            notify = [notify] if isinstance(notify, str) else notify
            if module is None or not set(notify) & handlers:
                continue
            assert t[module].get("backup"), f"{role}/{phase}: {t['name']} needs backup for the rollback"
            assert t.get("register"), f"{role}/{phase}: {t['name']} must register its result for the gate"
            assert t["register"] in inputs, f"{role}/{phase}: {t['name']}: {t['register']} is not passed to config_gate"


@pytest.mark.parametrize("role", GATED + ["tls"])
def test_service_handlers_leave_the_decision_to_the_gate(role):
    for h in load_yaml(ROOT / "roles" / role / "handlers" / "main.yml") or []:
        if "ansible.builtin.systemd_service" in h and h["ansible.builtin.systemd_service"].get("state"):
            assert h.get("failed_when") is False, f"{role}: handler {h['name']} must not fail the host"
            assert h.get("register"), f"{role}: handler {h['name']} must register its result"
