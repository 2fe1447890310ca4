"""Unit tests of the load test tool (tools/obs_loadtest) against a local TEST
UPSTREAM: an aiohttp server on 127.0.0.1 started here, which records every
request, answers 204 or scripted statuses, and serves a fake count query.
It is a test upstream, not Loki. No assertion depends on timing."""
from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import sys
import threading
from collections import Counter

import pytest
from aiohttp import web

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

from obs_loadtest import REPORT_SCHEMA  # noqa: E402
from obs_loadtest.bundles import BundleError, StoreCredential, load_bundle_dir, parse_env  # noqa: E402
from obs_loadtest.cli import main  # noqa: E402
from obs_loadtest.payload import PosLogGenerator, build_push_body  # noqa: E402
from obs_loadtest.push import RetryPolicy, basic_auth, parse_retry_after  # noqa: E402
from obs_loadtest.runner import LoadRun, Phase, RunConfig  # noqa: E402
from obs_loadtest.stats import percentile  # noqa: E402
from obs_loadtest.zeroloss import check_zero_loss, count_query  # noqa: E402

TOKENS = {"S001": "test-token-s001-not-a-secret", "S002": "test-token-s002-not-a-secret",
          "S003": "test-token-s003-not-a-secret"}
ADMIN = ("admin", "test-admin-password-not-a-secret")


class TestUpstream:
    """Records pushes; answers from ``script`` (a list of (status, headers)
    consumed one per push) and 204 once it is empty; ``delay`` slows each push.
    GET /loki/api/v1/query counts the recorded, accepted lines of the store and
    run id named in the query, plus ``query_skew[store]`` (to fake a loss)."""

    __test__ = False  # not a pytest class

    def __init__(self):
        self.pushes = []
        self.queries = []
        self.script = []
        self.delay = 0.0
        self.query_skew = {}
        self.query_status = 200
        self.ssl = None  # an ssl.SSLContext serves HTTPS
        self._loop = None
        self._ready = threading.Event()

    @property
    def url(self):
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"

    async def _push(self, request):
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = self.script.pop(0) if self.script else (204, {})
        self.pushes.append({"path": request.path, "headers": dict(request.headers), "body": body, "status": status})
        return web.Response(status=status, headers=headers)

    def accepted_lines(self, store, run_id):
        n = 0
        for push in self.pushes:
            if not 200 <= push["status"] < 300:
                continue
            for stream in json.loads(push["body"])["streams"]:
                if stream["stream"].get("store") != store:
                    continue
                for value in stream["values"]:
                    rid = stream["stream"].get("run_id") or (value[2].get("run_id") if len(value) > 2 else None)
                    n += rid == run_id
        return n

    async def _query(self, request):
        q = request.query["query"]
        self.queries.append({"query": q, "time": request.query.get("time"), "headers": dict(request.headers)})
        if self.query_status != 200:
            return web.Response(status=self.query_status, text="test upstream: no query backend")
        store = re.search(r'store="([^"]+)"', q).group(1)
        run_id = re.search(r'run_id="([^"]+)"', q).group(1)
        n = self.accepted_lines(store, run_id) + self.query_skew.get(store, 0)
        result = [{"metric": {}, "value": [1, str(n)]}] if n else []
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    def _serve(self):
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/loki/api/v1/push", self._push)
        app.router.add_get("/loki/api/v1/query", self._query)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def upstream():
    up = TestUpstream()
    up.start()
    yield up
    up.stop()


def creds(up, n=3):
    return [StoreCredential(s, s, TOKENS[s], up.url) for s in sorted(TOKENS)[:n]]


class RecordingSleep:
    """Stands in for asyncio.sleep in the retry path: records, does not wait."""

    def __init__(self):
        self.delays = []

    async def __call__(self, delay):
        self.delays.append(delay)


def run_load(up, phases, sleeper=None, **kw):
    cfg = RunConfig(stores=kw.pop("stores", None) or creds(up), phases=phases, progress=False, seed=7, **kw)
    run = LoadRun(cfg, retry_sleep=sleeper or RecordingSleep())
    asyncio.run(run.run())
    return run


def decode_auth(header):
    scheme, _, b64 = header.partition(" ")
    assert scheme == "Basic"
    return tuple(base64.b64decode(b64).decode().split(":", 1))


# --- payload -------------------------------------------------------------------

