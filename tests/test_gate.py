"""The release gate's logic (roles/gate): the verdict and score, the server-side
judgements, and the outside probe against a local TLS test edge (not nginx)
that behaves well or badly on purpose."""
from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ROOT, load_yaml

GATE = ROOT / "roles" / "gate"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = _load("gate_filters", GATE / "filter_plugins" / "gate.py")
ITEMS = load_yaml(GATE / "vars" / "main.yml")["gate_items"]
WEIGHTS = load_yaml(GATE / "defaults" / "main.yml")["gate_weights"]


def check(item, status, check_id=None):
    return {"id": check_id or f"{item}-{status}", "item": item, "check": "c", "status": status, "detail": "d"}


# ------------------------------------------------------------------ verdict
def test_weights_cover_every_item_and_sum_to_100():
    assert set(WEIGHTS) == set(ITEMS)
    assert sum(WEIGHTS.values()) == 100


def test_all_passed_is_pass_with_full_score():
    s = gate.gate_summary([check(i, "PASS") for i in ITEMS], WEIGHTS, ITEMS, 80)
    assert (s["verdict"], s["score"]) == ("PASS", 100.0)


def test_one_failed_p0_check_fails_whatever_the_score():
    checks = [check(i, "PASS") for i in ITEMS] + [check("P0-3", "FAIL", "cors-denied")]
    s = gate.gate_summary(checks, WEIGHTS, ITEMS, 80)
    assert s["verdict"] == "FAIL"
    assert s["score"] == 90.0  # P0-3 (weight 10) lost
    assert s["counts"]["FAIL"] == 1


def test_skipped_p0_check_is_incomplete_and_leaves_the_score():
    checks = [check(i, "PASS") for i in ITEMS if i != "P0-4"] + [check("P0-4", "SKIP", "round-trip")]
    s = gate.gate_summary(checks, WEIGHTS, ITEMS, 80)
    assert s["verdict"] == "INCOMPLETE"
    assert s["score"] == 100.0
    assert s["p0_skipped"] == ["round-trip"]


def test_p1_failures_under_the_threshold_fail():
    checks = [check(i, "PASS" if i.startswith("P0") else "FAIL") for i in ITEMS]
    s = gate.gate_summary(checks, WEIGHTS, ITEMS, 80)
    p0_weight = sum(w for i, w in WEIGHTS.items() if i.startswith("P0"))
    assert p0_weight < 80, "the P0 items alone must not reach the threshold, or this case proves nothing"
    assert s["score"] == pytest.approx(100.0 * p0_weight / sum(WEIGHTS.values()))
    assert s["verdict"] == "FAIL"


def test_item_with_one_skip_and_one_pass_counts_as_passed():
    checks = [check(i, "PASS") for i in ITEMS] + [check("P0-1", "SKIP", "config-grafana")]
    row = {m["item"]: m for m in gate.gate_summary(checks, WEIGHTS, ITEMS, 80)["matrix"]}["P0-1"]
    assert (row["status"], row["passed"], row["skipped"]) == ("PASS", 1, 1)


# ------------------------------------------------------------------ server side
SERVICES = {
    "prometheus": {"unit": "prometheus"},
    "alertmanager": {"unit": "prometheus-alertmanager"},
    "loki": {"unit": "loki"},
}


def looped(name, **result):
    return {"item": {"key": name, "value": SERVICES[name]}, **result}


