#!/usr/bin/env python3
"""The release gate's outside view of the edge (playbooks/verify.yml).

Runs on the probe host (the controller by default, or a second machine), with
the standard library only, so that any host with python3 can be the probe.
Its input is a JSON document in the environment variable GATE_PROBE_CONFIG
(credentials included: the Ansible task that runs it is no_log). It prints one
JSON document: {"checks": [{"id", "item", "check", "status", "detail"}]},
status PASS, FAIL or SKIP. No detail ever carries a credential.
"""
from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import http.client
import json
import os
import socket
import ssl
import sys
import time
import urllib.parse
import uuid
import warnings

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# Offering TLS 1.0/1.1 on purpose (to see the server refuse them) is deprecated API.
warnings.filterwarnings("ignore", category=DeprecationWarning)


class EdgeConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with the public name as SNI and Host, like
    curl --resolve: works before DNS points at the server."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ctx = context

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


class Probe:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.address = cfg["address"]
        self.port = int(cfg.get("port", 443))
        self.domain = cfg["domain"]
        self.timeout = float(cfg.get("timeout", 10))
        self.results: list[dict] = []

    # ------------------------------------------------------------ helpers
    def record(self, check_id, item, check, status, detail):
        self.results.append({"id": check_id, "item": item, "check": check, "status": status, "detail": detail})

    def context(self, verify=True):
        ctx = ssl.create_default_context()
        if self.cfg.get("ca_pem"):
            ctx = ssl.create_default_context(cadata=self.cfg["ca_pem"])
        if self.cfg.get("insecure") or not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def request(self, method, path, auth=None, headers=None, body=None):
        """Returns (status, headers as a lower-cased dict, body bytes)."""
        conn = EdgeConnection(self.address, self.port, self.domain, self.context(), self.timeout)
        hdrs = {"Host": self.domain, "User-Agent": "obs-gate-probe"}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            hdrs["Authorization"] = f"Basic {token}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def handshake(self, version):
        """Tries one TLS version. Returns (accepted, reason). The client offers
        old versions at security level 0, so a refusal is the server's."""
        ctx = self.context(verify=False)
        ctx.minimum_version = version
        ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        try:
            with socket.create_connection((self.address, self.port), self.timeout) as sock:
                with ctx.wrap_socket(sock, server_hostname=self.domain) as tls:
                    return True, tls.version()
        except ssl.SSLError as exc:
            return False, exc.reason or str(exc)
        except OSError as exc:
            return False, f"connection error: {exc}"

    # ------------------------------------------------------------ checks
    def check_tls_versions(self):
        refused, accepted, problems = [], [], []
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ok, reason = self.handshake(version)
            if ok:
                accepted.append(version.name)
            elif reason in ("NO_PROTOCOLS_AVAILABLE", "UNSUPPORTED_PROTOCOL") and "alert" not in str(reason).lower():
                # This Python/OpenSSL cannot even offer the version: nothing
                # was learnt about the server.
                problems.append(f"{version.name}: this client cannot offer it ({reason})")
            else:
                refused.append(f"{version.name} ({reason})")
        ok12, reason12 = self.handshake(ssl.TLSVersion.TLSv1_2)
        if accepted:
            self.record("tls-min-version", "P0-5", "TLS 1.2+ only", FAIL, f"server accepted {', '.join(accepted)}")
        elif not ok12:
            self.record("tls-min-version", "P0-5", "TLS 1.2+ only", FAIL, f"TLS 1.2 refused ({reason12})")
        elif problems and not refused:
            self.record("tls-min-version", "P0-5", "TLS 1.2+ only", SKIP, "; ".join(problems))
        else:
            self.record("tls-min-version", "P0-5", "TLS 1.2+ only", PASS,
                        f"refused {', '.join(refused)}; TLS 1.2 accepted" + (f"; {'; '.join(problems)}" if problems else ""))

    def check_certificate(self):
        min_days = int(self.cfg.get("min_cert_days", 14))
        name = "certificate trusted, matches the name, valid >= %d days" % min_days
        try:
            with socket.create_connection((self.address, self.port), self.timeout) as sock:
                with self.context().wrap_socket(sock, server_hostname=self.domain) as tls:
                    cert = tls.getpeercert()
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self.record("tls-certificate", "P0-5", name, FAIL, f"handshake with verification failed: {exc}")
            return
        if not cert:
            self.record("tls-certificate", "P0-5", name, SKIP, "certificate not verified (gate_tls_insecure)")
            return
        not_after = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.timezone.utc)
        days = (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds() / 86400
        status = PASS if days >= min_days else FAIL
        self.record("tls-certificate", "P0-5", name, status,
                    f"{self.domain}: valid until {not_after:%Y-%m-%d} ({days:.0f} days left)")

    def check_hsts(self):
        min_age = int(self.cfg.get("hsts_min_max_age", 15552000))
        try:
            _, headers, _ = self.request("GET", "/prometheus/-/ready")
        except (OSError, ssl.SSLError) as exc:
            self.record("hsts", "P0-5", "HSTS header", FAIL, f"request failed: {exc}")
            return
        value = headers.get("strict-transport-security", "")
        age = 0
        for part in value.split(";"):
            key, _, val = part.strip().partition("=")
            if key.lower() == "max-age" and val.strip().isdigit():
                age = int(val)
        status = PASS if age >= min_age else FAIL
        self.record("hsts", "P0-5", "HSTS header", status,
                    f"Strict-Transport-Security: {value or '(missing)'}; expected max-age >= {min_age}")

    def check_auth_required(self):
        bad, seen = [], []
        for method, path in self.cfg["protected_routes"]:
            body = b"{}" if method == "POST" else None
            try:
                status, _, _ = self.request(method, path, body=body)
            except (OSError, ssl.SSLError) as exc:
                bad.append(f"{method} {path}: {exc}")
                continue
            seen.append(f"{method} {path} {status}")
            if status != 401:
                bad.append(f"{method} {path} answered {status} without credentials")
        self.record("auth-required", "P0-5", "every route requires auth", FAIL if bad else PASS,
                    "; ".join(bad) if bad else f"{len(seen)} routes answer 401 without credentials")

    def check_store_push_only(self):
        store = self.cfg.get("store")
        push_enabled = self.cfg.get("push_enabled", True)
        if not store:
            self.record("store-push-only", "P0-5", "store credentials are push-only", SKIP, "no store credential")
            return
        bad, notes = [], []
        if push_enabled:
            body = json.dumps({"streams": [{"stream": {"store": store[0], "service": "obs-gate"},
                                            "values": [[str(time.time_ns()), "obs gate: push-only check"]]}]})
            status, _, _ = self.request("POST", self.cfg["push_path"], auth=store, body=body.encode())
            notes.append(f"push {status}")
            if status in (401, 403):
                bad.append(f"the store's own push was refused ({status})")
        else:
            # No push route (no Loki): only the other half can be checked.
            notes.append(f"push not checked ({self.cfg.get('push_skip_reason', 'no push route')})")
        for method, path in self.cfg["admin_routes"]:
            status, _, _ = self.request(method, path, auth=store)
            notes.append(f"{path} {status}")
            if status not in (401, 403):
                bad.append(f"{method} {path} answered {status} to a store credential")
        self.record("store-push-only", "P0-5", "store credentials are push-only", FAIL if bad else PASS,
                    "; ".join(bad) if bad else f"store {store[0]}: " + ", ".join(notes))

    def _push_body(self, claimed_store, line):
        return json.dumps({"streams": [{"stream": {"store": claimed_store, "service": "obs-gate"},
                                        "values": [[str(time.time_ns()), line]]}]}).encode()

    def check_store_identity(self):
        """A store's credential cannot write under another store's name."""
        name = "a push claiming another store does not land under it"
        store = self.cfg.get("store")
        if not self.cfg.get("push_enabled", True):
            self.record("store-identity", "P0-5", name, SKIP, self.cfg.get("push_skip_reason", "no push route"))
            return
        if not store:
            self.record("store-identity", "P0-5", name, SKIP, "no store credential")
            return
        other = self.cfg.get("other_store") or "obs-gate-not-a-store"
        marker = f"obs-gate-spoof-{uuid.uuid4().hex}"
        status, _, data = self.request("POST", self.cfg["push_path"], auth=store,
                                       body=self._push_body(other, f"obs gate: {store[0]} claims {other} {marker}"))
        answer = data[:200].decode(errors="replace").strip()
        if not 400 <= status < 500:
            self.record("store-identity", "P0-5", name, FAIL,
                        f"as {store[0]}, a stream labelled store={other} was answered {status}: the edge accepted it")
            return
        detail = f"as {store[0]}, a stream labelled store={other} was refused ({status}: {answer})"
        rt = self.cfg.get("round_trip") or {}
        if rt.get("enabled"):
            # Refused at the edge; the query proves Loki holds nothing of it.
            query = urllib.parse.urlencode({"query": f'{{store="{other}"}} |= "{marker}"', "limit": "10",
                                            "start": str(time.time_ns() - 300 * 10**9), "end": str(time.time_ns())})
            q_status, _, q_data = self.request("GET", f"/loki/api/v1/query_range?{query}", auth=self.cfg["admin"])
            found = sum(len(r.get("values", [])) for r in json.loads(q_data).get("data", {}).get("result", [])) \
                if q_status == 200 else None
            if found is None:
                self.record("store-identity", "P0-5", name, FAIL, f"{detail}; the admin query answered {q_status}")
                return
            if found:
                self.record("store-identity", "P0-5", name, FAIL, f"{detail}, yet the line is stored under store={other}")
                return
            detail += f"; the admin query finds nothing under store={other}"
        self.record("store-identity", "P0-5", name, PASS, detail)

    def check_credential_spellings(self):
        """Only the exact credential is a store: no other spelling of it gets in
        (each would otherwise be a fresh rate-limit bucket)."""
        name = "another spelling of a store credential gets no second bucket"
        store = self.cfg.get("store")
        if not self.cfg.get("push_enabled", True):
            self.record("credential-exact", "P0-5", name, SKIP, self.cfg.get("push_skip_reason", "no push route"))
            return
        if not store:
            self.record("credential-exact", "P0-5", name, SKIP, "no store credential")
            return
        b64 = base64.b64encode(f"{store[0]}:{store[1]}".encode()).decode()
        spellings = {"lower-case scheme": f"basic {b64}", "upper-case scheme": f"BASIC {b64}",
                     "two spaces": f"Basic  {b64}", "case-flipped base64": f"Basic {b64.swapcase()}"}
        if b64.endswith("="):
            spellings["no padding"] = f"Basic {b64.rstrip('=')}"
        body = self._push_body(store[0], "obs gate: credential spelling check")
        status, _, _ = self.request("POST", self.cfg["push_path"], headers={"Authorization": f"Basic {b64}"}, body=body)
        if status in (401, 403):
            self.record("credential-exact", "P0-5", name, FAIL, f"the exact credential itself was refused ({status})")
            return
        let_in = []
        for label, header in spellings.items():
            got, _, _ = self.request("POST", self.cfg["push_path"], headers={"Authorization": header}, body=body)
            if got != 401:
                let_in.append(f"{label}: {got}")
        if let_in:
            self.record("credential-exact", "P0-5", name, FAIL,
                        f"{store[0]}'s credential, spelt otherwise, was not refused: {'; '.join(let_in)}")
        else:
            self.record("credential-exact", "P0-5", name, PASS,
                        f"exact credential {status}; {len(spellings)} other spellings ({', '.join(spellings)}) 401")

    def check_heartbeats(self):
        """P0-2: each store's client sends its heartbeat line (type heartbeat,
        once a minute) and reports no dropped lines."""
        name = "every store sent a heartbeat recently, with no drops reported"
        rt, hb = self.cfg.get("round_trip") or {}, self.cfg.get("heartbeats") or {}
        if not rt.get("enabled"):
            self.record("store-heartbeats", "P0-2", name, SKIP, rt.get("reason", "no Loki to query"))
            return
        stores, minutes = hb.get("stores") or [], int(hb.get("max_age_minutes", 15))
        if not stores:
            self.record("store-heartbeats", "P0-2", name, SKIP, "no store in obs_stores")
            return
        selector = '{store=~".+"} |= `"type":"heartbeat"`'
        queries = {"beats": f"sum by (store) (count_over_time({selector} [{minutes}m]))",
                   "drops": f"sum by (store) (sum_over_time({selector} | json | unwrap dropped_since_last [{minutes}m]))"}
        found = {}
        for key, logql in queries.items():
            status, _, data = self.request("GET", "/loki/api/v1/query?" + urllib.parse.urlencode({"query": logql}),
                                           auth=self.cfg["admin"])
            if status != 200:
                self.record("store-heartbeats", "P0-2", name, FAIL, f"the admin query ({key}) answered {status}")
                return
            found[key] = {r["metric"].get("store"): float(r["value"][1])
                          for r in json.loads(data).get("data", {}).get("result", [])}
        silent = [s for s in stores if not found["beats"].get(s)]
        dropping = {s: int(found["drops"][s]) for s in stores if found["drops"].get(s, 0) > 0}
        problems = []
        if silent:
            problems.append(f"no heartbeat within {minutes} min from {', '.join(silent)}")
        if dropping:
            problems.append("dropped lines reported by " + ", ".join(f"{s} ({n})" for s, n in dropping.items()))
        self.record("store-heartbeats", "P0-2", name, FAIL if problems else PASS,
                    "; ".join(problems) if problems else
                    f"{len(stores)} stores sent heartbeats within {minutes} min, none reports drops")

    def check_ports(self):
        allowed = set(int(p) for p in self.cfg["allowed_open_ports"])

        def is_open(port):
            try:
                with socket.create_connection((self.address, port), timeout=float(self.cfg.get("port_timeout", 3))):
                    return True
            except OSError:
                return False

        ports = sorted(set(int(p) for p in self.cfg["scan_ports"]))
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            states = dict(zip(ports, pool.map(is_open, ports)))
        opened = [p for p, is_up in states.items() if is_up]
        unexpected = [p for p in opened if p not in allowed]
        status = FAIL if unexpected or self.port not in opened else PASS
        detail = f"open from {socket.gethostname()}: {opened or 'none'}; allowed {sorted(allowed)}"
        if unexpected:
            detail += f"; UNEXPECTED {unexpected}"
        self.record("open-ports", "P0-5", "only the expected ports are open from outside", status, detail)

    def check_cors(self):
        allowed, other = self.cfg.get("allowed_origin"), self.cfg["other_origin"]
        if not self.cfg.get("push_enabled", True):
            for check_id, check in (("cors-allowed", "CORS preflight passes for an allowed origin"),
                                    ("cors-denied", "CORS preflight fails for another origin")):
                self.record(check_id, "P0-3", check, SKIP,
                            self.cfg.get("push_skip_reason", "Loki disabled: the edge has no push route"))
            return
        base = {"Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"}
        if not allowed:
            self.record("cors-allowed", "P0-3", "CORS preflight passes for an allowed origin", SKIP,
                        "obs_cors_origins is empty: no browser origin is allowed")
        else:
            status, headers, _ = self.request("OPTIONS", self.cfg["push_path"], headers={**base, "Origin": allowed})
            acao = headers.get("access-control-allow-origin", "")
            methods = headers.get("access-control-allow-methods", "")
            ok = status in (200, 204) and acao == allowed and "POST" in methods
            self.record("cors-allowed", "P0-3", "CORS preflight passes for an allowed origin", PASS if ok else FAIL,
                        f"Origin {allowed}: {status}, Allow-Origin {acao or '(none)'}, Allow-Methods {methods or '(none)'}")
        status, headers, _ = self.request("OPTIONS", self.cfg["push_path"], headers={**base, "Origin": other})
        acao = headers.get("access-control-allow-origin", "")
        ok = acao not in (other, "*")
        self.record("cors-denied", "P0-3", "CORS preflight fails for another origin", PASS if ok else FAIL,
                    f"Origin {other}: {status}, Allow-Origin {acao or '(none)'}")

    def check_round_trip(self):
        name = "a store's push is found by an admin query"
        rt = self.cfg.get("round_trip") or {}
        if not rt.get("enabled"):
            self.record("round-trip", "P0-4", name, SKIP, rt.get("reason", "disabled"))
            return
        store, admin = self.cfg["store"], self.cfg["admin"]
        marker = f"obs-gate-{uuid.uuid4().hex}"
        now_ns = time.time_ns()
        body = json.dumps({"streams": [{
            "stream": {"store": store[0], "service": "obs-gate", "environment": rt.get("environment", "gate")},
            "values": [[str(now_ns), f"obs gate round trip {marker}"]]}]}).encode()
        status, _, data = self.request("POST", self.cfg["push_path"], auth=store, body=body)
        if status not in (200, 204):
            self.record("round-trip", "P0-4", name, FAIL,
                        f"push as {store[0]} answered {status}: {data[:200].decode(errors='replace')}")
            return
        query = urllib.parse.urlencode({
            "query": f'{{store="{store[0]}"}} |= "{marker}"',
            "start": str(now_ns - 300 * 10**9), "end": str(time.time_ns() + 300 * 10**9), "limit": "10"})
        deadline = time.monotonic() + float(rt.get("timeout", 30))
        last = ""
        while True:
            started = time.monotonic()
            status, _, data = self.request("GET", f"/loki/api/v1/query_range?{query}", auth=admin)
            if status == 200:
                result = json.loads(data).get("data", {}).get("result", [])
                lines = sum(len(s.get("values", [])) for s in result)
                if lines:
                    self.record("round-trip", "P0-4", name, PASS,
                                f"pushed as {store[0]}, found by the admin query after "
                                f"{time.monotonic() - deadline + float(rt.get('timeout', 30)):.1f} s")
                    return
                last = "query answered 200 with no matching line"
            else:
                last = f"query answered {status}"
            if time.monotonic() >= deadline:
                break
            # Loki makes a pushed line queryable within a second or two: poll
            # at a fixed cadence until then, bounded by the deadline.
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        self.record("round-trip", "P0-4", name, FAIL, f"pushed as {store[0]} (204) but {last} within {rt.get('timeout', 30)} s")

    def run(self):
        steps = [self.check_ports, self.check_tls_versions, self.check_certificate, self.check_hsts,
                 self.check_auth_required, self.check_store_push_only, self.check_store_identity,
                 self.check_credential_spellings, self.check_cors, self.check_round_trip, self.check_heartbeats]
        names = {"check_ports": ("open-ports", "P0-5"), "check_tls_versions": ("tls-min-version", "P0-5"),
                 "check_certificate": ("tls-certificate", "P0-5"), "check_hsts": ("hsts", "P0-5"),
                 "check_auth_required": ("auth-required", "P0-5"), "check_store_push_only": ("store-push-only", "P0-5"),
                 "check_store_identity": ("store-identity", "P0-5"),
                 "check_credential_spellings": ("credential-exact", "P0-5"),
                 "check_cors": ("cors", "P0-3"), "check_round_trip": ("round-trip", "P0-4"),
                 "check_heartbeats": ("store-heartbeats", "P0-2")}
        for step in steps:
            try:
                step()
            except Exception as exc:  # one broken check must not hide the others
                check_id, item = names[step.__name__]
                self.record(check_id, item, step.__name__.replace("check_", "").replace("_", " "), FAIL,
                            f"{type(exc).__name__}: {exc}")
        return self.results


def main() -> int:
    raw = os.environ.get("GATE_PROBE_CONFIG")
    if not raw:
        print("GATE_PROBE_CONFIG is not set", file=sys.stderr)
        return 2
    print(json.dumps({"probe": socket.gethostname(), "checks": Probe(json.loads(raw)).run()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