def test_payload_is_valid_loki_push_json():
    body = build_push_body(PosLogGenerator("S001", seed=1), 50, "loadtest", "lt-test-1")
    doc = json.loads(body)
    assert set(doc) == {"streams"} and doc["streams"]
    total = 0
    for stream in doc["streams"]:
        labels = stream["stream"]
        assert set(labels) == {"service", "store", "environment", "level", "run_id"}
        assert all(isinstance(v, str) for v in labels.values())
        assert labels["store"] == "S001" and labels["run_id"] == "lt-test-1"
        assert labels["service"] in {"pos-backend", "pos-frontend"}
        assert labels["level"] in {"info", "warn", "error"}
        stamps = []
        for value in stream["values"]:
            ts, line, meta = value
            assert isinstance(ts, str) and ts.isdigit() and len(ts) == 19  # unix nanoseconds
            record = json.loads(line)  # lines are JSON, like the stores' loggers write
            assert record["level"] == labels["level"] and record["storeId"] == "S001"
            assert set(meta) == {"terminal", "user", "trace_id"}
            assert all(isinstance(v, str) for v in meta.values())
            stamps.append(int(ts))
        assert stamps == sorted(stamps)
        total += len(stream["values"])
    assert total == 50


def test_payload_mixes_realistic_pos_events():
    gen = PosLogGenerator("S002", seed=3)
    msgs = Counter(json.loads(gen.line(0).line).get("msg") for _ in range(3000))
    for expected in ("Sale completed", "Payment declined", "Receipt printer offline", "Sync with central failed"):
        assert msgs[expected] > 0, expected


def test_run_id_as_structured_metadata():
    doc = json.loads(build_push_body(PosLogGenerator("S001", seed=1), 5, "loadtest", "lt-x", run_id_in="metadata"))
    for stream in doc["streams"]:
        assert "run_id" not in stream["stream"]
        assert all(v[2]["run_id"] == "lt-x" for v in stream["values"])
    assert count_query("S001", "lt-x", 90, "metadata") == 'sum(count_over_time({store="S001"} | run_id="lt-x"[90s]))'
    assert count_query("S001", "lt-x", 90) == 'sum(count_over_time({store="S001", run_id="lt-x"}[90s]))'


# --- credentials ----------------------------------------------------------------

def test_bundle_directory(tmp_path):
    (tmp_path / "S001.env").write_text(
        "# Store 001\nLOKI_URL=https://obs.example.internal/\nLOKI_USERNAME=S001\n"
        "LOKI_PASSWORD='test-token-s001-not-a-secret'\nexport STORE_ID=\"S001\"\n")
    (tmp_path / "S002.env").write_text(
        "LOKI_URL=https://obs.example.internal/loki/api/v1/push\nLOKI_USERNAME=S002\n"
        "LOKI_PASSWORD=test-token-s002-not-a-secret\nSTORE_ID=S002\n")
    (tmp_path / "admin.env").write_text("OBS_ADMIN_USER=admin\n")  # not a store bundle: ignored
    (tmp_path / "notes.txt").write_text("LOKI_URL=ignored")
    got = load_bundle_dir(tmp_path)
    assert [c.store_id for c in got] == ["S001", "S002"]
    assert got[0].password == "test-token-s001-not-a-secret"
    assert {c.base_url for c in got} == {"https://obs.example.internal"}
    assert "not-a-secret" not in repr(got[0])
    (tmp_path / "S003.env").write_text("LOKI_URL=https://x.example\nSTORE_ID=S003\n")
    with pytest.raises(BundleError, match=r"S003.env: missing LOKI_USERNAME, LOKI_PASSWORD"):
        load_bundle_dir(tmp_path)
    assert parse_env("A=1\n# c\n\nB = 'two words'\n") == {"A": "1", "B": "two words"}


# --- requests through the test upstream -------------------------------------------

def test_requests_carry_per_store_basic_auth_and_store_labels(upstream):
    run = run_load(upstream, [Phase("warm-up", 30, 0.5)], lines_per_request=4)
    assert len(upstream.pushes) == 15 == run.phase_stats[0].ok_batches
    per_store = Counter()
    for push in upstream.pushes:
        assert push["path"] == "/loki/api/v1/push"
        assert push["headers"]["Content-Type"] == "application/json"
        user, token = decode_auth(push["headers"]["Authorization"])
        assert token == TOKENS[user]
        streams = json.loads(push["body"])["streams"]
        assert {s["stream"]["store"] for s in streams} == {user}, "a batch carries only its own store's label"
        assert sum(len(s["values"]) for s in streams) == 4
        per_store[user] += 1
    assert per_store == {"S001": 5, "S002": 5, "S003": 5}  # round-robin over the stores
    assert dict(run.store_acked) == {"S001": 20, "S002": 20, "S003": 20}


