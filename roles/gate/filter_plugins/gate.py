"""Filters of the release gate (roles/gate): they turn what the gate's tasks
read on the server into PASS/FAIL/SKIP checks, and the checks into the
weighted verdict of the report.

* ``unit_results | gate_units`` -> {component: {LoadState, ActiveState, ExecStart}} (systemd_service results)
* ``exec_start | gate_loki_validate`` -> the `loki -verify-config` command of a unit
* ``data | gate_server_checks`` -> the server-side checks (P0-1, P1-1, P1-2, P1-3, P1-5)
* ``checks | gate_summary(weights, items, threshold)`` -> the verdict, score and matrix
"""
from __future__ import annotations

import calendar
import json
import re

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


def _check(check_id, item, check, status, detail):
    return {"id": check_id, "item": item, "check": check, "status": status, "detail": detail}


def _by_component(results):
    """Registered loop results (loop over gate_components | dict2items) by component."""
    return {r["item"]["key"]: r for r in results or [] if isinstance(r.get("item"), dict) and "key" in r["item"]}


def gate_units(results):
    """systemd_service results (no state asked: read-only) -> their unit properties."""
    units = {}
    for name, r in _by_component(results).items():
        status = r.get("status") or {}
        units[name] = {k: status.get(k, "") for k in ("LoadState", "ActiveState", "ExecStart")}
        units[name]["LoadState"] = units[name]["LoadState"] or "not-found"
    return units


def gate_loki_validate(exec_start):
    """ExecStart={ path=/usr/local/bin/loki ; argv[]=/usr/local/bin/loki -config.file=/etc/loki/config.yml ; ... }"""
    path = re.search(r"path=(\S+)", exec_start or "")
    config = re.search(r"-config\.file[= ](\S+)", exec_start or "")
    if not path or not config:
        return ""
    return f"{path.group(1)} -config.file={config.group(1)} -verify-config"


def _tail(text, lines=3):
    return " | ".join((text or "").strip().splitlines()[-lines:])


def _cmd(result):
    cmd = result.get("cmd") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _json(result):
    if not result or result.get("skipped"):
        return None
    if isinstance(result.get("json"), dict):
        return result["json"]
    try:
        return json.loads(result.get("content") or "")
    except ValueError:
        return None


