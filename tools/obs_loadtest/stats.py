"""Counters and latency percentiles of a load test run."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest
    ranks (the ``inclusive`` method: numpy's default, ``statistics.quantiles(
    method="inclusive")``). None for no data."""
    if not 0 <= q <= 100:
        raise ValueError("percentile must be within 0..100")
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    frac = pos - lo
    return float(data[lo] + (data[hi] - data[lo]) * frac)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


@dataclass
class PhaseStats:
    """What happened to the batches scheduled in one phase.

    A *batch* is one push request body; it may take several *attempts* (HTTP
    requests) when retried. Latency is measured per attempt that got an HTTP
    response, from sending the request to reading the whole response.
    """

    name: str
    target_rps: float
    duration_s: float
    batches: int = 0          # batches started on schedule
    ok_batches: int = 0       # batches that ended with a 2xx
    sent_lines: int = 0       # lines in the batches started
    ok_lines: int = 0         # lines in the batches that ended with a 2xx
    attempts: int = 0         # HTTP attempts, retries included
    retries: int = 0          # attempts beyond each batch's first
    retried_batches: int = 0  # batches that needed at least one retry
    dropped_batches: int = 0  # batches given up: retries exhausted or a non-retryable answer
    dropped_lines: int = 0
    skipped_at_cap: int = 0   # scheduled slots not started: the concurrency cap was reached
    errors: Counter = field(default_factory=Counter)  # non-2xx attempts by status ("429", "503", "timeout", ...)
    latencies: list = field(default_factory=list)     # seconds, per attempt with a response
    started_at: float | None = None   # loop time of the phase's start
    finished_at: float | None = None  # loop time when its last batch finished (or the phase's end)

    @property
    def elapsed(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return max(self.finished_at - self.started_at, 1e-9)

    def merge_into(self, total: "PhaseStats") -> None:
        for name in ("batches", "ok_batches", "sent_lines", "ok_lines", "attempts", "retries",
                     "retried_batches", "dropped_batches", "dropped_lines", "skipped_at_cap"):
            setattr(total, name, getattr(total, name) + getattr(self, name))
        total.errors.update(self.errors)
        total.latencies.extend(self.latencies)
        if self.started_at is not None:
            total.started_at = self.started_at if total.started_at is None else min(total.started_at, self.started_at)
        if self.finished_at is not None:
            total.finished_at = self.finished_at if total.finished_at is None else max(total.finished_at, self.finished_at)

    def to_dict(self) -> dict:
        elapsed = self.elapsed
        return {
            "name": self.name,
            "target_rps": self.target_rps,
            "duration_s": self.duration_s,
            "elapsed_s": round(elapsed, 3),
            "batches": self.batches,
            "ok_batches": self.ok_batches,
            "sent_lines": self.sent_lines,
            "ok_lines": self.ok_lines,
            "achieved_rps": round(self.ok_batches / elapsed, 2) if elapsed else 0.0,
            "achieved_lines_per_s": round(self.ok_lines / elapsed, 2) if elapsed else 0.0,
            "attempts": self.attempts,
            "retries": self.retries,
            "retried_batches": self.retried_batches,
            "dropped_batches": self.dropped_batches,
            "dropped_lines": self.dropped_lines,
            "skipped_at_cap": self.skipped_at_cap,
            "errors_by_status": dict(sorted(self.errors.items())),
            "latency_ms": {
                "p50": _ms(percentile(self.latencies, 50)),
                "p95": _ms(percentile(self.latencies, 95)),
                "p99": _ms(percentile(self.latencies, 99)),
                "max": _ms(max(self.latencies) if self.latencies else None),
                "samples": len(self.latencies),
            },
        }