def test_retries_on_429_and_5xx_with_growing_backoff_then_success(upstream):
    upstream.script = [(503, {}), (429, {}), (500, {})]
    sleeper = RecordingSleep()
    policy = RetryPolicy(max_retries=3, backoff_base=0.5, backoff_max=10)
    run = run_load(upstream, [Phase("warm-up", 5, 0.2)], sleeper, policy=policy, stores=creds(upstream, 1))
    st = run.phase_stats[0]
    assert (st.batches, st.ok_batches, st.attempts, st.retries, st.retried_batches, st.dropped_batches) == (1, 1, 4, 3, 1, 0)
    assert st.errors == {"503": 1, "429": 1, "500": 1}
    # equal jitter: retry n waits within [d/2, d] for d = base * 2**n
    assert len(sleeper.delays) == 3
    for n, delay in enumerate(sleeper.delays):
        d = 0.5 * 2 ** n
        assert d / 2 <= delay <= d
    assert sleeper.delays[0] < sleeper.delays[2]
    assert len({p["body"] for p in upstream.pushes}) == 1, "a retry resends the same batch"


def test_retries_stop_at_the_bound_and_count_the_drop(upstream):
    upstream.script = [(503, {})] * 10
    sleeper = RecordingSleep()
    run = run_load(upstream, [Phase("spike", 5, 0.2)], sleeper, policy=RetryPolicy(max_retries=2),
                   stores=creds(upstream, 1))
    st = run.phase_stats[0]
    assert len(upstream.pushes) == 3 and len(sleeper.delays) == 2
    assert (st.ok_batches, st.dropped_batches, st.dropped_lines, st.retried_batches) == (0, 1, 10, 1)
    assert st.errors == {"503": 3}
    assert run.store_acked["S001"] == 0 and run.store_dropped["S001"] == 10


def test_non_retryable_status_drops_without_retry(upstream):
    upstream.script = [(401, {}), (413, {})]
    sleeper = RecordingSleep()
    run = run_load(upstream, [Phase("warm-up", 10, 0.2)], sleeper, stores=creds(upstream, 1))
    st = run.phase_stats[0]
    assert len(upstream.pushes) == 2 and sleeper.delays == []
    assert (st.dropped_batches, st.retries) == (2, 0)
    assert st.errors == {"401": 1, "413": 1}


def test_retry_after_is_honoured(upstream):
    upstream.script = [(429, {"Retry-After": "7"}), (503, {"Retry-After": "3"})]
    sleeper = RecordingSleep()
    policy = RetryPolicy(max_retries=3, backoff_base=0.1, backoff_max=1)
    run = run_load(upstream, [Phase("warm-up", 5, 0.2)], sleeper, policy=policy, stores=creds(upstream, 1))
    assert sleeper.delays == [7.0, 3.0], "never retry sooner than Retry-After asks"
    assert run.phase_stats[0].ok_batches == 1


def test_retry_after_beyond_the_limit_drops_the_batch(upstream):
    upstream.script = [(429, {"Retry-After": "120"})]
    sleeper = RecordingSleep()
    run = run_load(upstream, [Phase("warm-up", 5, 0.2)], sleeper, policy=RetryPolicy(retry_after_max=30),
                   stores=creds(upstream, 1))
    assert sleeper.delays == [] and run.phase_stats[0].dropped_batches == 1


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_backoff_is_bounded():
    policy = RetryPolicy(backoff_base=0.2, backoff_max=5.0)
    rng = random.Random(1)
    for n in range(12):
        d = min(5.0, 0.2 * 2 ** n)
        assert all(d / 2 <= policy.backoff(n, rng) <= d for _ in range(50))


# --- the scheduler ------------------------------------------------------------------

def test_open_loop_scheduler_sends_the_target_count_per_phase(upstream):
    run = run_load(upstream, [Phase("warm-up", 20, 0.4), Phase("sustained", 80, 0.5)], lines_per_request=2)
    counts = [st.batches for st in run.phase_stats]
    assert 6 <= counts[0] <= 10 and 32 <= counts[1] <= 44, counts
    assert len(upstream.pushes) == sum(counts) == run.totals().ok_batches