def gate_server_checks(d):
    components = d["components"]
    skips = d.get("skips") or {}
    disabled_reasons = d.get("disabled_reasons") or {}
    units = d["units"]
    health = _by_component(d.get("health"))
    validate = _by_component(d.get("validate"))
    checks = []

    for name in d["services"]:
        unit = units.get(name, {})
        if not components.get(name):
            reason = "disabled in obs_components" + (f": {disabled_reasons[name]}" if name in disabled_reasons else "")
            checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", SKIP, reason))
            checks.append(_check(f"health-{name}", "P1-1", f"{name} is healthy", SKIP, reason))
            continue
        if name in skips:
            reason = f"skipped: {skips[name]}"
            checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", SKIP, reason))
            checks.append(_check(f"health-{name}", "P1-1", f"{name} is healthy", SKIP, reason))
            continue
        # Health first: a component without an offline validator is judged by
        # its service running with its config.
        h = health.get(name) or {}
        active = unit.get("ActiveState", "?")
        status = h.get("status", -1)
        ok = active == "active" and status == 200
        health_detail = (f"{d['services'][name]['unit']} {active}; {h.get('url', '?')} -> "
                         f"{status if status != -1 else h.get('msg', 'no answer')}")
        waited = (int(h.get("attempts", 1) or 1) - 1) * int(d.get("ready_poll", 2))
        if waited:
            health_detail += (f"; ready after waiting {waited} s" if ok
                              else f"; still not ready after waiting {waited} s")
        v = validate.get(name)
        if v is None or v.get("skipped"):
            if unit.get("LoadState") != "loaded":
                checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", FAIL,
                                     f"unit {d['services'][name]['unit']} is not installed (LoadState={unit.get('LoadState', '?')})"))
            else:
                checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", PASS if ok else FAIL,
                                     f"no offline validator: judged by the service running with it ({health_detail})"))
        elif v.get("rc") == 0:
            checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", PASS, f"`{_cmd(v)}` rc=0"))
        else:
            checks.append(_check(f"config-{name}", "P0-1", f"{name} config validates", FAIL,
                                 f"`{_cmd(v)}` rc={v.get('rc')}: {_tail(v.get('stderr') or v.get('stdout') or v.get('msg'))}"))
        checks.append(_check(f"health-{name}", "P1-1", f"{name} is healthy", PASS if ok else FAIL, health_detail))

    # Alerting (P1-2)
    if not components.get("prometheus") or "prometheus" in skips:
        checks.append(_check("alert-rules", "P1-2", "alert rules are loaded", SKIP, "Prometheus not checked here"))
    else:
        rules = _json(d.get("rules")) or {}
        groups = (rules.get("data") or {}).get("groups") or []
        all_rules = [r for g in groups for r in g.get("rules", []) if r.get("type") == "alerting"]
        broken = [r.get("name") for g in groups for r in g.get("rules", []) if r.get("health") == "err"]
        missing = [n for n in d.get("expected_alerts", []) if n not in {r.get("name") for r in all_rules}]
        ok = bool(all_rules) and not broken and not missing
        detail = f"{len(groups)} groups, {len(all_rules)} alerting rules"
        if broken:
            detail += f"; in error: {broken[:5]}"
        if missing:
            detail += f"; missing: {missing[:5]}"
        if not rules:
            detail = f"/api/v1/rules did not answer: {(d.get('rules') or {}).get('msg', '?')}"
        checks.append(_check("alert-rules", "P1-2", "alert rules are loaded", PASS if ok else FAIL, detail))
    if not components.get("alertmanager") or "alertmanager" in skips:
        checks.append(_check("alertmanager-reachable", "P1-2", "Alertmanager is reachable from Prometheus", SKIP,
                             "Alertmanager disabled in obs_components or skipped"))
    else:
        ams = _json(d.get("alertmanagers")) or {}
        active = [a.get("url") for a in (ams.get("data") or {}).get("activeAlertmanagers", [])]
        ready = (d.get("am_ready") or {}).get("status") == 200
        ok = ready and bool(active)
        checks.append(_check("alertmanager-reachable", "P1-2", "Alertmanager is reachable from Prometheus",
                             PASS if ok else FAIL,
                             f"Alertmanager /-/ready {(d.get('am_ready') or {}).get('status', 'no answer')}; "
                             f"Prometheus sends to {active or 'no Alertmanager'}"))

    # Backups (P1-3)
    b = d.get("backup") or {}
    if b.get("skipped"):
        checks.append(_check("backup-fresh", "P1-3", "newest backup is within its schedule", FAIL,
                             "the obs-backup tool is not installed"))
        checks.append(_check("backup-manifest", "P1-3", "newest archive matches its manifest", FAIL,
                             "the obs-backup tool is not installed"))
    elif b.get("rc") != 0:
        why = _tail(b.get("stderr") or b.get("stdout") or b.get("msg"))
        checks.append(_check("backup-fresh", "P1-3", "newest backup is within its schedule", FAIL, why or "no archive"))
        checks.append(_check("backup-manifest", "P1-3", "newest archive matches its manifest", FAIL, why or "no archive"))
    else:
        manifest = json.loads(b["stdout"])
        created = manifest.get("created", "")
        m = re.fullmatch(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z", created)
        if not m:
            checks.append(_check("backup-fresh", "P1-3", "newest backup is within its schedule", FAIL,
                                 f"manifest has no readable creation time ({created!r})"))
        else:
            epoch = calendar.timegm(tuple(int(x) for x in m.groups()) + (0, 0, 0))
            age_h = (d["now"] - epoch) / 3600
            ok = age_h <= d["backup_max_age_hours"]
            checks.append(_check("backup-fresh", "P1-3", "newest backup is within its schedule", PASS if ok else FAIL,
                                 f"{manifest.get('archive', '?').rsplit('/', 1)[-1]} is {age_h:.1f} h old "
                                 f"(limit {d['backup_max_age_hours']} h)"))
        comps = {k: v.get("status") if isinstance(v, dict) else v for k, v in manifest.get("components", {}).items()}
        checks.append(_check("backup-manifest", "P1-3", "newest archive matches its manifest", PASS,
                             f"{len(manifest.get('files', {}))} files match; components {comps}"))

    # Self-monitoring (P1-5)
    if not components.get("prometheus") or "prometheus" in skips:
        checks.append(_check("self-targets", "P1-5", "the stack's own targets are up", SKIP, "Prometheus not checked here"))
    else:
        targets = _json(d.get("targets")) or {}
        active = (targets.get("data") or {}).get("activeTargets", [])
        expected = [n for n in d["scraped"] if components.get(n) and n not in skips]
        by_job = {}
        for t in active:
            by_job.setdefault(t.get("labels", {}).get("job"), []).append(t.get("health"))
        bad = [f"{job}: {by_job.get(job) or 'no target'}" for job in expected
               if not by_job.get(job) or any(h != "up" for h in by_job[job])]
        skipped = [n for n in d["scraped"] if components.get(n) and n in skips]
        detail = ("; ".join(bad) if bad else f"up: {', '.join(expected)}")
        if skipped:
            detail += f"; not expected up ({', '.join(skipped)} skipped)"
        checks.append(_check("self-targets", "P1-5", "the stack's own targets are up", FAIL if bad else PASS, detail))
    return checks


def gate_summary(checks, weights, items, threshold):
    """Item status: FAIL if one of its checks fails, SKIP if all are skipped,
    else PASS. Score: weight of the passed items over the weight of the
    applicable (not skipped) ones. Verdict: FAIL on a failed P0 check or a score
    under the threshold, PASS when every P0 check passed, else INCOMPLETE."""
    matrix = []
    for item, title in items.items():
        mine = [c for c in checks if c["item"] == item]
        statuses = {c["status"] for c in mine}
        if FAIL in statuses:
            status = FAIL
        elif not mine or statuses == {SKIP}:
            status = SKIP
        else:
            status = PASS
        matrix.append({"item": item, "title": title, "weight": weights.get(item, 0), "status": status,
                       "passed": sum(c["status"] == PASS for c in mine),
                       "failed": sum(c["status"] == FAIL for c in mine),
                       "skipped": sum(c["status"] == SKIP for c in mine)})
    applicable = sum(m["weight"] for m in matrix if m["status"] != SKIP)
    earned = sum(m["weight"] for m in matrix if m["status"] == PASS)
    score = round(100.0 * earned / applicable, 1) if applicable else 0.0
    p0 = [c for c in checks if c["item"].startswith("P0")]
    if any(c["status"] == FAIL for c in p0) or score < threshold:
        verdict = FAIL
    elif p0 and all(c["status"] == PASS for c in p0):
        verdict = PASS
    else:
        verdict = "INCOMPLETE"
    return {"verdict": verdict, "score": score, "threshold": threshold, "matrix": matrix,
            "counts": {s: sum(c["status"] == s for c in checks) for s in (PASS, FAIL, SKIP)},
            "p0_skipped": [c["id"] for c in p0 if c["status"] == SKIP]}


def gate_line(check):
    """One line of the run's output per check."""
    return f"{check['status']:<4}  {check['item']}  {check['id']}: {check['check']} -- {check['detail']}"


class FilterModule:
    def filters(self):
        return {
            "gate_units": gate_units,
            "gate_loki_validate": gate_loki_validate,
            "gate_server_checks": gate_server_checks,
            "gate_summary": gate_summary,
            "gate_line": gate_line,
        }
