"""WebSockets through each target: RSS of many idle connections, then echo round trips on a few
busy ones (the gateway relays to the echo server standing in for Realtime)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from bench import log
from bench.measure import PeakRss, ProcSet, quantile
from bench.results import Row
from bench.scenario import Context, Scenario


def run(ctx: Context) -> list[Row]:
    a, st, gw = ctx.args, ctx.stack, ctx.gw
    assert gw.procset is not None
    targets = [
        ("a", f"ws://127.0.0.1:{st.ws_port}/socket/websocket?vsn=1.0.0", st.ws_ps),
        ("b", f"ws://127.0.0.1:{st.proxy_port}/realtime/v1/websocket?vsn=1.0.0", st.proxy_ps),
        ("c", f"{gw.ws_url}/realtime/v1/websocket?apikey={ctx.pub}&vsn=1.0.0", gw.procset),
    ]
    rows = []
    for via, url, ps in targets:
        log(f"WebSocket via {via}: {a.ws_idle} idle connections, {a.ws_active} active for {a.ws_duration:g}s")
        r = asyncio.run(measure(url, ps, a.ws_idle, a.ws_active, a.ws_duration))
        row = Row("ws", f"WebSocket echo, {a.ws_idle:,} idle open", via, rps=r["msgs_per_s"], p50_ms=r["p50_ms"],
                  p99_ms=r["p99_ms"], cpu_us=r["cpu_us_per_msg"], peak_rss_mb=r["peak_rss_mb"], key=f"ws.{via}",
                  note=f"+{r['idle_extra_rss_mb']:.1f} MB RSS for {a.ws_idle:,} idle", extra=r)
        if r["errors"]:
            row.add_note(f"ERRORS: {r['errors']}")
        rows.append(row)
        log(f"  {r['msgs_per_s']:,.0f} msg/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, idle extra RSS "
            f"{r['idle_extra_rss_mb']:.1f} MB")
    base = rows[1].rps
    for row in rows:
        row.ratio = row.rps / base if base and row.rps is not None else None
    return rows


async def measure(url: str, ps: ProcSet, idle: int, active: int, duration: float) -> dict[str, Any]:
    """Open ``idle`` connections (RSS before and after), then ``active`` ones echo for ``duration``."""
    loop = asyncio.get_running_loop()
    payload = json.dumps({"topic": "realtime:bench", "event": "heartbeat", "payload": {"n": "x" * 64}, "ref": "1"})
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    errors = 0
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        rss0 = ps.rss()
        sem = asyncio.Semaphore(64)

        async def open_one() -> Any:
            async with sem:
                return await session.ws_connect(url, autoping=True, max_msg_size=0, compress=0)

        async def drain(ws: Any) -> None:  # answers pings; idle connections see nothing else
            with contextlib.suppress(Exception):
                async for _ in ws:
                    pass

        idle_ws = await asyncio.gather(*[open_one() for _ in range(idle)])
        drains = [asyncio.ensure_future(drain(w)) for w in idle_ws]
        await asyncio.sleep(1.5)
        rss1 = ps.rss()
        act = [await session.ws_connect(url, autoping=True, max_msg_size=0, compress=0) for _ in range(active)]
        rtts: list[float] = []
        deadline = loop.time() + duration

        async def pinger(ws: Any) -> None:
            nonlocal errors
            while loop.time() < deadline:
                t = time.perf_counter()
                await ws.send_str(payload)
                msg = await ws.receive()
                rtts.append(time.perf_counter() - t)
                if msg.type != aiohttp.WSMsgType.TEXT or msg.data != payload:
                    errors += 1
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return

        cpu0 = ps.cpu()
        with PeakRss(ps) as peak:
            t0 = time.perf_counter()
            await asyncio.gather(*(pinger(w) for w in act))
            elapsed = time.perf_counter() - t0
        cpu1 = ps.cpu()
        alive = sum(1 for w in idle_ws if not w.closed)
        for w in act + list(idle_ws):
            with contextlib.suppress(Exception):
                await w.close()
        for d in drains:
            d.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
    n = max(len(rtts), 1)
    return {
        "messages": len(rtts), "msgs_per_s": len(rtts) / elapsed if elapsed else 0.0,
        "p50_ms": quantile(rtts, 0.5) * 1000 if rtts else None, "p99_ms": quantile(rtts, 0.99) * 1000 if rtts else None,
        "max_ms": max(rtts) * 1000 if rtts else None, "cpu_us_per_msg": (cpu1 - cpu0) / n * 1e6,
        "rss_before_mb": rss0 / 2 ** 20, "rss_idle_mb": rss1 / 2 ** 20, "idle_extra_rss_mb": (rss1 - rss0) / 2 ** 20,
        "peak_rss_mb": peak.peak / 2 ** 20, "idle_still_open": alive, "errors": errors + (idle - alive),
    }


SCENARIO = Scenario(run=run)