def server_data(**over):
    now = 1_800_000_000
    stamp = dt.datetime.fromtimestamp(now - 1800, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    data = {
        "components": {"prometheus": True, "alertmanager": True, "loki": True},
        "skips": {},
        "services": SERVICES,
        "units": {n: {"LoadState": "loaded", "ActiveState": "active"} for n in SERVICES},
        "validate": [looped(n, rc=0, cmd=["check", n]) for n in SERVICES],
        "health": [looped(n, status=200, url=f"http://127.0.0.1/{n}") for n in SERVICES],
        "rules": {"json": {"data": {"groups": [{"rules": [{"type": "alerting", "name": "A", "health": "ok"}]}]}}},
        "alertmanagers": {"json": {"data": {"activeAlertmanagers": [{"url": "http://127.0.0.1:9093"}]}}},
        "targets": {"json": {"data": {"activeTargets": [
            {"labels": {"job": j}, "health": "up"} for j in ("prometheus", "alertmanager", "loki")]}}},
        "am_ready": {"status": 200},
        "expected_alerts": ["A"],
        "backup": {"rc": 0, "stdout": json.dumps({"created": stamp, "archive": f"/b/obs-{stamp}.tar.zst",
                                                  "files": {"x": {}}, "components": {}})},
        "backup_max_age_hours": 2,
        "now": now,
        "scraped": ["prometheus", "alertmanager", "loki"],
    }
    data.update(over)
    return data


def statuses(data):
    return {c["id"]: c["status"] for c in gate.gate_server_checks(data)}


def test_healthy_server_passes_every_server_check():
    assert set(statuses(server_data()).values()) == {"PASS"}


def test_enabled_component_that_is_down_fails_and_is_never_skipped():
    data = server_data(units={**server_data()["units"], "loki": {"LoadState": "loaded", "ActiveState": "failed"}},
                       health=[looped("prometheus", status=200), looped("alertmanager", status=200),
                               looped("loki", status=-1, msg="connection refused")])
    data["targets"]["json"]["data"]["activeTargets"][2]["health"] = "down"
    s = statuses(data)
    assert s["health-loki"] == "FAIL"
    assert s["self-targets"] == "FAIL"


def test_component_not_installed_fails_its_config_check():
    units = {**server_data()["units"], "loki": {"LoadState": "not-found", "ActiveState": "inactive"}}
    validate = [looped("prometheus", rc=0, cmd=["x"]), looped("alertmanager", rc=0, cmd=["x"]),
                looped("loki", skipped=True)]
    assert statuses(server_data(units=units, validate=validate))["config-loki"] == "FAIL"


def test_skipped_component_says_why_and_is_not_expected_up():
    data = server_data(skips={"loki": "no Loki binary can be had here"})
    data["targets"]["json"]["data"]["activeTargets"][2]["health"] = "down"
    checks = {c["id"]: c for c in gate.gate_server_checks(data)}
    assert checks["health-loki"]["status"] == "SKIP"
    assert "no Loki binary" in checks["health-loki"]["detail"]
    assert checks["self-targets"]["status"] == "PASS"


def test_invalid_config_fails_with_the_validator_output():
    validate = [looped("prometheus", rc=1, cmd="promtool check config", stderr="FAILED: parsing YAML"),
                looped("alertmanager", rc=0, cmd=["x"]), looped("loki", rc=0, cmd=["x"])]
    checks = {c["id"]: c for c in gate.gate_server_checks(server_data(validate=validate))}
    assert checks["config-prometheus"]["status"] == "FAIL"
    assert "parsing YAML" in checks["config-prometheus"]["detail"]


def test_missing_alert_rule_and_stopped_alertmanager_fail():
    s = statuses(server_data(expected_alerts=["A", "B"], am_ready={"status": -1}))
    assert s["alert-rules"] == "FAIL"
    assert s["alertmanager-reachable"] == "FAIL"


def test_old_or_missing_backup_fails():
    old = server_data(now=server_data()["now"] + 3 * 3600)
    assert statuses(old)["backup-fresh"] == "FAIL"
    none = statuses(server_data(backup={"rc": 4, "stderr": "ERROR: no archive in /var/backups/obs"}))
    assert none["backup-fresh"] == none["backup-manifest"] == "FAIL"


def test_loki_validate_command_comes_from_the_unit():
    exec_start = ("{ path=/usr/local/bin/loki-linux-amd64 ; argv[]=/usr/local/bin/loki-linux-amd64 "
                  "-config.file=/etc/loki/config.yml -log.level=warn ; ignore_errors=no }")
    assert gate.gate_loki_validate(exec_start) == (
        "/usr/local/bin/loki-linux-amd64 -config.file=/etc/loki/config.yml -verify-config")
    assert gate.gate_loki_validate("") == ""


# ------------------------------------------------------------------ the probe
DOMAIN = "edge.gate.test"
ADMIN = ("admin", "test-admin-pw")
STORE = ("S001", "test-store-token")
ORIGIN = "https://pos.gate.test"


def make_cert(tmp_path, days):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return pem.decode()


def make_handler(good):
    class Edge(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def user(self):
            auth = self.headers.get("Authorization", "")
            known = {"Basic " + base64.b64encode(f"{n}:{p}".encode()).decode(): who
                     for (n, p), who in ((ADMIN, "admin"), (STORE, "store"))}
            if good:
                return known.get(auth)  # the exact credential only, like the real edge
            # A lenient edge, like nginx's own basic auth: any scheme case,
            # extra spaces, missing padding.
            scheme, _, b64 = auth.strip().partition(" ")
            if scheme.lower() != "basic":
                return None
            b64 = b64.strip()
            try:
                name, _, pw = base64.b64decode(b64 + "=" * (-len(b64) % 4)).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return {ADMIN: "admin", STORE: "store"}.get((name, pw))

        def answer(self, status, extra=None):
            self.send_response(status)
            if good:
                self.send_header("Strict-Transport-Security", "max-age=63072000")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_OPTIONS(self):
            origin = self.headers.get("Origin", "")
            allow = origin if (origin == ORIGIN or not good) else ""
            extra = {"Access-Control-Allow-Methods": "POST, OPTIONS"}
            if allow:
                extra["Access-Control-Allow-Origin"] = allow
            self.answer(204, extra)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            who = self.user()
            if not good:
                self.answer(204)
                return
            if who != "store":
                self.answer(401)
                return
            claimed = {s.get("stream", {}).get("store") for s in json.loads(body or b"{}").get("streams", [])}
            self.answer(204 if claimed <= {STORE[0]} else 400)

        def do_GET(self):
            who = self.user()
            if not good:
                self.answer(200)
            elif who == "admin":
                self.answer(200)
            else:
                self.answer(401)
    return Edge


@pytest.fixture(params=["good", "bad"])
def edge(request, tmp_path):
    good = request.param == "good"
    ca_pem = make_cert(tmp_path, 90 if good else 5)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    if good:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1  # noqa: deprecated on purpose: a bad edge
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(good))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # A second, plain listener that the gate must report as an unexpected open port.
    stray = socket.socket()
    stray.bind(("127.0.0.1", 0))
    stray.listen()
    yield {"good": good, "port": server.server_address[1], "ca_pem": ca_pem, "stray": stray.getsockname()[1]}
    server.shutdown()
    server.server_close()
    stray.close()


def run_probe(cfg):
    out = subprocess.run([sys.executable, str(GATE / "files" / "gate_probe.py")], capture_output=True, text=True,
                         env={**os.environ, "GATE_PROBE_CONFIG": json.dumps(cfg)}, timeout=120, check=True)
    return {c["id"]: c for c in json.loads(out.stdout)["checks"]}


def test_probe_passes_a_good_edge_and_fails_a_bad_one(edge):
    stray_open = not edge["good"]
    cfg = {
        "address": "127.0.0.1", "port": edge["port"], "domain": DOMAIN, "ca_pem": edge["ca_pem"],
        "admin": list(ADMIN), "store": list(STORE), "allowed_origin": ORIGIN,
        "other_origin": "https://evil.gate.test", "min_cert_days": 14, "hsts_min_max_age": 15552000,
        "scan_ports": [edge["port"]] + ([edge["stray"]] if stray_open else []),
        "allowed_open_ports": [edge["port"]], "push_path": "/loki/api/v1/push", "push_enabled": True,
        "protected_routes": [["POST", "/loki/api/v1/push"], ["GET", "/prometheus/-/ready"]],
        "admin_routes": [["GET", "/prometheus/-/ready"]],
        "round_trip": {"enabled": False, "reason": "no Loki behind the test edge"},
    }
    checks = run_probe(cfg)
    print({k: (v["status"], v["detail"]) for k, v in checks.items()})
    expected = {"open-ports", "tls-min-version", "tls-certificate", "hsts", "auth-required", "store-push-only",
                "store-identity", "credential-exact", "cors-allowed", "cors-denied", "round-trip", "store-heartbeats"}
    assert set(checks) == expected
    assert checks["round-trip"]["status"] == "SKIP"
    assert checks["store-heartbeats"]["status"] == "SKIP"
    for check_id in expected - {"round-trip", "store-heartbeats"}:
        status = checks[check_id]["status"]
        if edge["good"]:
            assert status == "PASS", checks[check_id]
        elif check_id == "tls-min-version":
            # Whether this OpenSSL still negotiates TLS 1.0/1.1 at level 0 is
            # the build's choice: it either caught the old version or says it
            # could not try.
            assert status in ("FAIL", "SKIP"), checks[check_id]
        elif check_id != "cors-allowed":
            assert status == "FAIL", checks[check_id]
    assert "test-admin-pw" not in json.dumps(checks) and "test-store-token" not in json.dumps(checks)
