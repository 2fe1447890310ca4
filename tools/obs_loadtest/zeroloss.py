"""Zero-loss check: ask Loki, per store, how many lines of this run it holds.

For each store the query is an instant LogQL metric query through the edge's
admin-only query route (``GET /loki/api/v1/query``)::

    sum(count_over_time({store="S001", run_id="<run id>"}[<window>s]))

(``{store="S001"} | run_id="<run id>"`` when the run id travels as structured
metadata). The expected count is the lines of the batches that were answered
2xx: a dropped batch is reported as dropped, not as lost. Loki makes a push
queryable as soon as it answers 204 (ingesters serve recent data), but the
check still polls until every store's count has settled or ``timeout`` passes.

Outcome: ``pass`` when every store's found count equals its expected count;
``fail`` when a store has fewer (lost lines) or more (duplicates) lines;
``error`` when the query route does not answer usable data (the reason says
what it answered).
"""
from __future__ import annotations

import asyncio
import json
import math
import time

import aiohttp


class QueryError(RuntimeError):
    pass


def _quote(value: str) -> str:
    return json.dumps(value)  # a LogQL string literal: double quotes, escapes like Go's


def count_query(store_id: str, run_id: str, window_s: int, run_id_in: str = "label") -> str:
    if run_id_in == "label":
        selector = f"{{store={_quote(store_id)}, run_id={_quote(run_id)}}}"
    else:
        selector = f"{{store={_quote(store_id)}}} | run_id={_quote(run_id)}"
    return f"sum(count_over_time({selector}[{int(window_s)}s]))"


def parse_count(payload: dict) -> int:
    if payload.get("status") != "success":
        raise QueryError(f"query status {payload.get('status')!r}: {payload.get('error', '')}")
    data = payload.get("data") or {}
    if data.get("resultType") != "vector":
        raise QueryError(f"expected a vector result, got {data.get('resultType')!r}")
    result = data.get("result") or []
    return sum(int(float(item["value"][1])) for item in result)


async def query_count(session: aiohttp.ClientSession, query_base: str, authorization: str, query: str, at_ns: int,
                      timeout: float = 10.0) -> int:
    url = query_base.rstrip("/") + "/loki/api/v1/query"
    params = {"query": query, "time": str(at_ns)}
    try:
        async with session.get(url, params=params, headers={"Authorization": authorization}, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise QueryError(f"GET {url} answered {resp.status}: {text[:200].strip()}")
            try:
                payload = json.loads(text)
            except ValueError as exc:
                raise QueryError(f"GET {url} answered 200 but not JSON: {text[:120].strip()}") from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise QueryError(f"GET {url} failed: {exc.__class__.__name__}: {exc}") from exc
    return parse_count(payload)


async def check_zero_loss(session: aiohttp.ClientSession, query_base: str, authorization: str, run_id: str,
                          expected: dict, started_wall: float, *, run_id_in: str = "label",
                          timeout: float = 30.0, interval: float = 1.0, http_timeout: float = 10.0,
                          sleep=asyncio.sleep, clock=time.monotonic) -> dict:
    stores = {s: {"expected": int(n), "found": None, "missing": None} for s, n in sorted(expected.items())}
    report = {"status": "error", "reason": None, "query_url": query_base.rstrip("/") + "/loki/api/v1/query",
              "run_id": run_id, "stores": stores, "lost_lines": 0, "duplicate_lines": 0, "queries": 0}
    pending = set(stores)
    deadline = clock() + timeout
    try:
        while True:
            now_wall = time.time()
            window = int(math.ceil(now_wall - started_wall)) + 60
            for store_id in sorted(pending):
                query = count_query(store_id, run_id, window, run_id_in)
                found = await query_count(session, query_base, authorization, query, time.time_ns(), http_timeout)
                report["queries"] += 1
                entry = stores[store_id]
                entry["found"] = found
                entry["missing"] = entry["expected"] - found
                if found >= entry["expected"]:
                    pending.discard(store_id)
            if not pending or clock() >= deadline:
                break
            await sleep(interval)
    except QueryError as exc:
        report["reason"] = str(exc)
        return report
    lost = {s: e["missing"] for s, e in stores.items() if e["missing"] and e["missing"] > 0}
    dup = {s: -e["missing"] for s, e in stores.items() if e["missing"] and e["missing"] < 0}
    report["lost_lines"] = sum(lost.values())
    report["duplicate_lines"] = sum(dup.values())
    if not lost and not dup:
        report["status"] = "pass"
        report["reason"] = f"every store's {sum(e['expected'] for e in stores.values())} acknowledged lines found"
    else:
        report["status"] = "fail"
        parts = [f"{s} missing {n}" for s, n in sorted(lost.items())] + \
                [f"{s} has {n} extra" for s, n in sorted(dup.items())]
        report["reason"] = "; ".join(parts)
    return report
