"""The run's report: a JSON document for the gate and a summary table for people.

JSON schema ``obs-loadtest/1`` (every key always present)::

    schema, tool_version, run_id, started_at, finished_at (RFC 3339 UTC)
    config: push_url, query_url, stores [ids], lines_per_request, concurrency,
            timeout_s, max_retries, backoff_base_s, backoff_max_s, retry_after_max_s,
            environment, run_id_in, phases [{name, rate, duration_s}]
    phases: [phase]; totals: phase   where phase is
        name, target_rps, duration_s, elapsed_s, batches, ok_batches, sent_lines,
        ok_lines, achieved_rps, achieved_lines_per_s, attempts, retries,
        retried_batches, dropped_batches, dropped_lines, skipped_at_cap,
        errors_by_status {status: count}, latency_ms {p50, p95, p99, max, samples}
    stores: {id: {sent_lines, acked_lines, dropped_lines}}
    error_samples: {status: first message}  (timeouts, connection and TLS errors)
    zero_loss: {status: pass|fail|error|skip, reason, ...}
    warnings: [str]; result: pass|fail; failures: [str]
"""
from __future__ import annotations

import json
import time

from . import REPORT_SCHEMA, __version__
from .bundles import PUSH_PATH


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def build_report(run, zero_loss: dict, query_url: str | None) -> dict:
    cfg = run.cfg
    phases = [st.to_dict() for st in run.phase_stats]
    totals = run.totals().to_dict()
    failures, warnings = [], []
    if totals["ok_batches"] == 0:
        failures.append("no batch was accepted")
    if totals["dropped_batches"]:
        failures.append(f"{totals['dropped_batches']} batches dropped ({totals['dropped_lines']} lines)")
    if zero_loss["status"] in ("fail", "error"):
        failures.append(f"zero-loss check {zero_loss['status']}: {zero_loss['reason']}")
    # A batch the schedule asked for but never sent is load not offered: the
    # phase's rate and latency figures would describe a lighter run than the
    # one requested, so the run cannot pass.
    if totals["skipped_at_cap"]:
        failures.append(f"{totals['skipped_at_cap']} scheduled batches not sent: concurrency cap "
                        f"{cfg.concurrency} reached, the offered rate fell below the target "
                        "(the server answered too slowly; --concurrency raises the cap)")
    if zero_loss["status"] == "skip":
        warnings.append(f"zero-loss check skipped: {zero_loss['reason']}")
    push_urls = sorted({s.base_url + PUSH_PATH for s in cfg.stores})
    return {
        "schema": REPORT_SCHEMA,
        "tool_version": __version__,
        "run_id": cfg.run_id,
        "started_at": _rfc3339(run.started_wall),
        "finished_at": _rfc3339(run.finished_wall),
        "config": {
            "push_url": push_urls[0] if len(push_urls) == 1 else push_urls,
            "query_url": (query_url.rstrip("/") + "/loki/api/v1/query") if query_url else None,
            "stores": [s.store_id for s in cfg.stores],
            "lines_per_request": cfg.lines_per_request,
            "concurrency": cfg.concurrency,
            "timeout_s": cfg.timeout,
            "max_retries": cfg.policy.max_retries,
            "backoff_base_s": cfg.policy.backoff_base,
            "backoff_max_s": cfg.policy.backoff_max,
            "retry_after_max_s": cfg.policy.retry_after_max,
            "environment": cfg.environment,
            "run_id_in": cfg.run_id_in,
            "phases": [{"name": p.name, "rate": p.rate, "duration_s": p.duration} for p in cfg.phases],
        },
        "phases": phases,
        "totals": totals,
        "stores": {
            s.store_id: {
                "sent_lines": run.store_sent[s.store_id],
                "acked_lines": run.store_acked[s.store_id],
                "dropped_lines": run.store_dropped[s.store_id],
            }
            for s in cfg.stores
        },
        "error_samples": dict(sorted(run.error_samples.items())),
        "zero_loss": zero_loss,
        "warnings": warnings,
        "result": "fail" if failures else "pass",
        "failures": failures,
    }


def _num(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def summary_table(report: dict) -> str:
    cfg = report["config"]
    lines = [
        f"obs-loadtest {report['run_id']}: {len(cfg['stores'])} stores, {cfg['lines_per_request']} lines/batch, "
        f"concurrency {cfg['concurrency']}, push {cfg['push_url']}",
        "",
    ]
    header = (f"{'phase':<10} {'target/s':>8} {'batches':>8} {'ok':>7} {'req/s':>8} {'lines/s':>9} "
              f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'retried':>7} {'dropped':>7} {'skipped':>7}")
    lines += [header, "-" * len(header)]
    for row in report["phases"] + [report["totals"]]:
        lat = row["latency_ms"]
        lines.append(
            f"{row['name']:<10} {row['target_rps']:>8g} {row['batches']:>8} {row['ok_batches']:>7} "
            f"{row['achieved_rps']:>8.1f} {row['achieved_lines_per_s']:>9.1f} {_num(lat['p50']):>8} "
            f"{_num(lat['p95']):>8} {_num(lat['p99']):>8} {row['retried_batches']:>7} "
            f"{row['dropped_batches']:>7} {row['skipped_at_cap']:>7}")
    errors = report["totals"]["errors_by_status"]
    lines.append("")
    lines.append("errors by status: " + (", ".join(f"{k}={v}" for k, v in errors.items()) or "none")
                 + f"  (attempts {report['totals']['attempts']}, retries {report['totals']['retries']})")
    for status, message in report["error_samples"].items():
        lines.append(f"  {status}: {message}")
    zl = report["zero_loss"]
    lines.append(f"zero loss: {zl['status'].upper()} - {zl['reason']}")
    if zl.get("stores") and zl["status"] in ("pass", "fail"):
        lines.append(f"  {'store':<12} {'expected':>9} {'found':>9} {'missing':>8}")
        for store, e in zl["stores"].items():
            lines.append(f"  {store:<12} {e['expected']:>9} {_num(e['found'], '{}'):>9} {_num(e['missing'], '{}'):>8}")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    lines.append(f"result: {report['result'].upper()}" + (" - " + "; ".join(report["failures"]) if report["failures"] else ""))
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2, sort_keys=False)
        fh.write("\n")
