"""One batch's life: push, and retry as a real client should.

Retryable: 429, every 5xx, timeouts and connection errors. Anything else that
is not 2xx (400, 401, 403, 413, ..., and TLS errors such as an untrusted
certificate) drops the batch at once: retrying cannot fix it. Retries are bounded (``max_retries`` beyond the first attempt); the
delay before retry n (0-based) is exponential with "equal jitter"::

    d = min(backoff_max, backoff_base * 2**n);  delay = d/2 + uniform(0, d/2)

A ``Retry-After`` header (seconds or an HTTP date) on a 429/503 is honoured:
the client never retries sooner than asked. When it asks for longer than
``retry_after_max`` the batch is dropped instead of waiting.
"""
from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, field

import aiohttp

RETRYABLE_EXCEPTIONS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def basic_auth(user: str, password: str) -> str:
    """An Authorization header value for HTTP basic auth."""
    return aiohttp.encode_basic_auth(user, password)


@dataclass
class RetryPolicy:
    max_retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    retry_after_max: float = 60.0

    def backoff(self, retry_index: int, rng: random.Random) -> float:
        d = min(self.backoff_max, self.backoff_base * (2 ** retry_index))
        return d / 2 + rng.uniform(0, d / 2)


def is_retryable(status) -> bool:
    if isinstance(status, str):  # "timeout", "connection_error" retry; "tls_error" cannot get better
        return status != "tls_error"
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header; None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class BatchOutcome:
    ok: bool
    attempts: int
    statuses: list = field(default_factory=list)      # every attempt's status (int or "timeout"/...)
    latencies: list = field(default_factory=list)     # seconds, attempts that got a response
    delays: list = field(default_factory=list)        # seconds slept before each retry
    messages: dict = field(default_factory=dict)      # status -> first error message (exceptions)
    drop_reason: str | None = None


class Pusher:
    def __init__(self, session: aiohttp.ClientSession, policy: RetryPolicy, *, timeout: float = 10.0,
                 rng: random.Random | None = None, sleep=asyncio.sleep, clock=time.perf_counter):
        self.session = session
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.rng = rng or random.Random()
        self.sleep = sleep  # injectable: the tests record the delays instead of waiting
        self.clock = clock

    async def push(self, url: str, body: bytes, authorization: str, on_attempt=None) -> BatchOutcome:
        """``authorization``: the Authorization header value, e.g. basic_auth(user, token)."""
        out = BatchOutcome(ok=False, attempts=0)
        headers = {"Content-Type": "application/json", "Authorization": authorization}
        while True:
            out.attempts += 1
            retry_after = None
            t0 = self.clock()
            try:
                async with self.session.post(url, data=body, headers=headers, timeout=self.timeout) as resp:
                    await resp.read()
                    status = resp.status
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                out.latencies.append(self.clock() - t0)
            except asyncio.TimeoutError:
                status = "timeout"
                out.messages.setdefault(status, f"no answer within {self.timeout.total:g}s")
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                status = "tls_error"
                out.messages.setdefault(status, f"{exc.__class__.__name__}: {exc}")
            except RETRYABLE_EXCEPTIONS as exc:
                status = "connection_error"
                out.messages.setdefault(status, f"{exc.__class__.__name__}: {exc}")
            out.statuses.append(status)
            if on_attempt is not None:
                on_attempt(status)
            if isinstance(status, int) and 200 <= status < 300:
                out.ok = True
                return out
            if not is_retryable(status):
                out.drop_reason = f"non-retryable status {status}"
                return out
            retry_index = out.attempts - 1
            if retry_index >= self.policy.max_retries:
                out.drop_reason = f"gave up after {out.attempts} attempts (last: {status})"
                return out
            delay = self.policy.backoff(retry_index, self.rng)
            if retry_after is not None:
                if retry_after > self.policy.retry_after_max:
                    out.drop_reason = f"Retry-After {retry_after:g}s exceeds retry_after_max"
                    return out
                delay = max(delay, retry_after)
            out.delays.append(delay)
            await self.sleep(delay)
