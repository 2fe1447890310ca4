"""The open-loop rate scheduler and the run itself.

Open loop: in a phase of rate r, batch k is due at ``phase_start + k / r``
whether or not earlier batches have returned, so a slow server shows up as
latency and errors, not as a politely lower offered rate. A concurrency cap
bounds the batches in flight (retry waits included); a due batch that finds
the cap reached is not started and is counted as ``skipped_at_cap``, so an
overloaded run says so instead of silently sending less. Batches go to the
stores round-robin, each with that store's credential and ``store`` label.
"""
from __future__ import annotations

import asyncio
import random
import socket
import ssl
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver

from .bundles import PUSH_PATH, StoreCredential
from .payload import PosLogGenerator, build_push_body
from .push import Pusher, RetryPolicy, basic_auth
from .stats import PhaseStats, percentile


@dataclass
class Phase:
    name: str
    rate: float      # batches (push requests) per second
    duration: float  # seconds

    @property
    def batches(self) -> int:
        return int(round(self.rate * self.duration)) if self.rate > 0 and self.duration > 0 else 0


DEFAULT_PHASES = [Phase("warm-up", 10, 30), Phase("sustained", 100, 120), Phase("spike", 200, 30)]


def new_run_id() -> str:
    return time.strftime("lt-%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:6]


@dataclass
class RunConfig:
    stores: list[StoreCredential]
    phases: list[Phase] = field(default_factory=lambda: list(DEFAULT_PHASES))
    lines_per_request: int = 10
    concurrency: int = 64
    timeout: float = 10.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    environment: str = "loadtest"
    run_id: str = field(default_factory=new_run_id)
    run_id_in: str = "label"  # label | metadata
    ca_file: str | None = None
    insecure: bool = False
    resolve: dict = field(default_factory=dict)  # {(host, port): address}, like curl --resolve
    seed: int | None = None
    progress: bool = True
    progress_stream: object = None  # default sys.stderr


class StaticResolver(AbstractResolver):
    """Resolves the given (host, port) pairs to fixed addresses, like curl's
    --resolve: the URL, SNI and certificate check keep the real name."""

    def __init__(self, mapping: dict, fallback: AbstractResolver):
        self.mapping = mapping
        self.fallback = fallback

    async def resolve(self, host, port=0, family=socket.AF_INET):
        addr = self.mapping.get((host, port))
        if addr is None:
            return await self.fallback.resolve(host, port, family)
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [{"hostname": host, "host": addr, "port": port, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        await self.fallback.close()


def make_connector(cfg: RunConfig, limit: int) -> aiohttp.TCPConnector:
    if cfg.insecure:
        ssl_arg: object = False
    else:
        ssl_arg = ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else True
    kwargs = {"limit": limit, "ssl": ssl_arg}
    if cfg.resolve:
        kwargs["resolver"] = StaticResolver(cfg.resolve, aiohttp.ThreadedResolver())
    return aiohttp.TCPConnector(**kwargs)


class LoadRun:
    def __init__(self, cfg: RunConfig, *, retry_sleep=asyncio.sleep):
        if not cfg.stores:
            raise ValueError("no store credentials")
        self.cfg = cfg
        self.retry_sleep = retry_sleep
        self.phase_stats: list[PhaseStats] = [PhaseStats(p.name, p.rate, p.duration) for p in cfg.phases]
        self.store_sent: Counter = Counter()
        self.store_acked: Counter = Counter()
        self.store_dropped: Counter = Counter()
        self.error_samples: dict = {}  # status -> first error message seen (exceptions only)
        self.inflight = 0
        self.started_wall: float | None = None
        self.finished_wall: float | None = None
        self._current = None
        self._tasks: set = set()
        self._seq = 0
        rng = random.Random(cfg.seed)
        self.generators = {s.store_id: PosLogGenerator(s.store_id, seed=rng.getrandbits(32) if cfg.seed is not None else None)
                           for s in cfg.stores}
        self.auth = {s.store_id: basic_auth(s.username, s.password) for s in cfg.stores}
        self.rng = random.Random(cfg.seed)
        # progress counters (cumulative)
        self._p_batches = 0
        self._p_ok = 0
        self._p_ok_lines = 0
        self._p_err = 0
        self._p_retries = 0
        self._p_dropped = 0
        self._recent_lat: list = []

    # -- batches -------------------------------------------------------------
    async def _batch(self, pusher: Pusher, st: PhaseStats, store: StoreCredential):
        loop = asyncio.get_running_loop()
        try:
            body = build_push_body(self.generators[store.store_id], self.cfg.lines_per_request,
                                   self.cfg.environment, self.cfg.run_id, self.cfg.run_id_in)
            n = self.cfg.lines_per_request
            st.sent_lines += n
            self.store_sent[store.store_id] += n

            def on_attempt(status):
                if not (isinstance(status, int) and 200 <= status < 300):
                    self._p_err += 1

            out = await pusher.push(store.base_url + PUSH_PATH, body, self.auth[store.store_id], on_attempt)
            st.attempts += out.attempts
            st.retries += out.attempts - 1
            self._p_retries += out.attempts - 1
            if out.attempts > 1:
                st.retried_batches += 1
            st.latencies.extend(out.latencies)
            self._recent_lat.extend(out.latencies)
            for status, message in out.messages.items():
                self.error_samples.setdefault(status, message[:300])
            for status in out.statuses:
                if not (isinstance(status, int) and 200 <= status < 300):
                    st.errors[str(status)] += 1
            if out.ok:
                st.ok_batches += 1
                st.ok_lines += n
                self.store_acked[store.store_id] += n
                self._p_ok += 1
                self._p_ok_lines += n
            else:
                st.dropped_batches += 1
                st.dropped_lines += n
                self.store_dropped[store.store_id] += n
                self._p_dropped += 1
        finally:
            self.inflight -= 1
            now = loop.time()
            st.finished_at = now if st.finished_at is None else max(st.finished_at, now)

    def _start(self, pusher, st, store):
        self.inflight += 1
        st.batches += 1
        self._p_batches += 1
        task = asyncio.ensure_future(self._batch(pusher, st, store))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_phase(self, pusher: Pusher, phase: Phase, st: PhaseStats):
        loop = asyncio.get_running_loop()
        self._current = phase
        start = loop.time()
        st.started_at = start
        stores = self.cfg.stores
        for k in range(phase.batches):
            due = start + k / phase.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.inflight >= self.cfg.concurrency:
                st.skipped_at_cap += 1
                continue
            store = stores[self._seq % len(stores)]
            self._seq += 1
            self._start(pusher, st, store)
        end = start + phase.duration
        if end > loop.time():
            await asyncio.sleep(end - loop.time())
        now = loop.time()
        st.finished_at = now if st.finished_at is None else max(st.finished_at, now)

    # -- progress ------------------------------------------------------------
    async def _progress(self, t0: float):
        out = self.cfg.progress_stream or sys.stderr
        loop = asyncio.get_running_loop()
        last = (0, 0, 0)
        while True:
            await asyncio.sleep(1.0)
            lat = self._recent_lat
            self._recent_lat = []
            p95 = percentile(lat, 95)
            cur = (self._p_batches, self._p_ok, self._p_ok_lines)
            d = [c - p for c, p in zip(cur, last)]
            last = cur
            name = self._current.name if self._current else "-"
            target = f"{self._current.rate:g}/s" if self._current else "-"
            p95_txt = f"{p95 * 1000:.0f}ms" if p95 is not None else "-"
            print(f"[{loop.time() - t0:6.1f}s] {name:<10} target {target:>7}  sent {d[0]:>4}/s  ok {d[1]:>4}/s  "
                  f"lines {d[2]:>6}/s  p95 {p95_txt:>7}  inflight {self.inflight:>3}  "
                  f"errors {self._p_err}  retries {self._p_retries}  dropped {self._p_dropped}",
                  file=out, flush=True)

    # -- the run ---------------------------------------------------------------
    async def run(self, session: aiohttp.ClientSession | None = None) -> None:
        own = session is None
        if own:
            session = aiohttp.ClientSession(connector=make_connector(self.cfg, self.cfg.concurrency))
        try:
            pusher = Pusher(session, self.cfg.policy, timeout=self.cfg.timeout, rng=self.rng,
                            sleep=self.retry_sleep)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            self.started_wall = time.time()
            progress = asyncio.ensure_future(self._progress(t0)) if self.cfg.progress else None
            try:
                for phase, st in zip(self.cfg.phases, self.phase_stats):
                    await self._run_phase(pusher, phase, st)
                self._current = None
                if self._tasks:
                    await asyncio.gather(*list(self._tasks))
            finally:
                if progress is not None:
                    progress.cancel()
                    try:
                        await progress
                    except asyncio.CancelledError:
                        pass
            self.finished_wall = time.time()
        finally:
            if own:
                await session.close()

    def totals(self) -> PhaseStats:
        duration = sum(p.duration for p in self.cfg.phases)
        offered = sum(p.rate * p.duration for p in self.cfg.phases)
        total = PhaseStats("total", round(offered / duration, 2) if duration else 0.0, duration)
        for st in self.phase_stats:
            st.merge_into(total)
        return total
