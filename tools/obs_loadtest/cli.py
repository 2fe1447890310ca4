"""Command line: ``python -m obs_loadtest`` (with ``tools/`` on PYTHONPATH).

Exit status: 0 when the run passes (batches accepted, none dropped, none
skipped at the concurrency cap, zero-loss check passed or skipped), 1 when it fails, 2 on bad usage or unreadable
credentials.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

import aiohttp

from . import __version__
from .bundles import BundleError, base_url, load_bundle, load_bundle_dir, parse_store_arg
from .push import RetryPolicy, basic_auth
from .report import build_report, summary_table, write_json
from .runner import DEFAULT_PHASES, LoadRun, Phase, RunConfig, make_connector, new_run_id
from .zeroloss import check_zero_loss


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 30, 30s, 2m)")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def _phase(name: str):
    def parse(text: str) -> Phase:
        rate, sep, dur = text.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"--{name} expects RATE:DURATION, e.g. 100:2m")
        try:
            r = float(rate)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--{name}: bad rate {rate!r}") from exc
        if r < 0:
            raise argparse.ArgumentTypeError(f"--{name}: rate must be >= 0")
        return Phase(name, r, _duration(dur))
    return parse


def _resolve(text: str):
    host, _, rest = text.partition(":")
    port, _, addr = rest.partition(":")
    if not host or not port.isdigit() or not addr:
        raise argparse.ArgumentTypeError("--resolve expects HOST:PORT:ADDRESS")
    return (host, int(port)), addr


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = {p.name: p for p in DEFAULT_PHASES}
    p = argparse.ArgumentParser(
        prog="obs-loadtest",
        description="Push realistic POS logs to Loki's push API through the edge, from N stores with their "
                    "own credentials, in warm-up / sustained / spike phases; report rates, latency, errors; "
                    "check for zero loss by querying back per store.")
    src = p.add_argument_group("credentials (one of)")
    src.add_argument("--bundles", metavar="DIR", help="directory of store bundles (*.env with LOKI_URL, "
                     "LOKI_USERNAME, LOKI_PASSWORD, STORE_ID)")
    src.add_argument("--bundle", metavar="FILE", action="append", default=[], help="one store bundle (repeatable)")
    src.add_argument("--store", metavar="ID:TOKEN", action="append", default=[],
                     help="a store credential (username = ID; or ID:USER:TOKEN); needs --url (repeatable)")
    src.add_argument("--url", help="edge base URL for --store, and overrides the bundles' LOKI_URL")
    src.add_argument("--stores", type=_positive_int, metavar="N", help="use only the first N stores")

    load = p.add_argument_group("load")
    load.add_argument("--warmup", type=_phase("warm-up"), default=d["warm-up"], metavar="RATE:DURATION",
                      help="warm-up phase, batches/s and duration (default 10:30s; 0:0 skips)")
    load.add_argument("--sustained", type=_phase("sustained"), default=d["sustained"], metavar="RATE:DURATION",
                      help="sustained phase (default 100:120s)")
    load.add_argument("--spike", type=_phase("spike"), default=d["spike"], metavar="RATE:DURATION",
                      help="spike phase (default 200:30s)")
    load.add_argument("--lines-per-request", type=_positive_int, default=10, help="log lines per batch (default 10)")
    load.add_argument("--concurrency", type=_positive_int, default=64,
                      help="cap on batches in flight, retry waits included (default 64)")
    load.add_argument("--timeout", type=float, default=10.0, help="per-attempt HTTP timeout, seconds (default 10)")
    load.add_argument("--max-retries", type=int, default=3, help="retries per batch on 429/5xx/timeouts (default 3)")
    load.add_argument("--backoff-base", type=float, default=0.2, help="first backoff, seconds (default 0.2)")
    load.add_argument("--backoff-max", type=float, default=5.0, help="backoff cap, seconds (default 5)")
    load.add_argument("--retry-after-max", type=float, default=60.0,
                      help="longest Retry-After honoured; longer drops the batch (default 60)")
    load.add_argument("--environment", default="loadtest", help="`environment` label of the pushed lines (default loadtest)")
    load.add_argument("--run-id", default=None, help="run id (default lt-<UTC time>-<random>)")
    load.add_argument("--run-id-in", choices=["label", "metadata"], default="label",
                      help="carry the run id as a stream label (default) or as structured metadata")
    load.add_argument("--seed", type=int, default=None, help="seed of the log generator (reproducible content)")

    tls = p.add_argument_group("connection")
    tls.add_argument("--ca-file", help="CA certificate(s) to verify the edge with (default: system trust)")
    tls.add_argument("--insecure", action="store_true", help="do not verify the certificate (never for production)")
    tls.add_argument("--resolve", type=_resolve, action="append", default=[], metavar="HOST:PORT:ADDRESS",
                     help="connect to ADDRESS for HOST:PORT, keeping the name for SNI and verification (like curl)")

    zl = p.add_argument_group("zero-loss check")
    zl.add_argument("--verify", choices=["auto", "on", "off"], default="auto",
                    help="query back per store after the run: auto = when an admin password is given (default)")
    zl.add_argument("--query-url", help="base URL of the query route (default: the push URL's base)")
    zl.add_argument("--admin-user", default=os.environ.get("OBS_ADMIN_USER", "admin"),
                    help="admin username for queries (env OBS_ADMIN_USER; default admin)")
    zl.add_argument("--admin-password-file", help="file holding the admin password (else env OBS_ADMIN_PASSWORD)")
    zl.add_argument("--verify-timeout", type=float, default=30.0, help="seconds to wait for counts to settle (default 30)")

    out = p.add_argument_group("output")
    out.add_argument("--json-out", metavar="PATH", help="write the JSON report here (for the gate)")
    out.add_argument("-q", "--quiet", action="store_true", help="no per-second progress on stderr")
    out.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def load_credentials(args) -> list:
    creds = []
    if args.bundles:
        creds += load_bundle_dir(args.bundles)
    for path in args.bundle:
        cred = load_bundle(path)
        if cred is None:
            raise BundleError(f"{path}: not a store bundle")
        creds.append(cred)
    if args.store:
        if not args.url:
            raise BundleError("--store needs --url")
        creds += [parse_store_arg(s, args.url) for s in args.store]
    if not creds:
        raise BundleError("no store credentials: give --bundles DIR, --bundle FILE or --url with --store ID:TOKEN")
    if args.url:
        url = base_url(args.url)
        creds = [type(c)(c.store_id, c.username, c.password, url) for c in creds]
    if args.stores:
        if args.stores > len(creds):
            raise BundleError(f"--stores {args.stores}: only {len(creds)} store credentials available")
        creds = creds[: args.stores]
    return creds


def admin_password(args) -> str | None:
    if args.admin_password_file:
        with open(args.admin_password_file) as fh:
            return fh.read().strip()
    return os.environ.get("OBS_ADMIN_PASSWORD") or None


async def execute(cfg: RunConfig, *, verify: str, query_url: str | None, admin_user: str,
                  admin_pass: str | None, verify_timeout: float, retry_sleep=asyncio.sleep) -> dict:
    run = LoadRun(cfg, retry_sleep=retry_sleep)
    async with aiohttp.ClientSession(connector=make_connector(cfg, cfg.concurrency + 4)) as session:
        await run.run(session)
        query_base = query_url or cfg.stores[0].base_url
        if verify == "off":
            zero_loss = {"status": "skip", "reason": "disabled (--verify off)"}
        elif admin_pass is None:
            zero_loss = {"status": "skip" if verify == "auto" else "error",
                         "reason": "no admin credential (--admin-password-file or OBS_ADMIN_PASSWORD)"}
        else:
            zero_loss = await check_zero_loss(
                session, query_base, basic_auth(admin_user, admin_pass), cfg.run_id,
                {s.store_id: run.store_acked[s.store_id] for s in cfg.stores},
                run.started_wall, run_id_in=cfg.run_id_in, timeout=verify_timeout, http_timeout=cfg.timeout)
    return build_report(run, zero_loss, query_base)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        creds = load_credentials(args)
        admin_pass = admin_password(args)
    except (BundleError, OSError) as exc:
        print(f"obs-loadtest: {exc}", file=sys.stderr)
        return 2
    if args.insecure and args.ca_file:
        parser.error("--insecure and --ca-file exclude each other")
    phases = [ph for ph in (args.warmup, args.sustained, args.spike) if ph.batches > 0]
    if not phases:
        parser.error("every phase is empty: give at least one RATE:DURATION above 0")
    cfg = RunConfig(
        stores=creds, phases=phases, lines_per_request=args.lines_per_request, concurrency=args.concurrency,
        timeout=args.timeout,
        policy=RetryPolicy(args.max_retries, args.backoff_base, args.backoff_max, args.retry_after_max),
        environment=args.environment, run_id=args.run_id or new_run_id(), run_id_in=args.run_id_in,
        ca_file=args.ca_file, insecure=args.insecure, resolve=dict(args.resolve), seed=args.seed,
        progress=not args.quiet)
    report = asyncio.run(execute(cfg, verify=args.verify, query_url=args.query_url, admin_user=args.admin_user,
                                 admin_pass=admin_pass, verify_timeout=args.verify_timeout))
    print(summary_table(report))
    if args.json_out:
        write_json(report, args.json_out)
        print(f"JSON report: {args.json_out}")
    return 0 if report["result"] == "pass" else 1