def test_open_loop_does_not_wait_for_slow_responses(upstream):
    """A slow server does not lower the offered rate (closed loop would): the
    batches start on schedule, in flight together, up to the cap."""
    upstream.delay = 0.4
    run = run_load(upstream, [Phase("sustained", 40, 0.5)], concurrency=100)
    st = run.phase_stats[0]
    assert st.batches == 20 and st.ok_batches == 20 and st.skipped_at_cap == 0


def test_concurrency_cap_skips_and_counts(upstream):
    upstream.delay = 0.5
    run = run_load(upstream, [Phase("spike", 40, 0.5)], concurrency=3)
    st = run.phase_stats[0]
    assert st.batches + st.skipped_at_cap == 20
    assert st.batches <= 9 and st.skipped_at_cap >= 11


# --- figures ------------------------------------------------------------------------

def test_percentiles_on_known_data():
    data = list(range(1, 101))
    random.Random(0).shuffle(data)
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 95) == pytest.approx(95.05)
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 0) == 1 and percentile(data, 100) == 100
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None
    assert percentile([10, 20], 50) == 15


# --- zero loss ------------------------------------------------------------------------

def _zero_loss(up, run, timeout=0.0):
    from aiohttp import ClientSession

    async def go():
        async with ClientSession() as session:
            return await check_zero_loss(session, up.url, basic_auth(*ADMIN), run.cfg.run_id,
                                         {s.store_id: run.store_acked[s.store_id] for s in run.cfg.stores},
                                         run.started_wall, timeout=timeout, sleep=RecordingSleep())
    return asyncio.run(go())


def test_zero_loss_passes_when_every_line_is_found(upstream):
    run = run_load(upstream, [Phase("warm-up", 12, 0.5)])
    upstream.script = []
    result = _zero_loss(upstream, run)
    assert result["status"] == "pass", result
    assert {s: e["found"] for s, e in result["stores"].items()} == {"S001": 20, "S002": 20, "S003": 20}
    assert len(upstream.queries) == 3
    for q in upstream.queries:
        assert decode_auth(q["headers"]["Authorization"]) == ADMIN
        assert re.fullmatch(r'sum\(count_over_time\(\{store="S00\d", run_id="%s"\}\[\d+s\]\)\)' % run.cfg.run_id,
                            q["query"])


def test_zero_loss_fails_naming_the_store_that_lost_lines(upstream):
    run = run_load(upstream, [Phase("warm-up", 12, 0.5)])
    upstream.query_skew = {"S002": -3}
    result = _zero_loss(upstream, run, timeout=0.0)
    assert result["status"] == "fail" and result["lost_lines"] == 3
    assert result["stores"]["S002"]["missing"] == 3 and "S002 missing 3" in result["reason"]


def test_zero_loss_counts_only_acknowledged_lines(upstream):
    """A dropped batch is reported as dropped, not expected in Loki."""
    upstream.script = [(400, {})]
    run = run_load(upstream, [Phase("warm-up", 6, 0.5)])
    assert run.totals().dropped_batches == 1
    assert _zero_loss(upstream, run)["status"] == "pass"


def test_zero_loss_reports_an_unusable_query_route_as_error(upstream):
    run = run_load(upstream, [Phase("warm-up", 6, 0.5)])
    upstream.query_status = 502
    result = _zero_loss(upstream, run)
    assert result["status"] == "error" and "502" in result["reason"]


# --- the command and its JSON report ---------------------------------------------------

PHASE_KEYS = {"name", "target_rps", "duration_s", "elapsed_s", "batches", "ok_batches", "sent_lines", "ok_lines",
              "achieved_rps", "achieved_lines_per_s", "attempts", "retries", "retried_batches", "dropped_batches",
              "dropped_lines", "skipped_at_cap", "errors_by_status", "latency_ms"}


