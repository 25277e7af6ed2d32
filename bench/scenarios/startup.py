"""A gateway started on a fresh database of 100,000 keys: time to healthy and to every worker
accepting, memory, start-up CPU; then what a periodic full reload of that table costs."""

from __future__ import annotations

import asyncio
import http.client
import time
from typing import Any

from bench import log
from bench.gateways import BenchGateway
from bench.keys import insert_keys, key_rows
from bench.measure import PeakRss, quantile
from bench.process import http_request
from bench.results import Row
from bench.scenario import Context, Scenario

RELOAD_S = 5.0  # keys.refresh_seconds of the 100,000-key gateway, to see full reloads in a short run
CHECKS = 20  # key checks on new connections, which may land on any worker


def run(ctx: Context) -> list[Row]:
    a, n = ctx.args, ctx.args.keys
    log(f"start-up: {n:,} keys in a fresh database")
    dsn = ctx.stack.database(migrated=True)
    t0 = time.monotonic()
    rows, plain = key_rows(n)
    asyncio.run(insert_keys(dsn, rows))
    log(f"inserted {n:,} keys in {time.monotonic() - t0:.1f}s")
    g = ctx.stack.gateway("gateway-keys", dsn=dsn, access_log=False,
                          env={"GATEWAY_KEYS__REFRESH_SECONDS": str(RELOAD_S)} if a.reload_probe else {})
    try:
        ps = g.procset
        assert ps is not None
        ok = 0
        for i in range(CHECKS):
            status, _ = http_request(g.url + "/rest/v1/items", {"apikey": plain[(i * 7919) % n], "Connection": "close"})
            ok += status == 200
        time.sleep(1.0)
        rss, each, mem, hwm, cpu = ps.rss(), sorted(ps.rss_each(), reverse=True), ps.memory(), ps.peak_rss(), ps.cpu()
        reload = _reload_probe(g) if a.reload_probe else None
    finally:
        g.stop()
    base = ctx.facts.get("gateway_idle_rss_mb")
    ready = f"; all workers ready in {g.all_ready_s:.2f} s" if g.all_ready_s else ""
    row = Row("startup", f"{n:,} keys: start-up and memory", "c", peak_rss_mb=hwm / 2 ** 20, key="startup",
              note=f"healthy in {g.startup_s:.2f} s{ready}; RSS now {rss / 2 ** 20:.0f} MB in {len(each)} processes "
                   f"({', '.join(f'{x / 2 ** 20:.0f}' for x in each)}), PSS {mem['pss_mb']:.0f} MB"
                   + (f"; with 2 keys {base:.0f} MB" if base else "")
                   + f"; start-up CPU {cpu:.2f} s; {ok}/{CHECKS} key checks ok")
    row.extra = {"keys": n, "startup_s": g.startup_s, "all_workers_ready_s": g.all_ready_s,
                 "rss_mb": rss / 2 ** 20, "rss_each_mb": [x / 2 ** 20 for x in each], "memory": mem,
                 "peak_rss_mb_sum_of_vmhwm": hwm / 2 ** 20, "startup_cpu_s": cpu, "key_checks_ok": ok,
                 "rss_mb_with_2_keys": base}
    if ok != CHECKS:
        row.add_note("(KEY CHECKS FAILED)")
    log(f"start-up with {n:,} keys: {row.note}")
    if not reload:
        return [row]
    return [row, Row(
        "startup", f"{n:,} keys: periodic full reload (every {RELOAD_S:g} s here)", "c",
        p50_ms=reload["p50_ms"], p99_ms=reload["p99_ms"], peak_rss_mb=reload["peak_rss_mb"], key="reload",
        extra=reload, note=f"/health latency while the key table reloads: max {reload['max_ms']:.0f} ms; "
                           f"{reload['cpu_s_per_reload']:.2f} s CPU per reload (all workers); RSS after "
                           f"{reload['rss_after_mb']:.0f} MB")]


def _reload_probe(g: BenchGateway) -> dict[str, Any]:
    """The gateway runs with keys.refresh_seconds = RELOAD_S: the CPU of idle reload cycles, then
    /health latency (8 keep-alive connections in turn) across more reloads, which shows how long a
    reload of the whole table stalls a worker's event loop."""
    assert g.procset is not None
    log(f"periodic reload: {2 * RELOAD_S:g}s idle, then {2 * RELOAD_S + 1:g}s of /health probes")
    c0 = g.procset.cpu()
    with PeakRss(g.procset) as peak:
        time.sleep(2 * RELOAD_S)
        cpu = g.procset.cpu() - c0
        conns = [http.client.HTTPConnection("127.0.0.1", g.port, timeout=10) for _ in range(8)]
        lat: list[float] = []
        t_end = time.monotonic() + 2 * RELOAD_S + 1
        try:
            while time.monotonic() < t_end:
                for c in conns:
                    t = time.perf_counter()
                    c.request("GET", "/health")
                    c.getresponse().read()
                    lat.append((time.perf_counter() - t) * 1000)
                time.sleep(0.002)
        finally:
            for c in conns:
                c.close()
    return {"refresh_seconds": RELOAD_S, "cpu_s_per_reload": cpu / 2, "probes": len(lat),
            "p50_ms": quantile(lat, 0.5), "p99_ms": quantile(lat, 0.99), "max_ms": max(lat),
            "peak_rss_mb": peak.peak / 2 ** 20, "rss_after_mb": g.procset.rss() / 2 ** 20}


SCENARIO = Scenario(run=run)
