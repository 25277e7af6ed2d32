"""First use of a key the gateway does not hold yet (inserted without notification), against a
known key, on a new connection and on the next requests; and keys just created over the admin API."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import time

from bench import BenchError, log
from bench.keys import insert_keys, key_rows
from bench.measure import quantile
from bench.results import Row
from bench.scenario import Context, Scenario

FOLLOW = 20  # requests after the first on the same connection


def run(ctx: Context) -> list[Row]:
    n = ctx.args.first_use_keys
    log(f"first use: {n} keys inserted without notification, {FOLLOW} requests each on one connection")
    rows, plain = key_rows(n, secret_every=0, name="bench_first_{:04d}")
    asyncio.run(insert_keys(ctx.stack.dsn, rows, notify=False))
    known_first, known_next, new_first, new_next, created_first = [], [], [], [], []
    for key in plain:
        f, nxt = _series(ctx.gw.port, ctx.pub)  # baseline: a key in memory, also on a new connection
        known_first.append(f)
        known_next += nxt
        f, nxt = _series(ctx.gw.port, key)
        new_first.append(f)
        new_next += nxt
    for i in range(min(n, 10)):  # created over the admin API and used at once
        f, _ = _series(ctx.gw.port, ctx.gw.new_key("publishable", f"bench_created_{i:03d}"))
        created_first.append(f)
    med = statistics.median
    row = Row("firstuse", "first use of a key not in memory", "c", p50_ms=med(new_first), p99_ms=max(new_first),
              key="firstuse",
              note=f"first request p50 {med(new_first):.2f} ms (max {max(new_first):.2f}); next {FOLLOW} on the "
                   f"same connection p50 {med(new_next):.2f} ms; known key: first {med(known_first):.2f} ms, next "
                   f"{med(known_next):.2f} ms; just created over the admin API: first {med(created_first):.2f} ms")
    row.extra = {
        "keys": n, "first_ms": new_first, "next_p50_ms": med(new_next), "next_p99_ms": quantile(new_next, 0.99),
        "known_first_p50_ms": med(known_first), "known_next_p50_ms": med(known_next),
        "created_first_ms": created_first, "extra_first_ms": med(new_first) - med(known_first),
    }
    log(row.note)
    return [row]


def _series(port: int, key: str) -> tuple[float, list[float]]:
    """Milliseconds of the first request on a new connection, and of the FOLLOW next on it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.connect()
        first = _timed(conn, key)
        return first, [_timed(conn, key) for _ in range(FOLLOW)]
    finally:
        conn.close()


def _timed(conn: http.client.HTTPConnection, key: str) -> float:
    t = time.perf_counter()
    conn.request("GET", "/rest/v1/items", headers={"apikey": key})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise BenchError(f"first-use request answered {resp.status}")
    return (time.perf_counter() - t) * 1000


SCENARIO = Scenario(run=run)