def test_cli_json_report_schema(upstream, tmp_path, capsys, monkeypatch):
    out = tmp_path / "load.json"
    pw = tmp_path / "admin-password"
    pw.write_text(ADMIN[1] + "\n")
    upstream.script = [(429, {}), (503, {})]
    args = ["--url", upstream.url, "--store", f"S001:{TOKENS['S001']}", "--store", f"S002:{TOKENS['S002']}",
            "--warmup", "10:0.3s", "--sustained", "20:0.5", "--spike", "0:0", "--lines-per-request", "3",
            "--backoff-base", "0.01", "--backoff-max", "0.02", "--admin-password-file", str(pw),
            "--verify-timeout", "5", "--json-out", str(out), "--quiet", "--seed", "1"]
    monkeypatch.delenv("OBS_ADMIN_PASSWORD", raising=False)
    assert main(args) == 0
    printed = capsys.readouterr()
    assert printed.err == "", "--quiet: no progress lines"
    assert "zero loss: PASS" in printed.out and "result: PASS" in printed.out
    report = json.loads(out.read_text())
    assert report["schema"] == REPORT_SCHEMA
    assert {"schema", "tool_version", "run_id", "started_at", "finished_at", "config", "phases", "totals",
            "stores", "error_samples", "zero_loss", "warnings", "result", "failures"} <= set(report)
    assert [p["name"] for p in report["phases"]] == ["warm-up", "sustained"]
    for phase in report["phases"] + [report["totals"]]:
        assert set(phase) == PHASE_KEYS
        assert set(phase["latency_ms"]) == {"p50", "p95", "p99", "max", "samples"}
    t = report["totals"]
    assert t["batches"] == 13 and t["ok_batches"] == 13 and t["ok_lines"] == 39
    assert t["retried_batches"] >= 1 and t["retries"] == 2 and t["errors_by_status"] == {"429": 1, "503": 1}
    assert t["latency_ms"]["p50"] <= t["latency_ms"]["p95"] <= t["latency_ms"]["p99"] <= t["latency_ms"]["max"]
    assert report["config"]["stores"] == ["S001", "S002"]
    assert report["config"]["push_url"] == upstream.url + "/loki/api/v1/push"
    assert report["zero_loss"]["status"] == "pass"
    assert sum(s["acked_lines"] for s in report["stores"].values()) == 39
    assert TOKENS["S001"] not in out.read_text() and ADMIN[1] not in out.read_text()


def test_cli_progress_and_failure_exit_code(upstream, capsys, monkeypatch):
    monkeypatch.delenv("OBS_ADMIN_PASSWORD", raising=False)
    upstream.script = [(401, {})] * 100
    args = ["--url", upstream.url, "--store", f"S001:{TOKENS['S001']}", "--warmup", "4:1.2", "--sustained", "0:0",
            "--spike", "0:0"]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert re.search(r"^\[\s*1\.\d+s\] warm-up .*sent", printed.err, re.M), printed.err
    assert "zero loss: SKIP" in printed.out and "result: FAIL" in printed.out and "401=" in printed.out


def test_cli_rejects_missing_credentials(capsys):
    assert main(["--warmup", "1:1"]) == 2
    assert "no store credentials" in capsys.readouterr().err


# --- TLS with a private CA and a pinned address (what make bench-load does) -------------

def _make_ca_and_server_cert(tmp_path, name):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA (obs-loadtest tests)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.crt").write_bytes(cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))


def test_tls_with_ca_file_and_resolve(tmp_path, capsys):
    import ssl

    name = "obs-edge.test.invalid"  # never resolvable: only --resolve can reach it
    _make_ca_and_server_cert(tmp_path, name)
    up = TestUpstream()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    up.ssl = ctx
    up.start()
    try:
        base = ["--url", f"https://{name}:{up.port}", "--store", f"S001:{TOKENS['S001']}", "--warmup", "4:0.5",
                "--sustained", "0:0", "--spike", "0:0", "--quiet", "--resolve", f"{name}:{up.port}:127.0.0.1"]
        assert main(base + ["--ca-file", str(tmp_path / "ca.crt")]) == 0
        assert len(up.pushes) == 2
        # Without the CA the certificate is not trusted: no push gets through, and none is retried.
        assert main(base) == 1
        assert len(up.pushes) == 2
        out = capsys.readouterr().out
        assert "tls_error=2" in out and "retries 0" in out
        assert re.search(r"tls_error: .*certificate", out), out
    finally:
        up.stop()


def test_cli_fails_a_run_whose_batches_were_skipped_at_the_cap(upstream, capsys, monkeypatch):
    # The server answers slower than the schedule: with a cap of 2 batches in
    # flight, most scheduled batches are never sent. Every sent batch is
    # accepted, yet the run must not pass: the load asked for was not offered.
    monkeypatch.delenv("OBS_ADMIN_PASSWORD", raising=False)
    upstream.delay = 0.3
    args = ["--url", upstream.url, "--store", f"S001:{TOKENS['S001']}", "--warmup", "0:0", "--sustained", "40:0.5",
            "--spike", "0:0", "--concurrency", "2", "--verify", "off", "--quiet"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert re.search(r"result: FAIL - \d+ scheduled batches not sent: concurrency cap 2 reached", out), out
