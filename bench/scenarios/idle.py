"""Many idle keep-alive client connections (issue 15): in each round the publishable GET wrk load
on the main gateway without them, then 10,000 connections opened (each makes one request and
stays open, idle), the RSS they add to the gateway's processes, and the same wrk load with them
held; afterwards each of them must still be open and answer a second request.

The idle connections are raw asyncio connections in this process (a Protocol each, no thread per
connection); wrk runs in an executor thread meanwhile, so the event loop notices any the gateway
closes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from bench import log
from bench.gateways import BenchGateway
from bench.results import Row, paired_ratio, summarize
from bench.runner import sanity
from bench.scenario import Context, Scenario
from bench.wrk import Load
from gateway.config.sections import ServerSettings

MAX_CONNECTIONS = ServerSettings.model_fields["max_connections"].default  # per worker; the bench leaves it
KEEPALIVE_S = ServerSettings.model_fields["keepalive_seconds"].default  # idle connections close after this
FD_RESERVE = 256  # descriptors this process keeps for everything else (logs, psutil, pipes)
_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


class Client(asyncio.Protocol):
    """One keep-alive connection: ``ask()`` sends the request and resolves to the answer's status
    (0 if the connection closed first)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.answer: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def ask(self) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        m = _LENGTH.search(self.buf, 0, end)
        size = end + 4 + (int(m.group(1)) if m else 0)
        if len(self.buf) < size:
            return
        status, self.buf = int(self.buf[9:12]), self.buf[size:]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(0)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_idle(host: str, port: int, request: bytes, n: int, concurrency: int) -> tuple[list[Client], Counter[str]]:
    """Up to ``n`` connections, ``concurrency`` at a time, each having had one 200 answer; the
    failures by kind. Stops opening at the first sign the machine is out of descriptors or ports."""
    loop = asyncio.get_running_loop()
    held: list[Client] = []
    failed: Counter[str] = Counter()
    sem = asyncio.Semaphore(concurrency)
    out_of = False

    async def one() -> None:
        nonlocal out_of
        async with sem:
            if out_of:
                return
            c: Client | None = None
            try:
                _, c = await loop.create_connection(lambda: Client(request), host, port)
                status = await asyncio.wait_for(c.ask(), 10)
            except OSError as e:
                failed[errno.errorcode.get(e.errno or 0, type(e).__name__)] += 1
                out_of = out_of or e.errno in (errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS)
                status = -1
            except asyncio.TimeoutError:
                failed["timeout"] += 1
                status = -1
            if status == 200 and c is not None:
                held.append(c)
                return
            if status > 0:
                failed[f"status {status}"] += 1
            elif status == 0:
                failed["closed before answering"] += 1
            if c is not None:
                c.close()

    await asyncio.gather(*(one() for _ in range(n)))
    return held, failed


async def ask_all(clients: list[Client], concurrency: int) -> int:
    """A second request on each connection still open: how many answered 200."""
    sem = asyncio.Semaphore(concurrency)

    async def one(c: Client) -> bool:
        async with sem:
            if c.closed:
                return False
            try:
                return await asyncio.wait_for(c.ask(), 10) == 200
            except (asyncio.TimeoutError, OSError):
                return False

    return sum(await asyncio.gather(*(one(c) for c in clients)))


def capacity(want: int) -> tuple[int, str]:
    """How many idle connections this process can hold (file descriptors, ephemeral ports toward one
    address), and why fewer than ``want`` if so. RLIMIT_NOFILE is raised to its hard limit first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limits = [(soft - FD_RESERVE, f"RLIMIT_NOFILE is {soft:,} (hard {hard:,})")]
    with contextlib.suppress(OSError, ValueError):
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        limits.append((hi - lo + 1 - 1000, f"the ephemeral port range {lo}-{hi} toward one address"))
    cap, why = min(limits)
    return (want, "") if want <= cap else (max(cap, 0), why)


def per_worker(gw: BenchGateway) -> list[int]:
    """Established connections on the public port, per worker."""
    out = []
    for pid in gw.worker_pids():
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            out.append(-1)
            continue
        out.append(sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == gw.port))
    return out


def run(ctx: Context) -> list[Row]:
    a, gw = ctx.args, ctx.gw
    assert gw.procset is not None
    n, why = capacity(a.idle_connections)
    if why:
        log(f"idle connections: {a.idle_connections:,} asked, at most {n:,} here: {why}")
    url = gw.url + "/rest/v1/items"
    base = Load("idle.c.base", "idle", "publishable key GET, no idle connections", "c", url, gw.procset,
                {"apikey": ctx.pub})
    held = Load("idle.c.held", "idle", f"publishable key GET, {n:,} idle keep-alive connections open", "c", url,
                gw.procset, {"apikey": ctx.pub}, vs="idle.c.base")
    sanity([base])
    request = f"GET /rest/v1/items HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\napikey: {ctx.pub}\r\n\r\n".encode()
    if a.warmup > 0:
        ctx.wrk.run(base, a.warmup)
    runs: dict[str, list[dict[str, Any]]] = {base.key: [], held.key: []}
    rounds: list[dict[str, Any]] = []
    for rnd in range(1, a.rounds + 1):
        r0 = ctx.wrk.run(base, a.duration)
        runs[base.key].append(r0)
        info, r1 = asyncio.run(_round(ctx, held, request, n))
        runs[held.key].append(r1)
        rounds.append(info)
        log(f"round {rnd}/{a.rounds} idle: {r0['rps']:,.0f} req/s without, {r1['rps']:,.0f} with {info['held']:,} "
            f"idle open (+{info['extra_rss_mb']:.1f} MB gateway RSS, per worker {info['per_worker']}, opened in "
            f"{info['open_s']:.1f}s; {info['still_open']:,} still open, {info['answered_again']:,} answered again)"
            + (f"; failed {dict(info['failed'])}" if info["failed"] else ""))
    rb, rh = summarize(base, runs[base.key]), summarize(held, runs[held.key])
    ratio = paired_ratio(rh, rb)
    worst = max(rounds, key=lambda i: i["extra_rss_mb"])
    e = {
        "idle_asked": a.idle_connections, "idle_target": n, "idle_capped_by": why,
        "idle_held": min(i["held"] for i in rounds), "idle_extra_rss_mb": worst["extra_rss_mb"],
        "idle_kb_each": worst["extra_rss_mb"] * 1024 / max(worst["held"], 1),
        "still_open": min(i["still_open"] for i in rounds), "answered_again": min(i["answered_again"] for i in rounds),
        "per_worker": worst["per_worker"], "max_connections_per_worker": MAX_CONNECTIONS,
        "keepalive_seconds": KEEPALIVE_S, "rounds": rounds, "vs_ratio": ratio,
    }
    rh.extra.update(e)
    rh.note = (f"+{e['idle_extra_rss_mb']:.1f} MB gateway RSS for {e['idle_held']:,} idle ({e['idle_kb_each']:.1f} KB "
               f"each), per worker {e['per_worker']} (max_connections {MAX_CONNECTIONS:,} each); after the load "
               f"{e['still_open']:,} still open, {e['answered_again']:,} answered again"
               + (f"; {ratio:.3f} × without" if ratio is not None else "") + (f"; {rh.note}" if rh.note else ""))
    if e["idle_held"] < a.idle_connections:
        rh.add_note(f"only {e['idle_held']:,} of {a.idle_connections:,} held" + (f" ({why})" if why else ""))
    failed = sum((Counter(i["failed"]) for i in rounds), Counter())
    if failed:
        rh.add_note(f"failed to open: {dict(failed)}")
    return [rb, rh]


async def _round(ctx: Context, load: Load, request: bytes, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open ``n`` idle connections, measure, run ``load`` with them held, check them, close them."""
    gw, loop = ctx.gw, asyncio.get_running_loop()
    assert gw.procset is not None
    time.sleep(0.5)
    me = psutil.Process()
    rss0, client0 = gw.procset.rss(), me.memory_info().rss
    t0 = time.monotonic()
    clients, failed = await open_idle("127.0.0.1", gw.port, request, n, ctx.args.connections)
    open_s = time.monotonic() - t0
    try:
        await asyncio.sleep(1.5)
        rss1, client1 = gw.procset.rss(), me.memory_info().rss
        workers = per_worker(gw)
        r = await loop.run_in_executor(None, ctx.wrk.run, load, ctx.args.duration)
        still_open = sum(not c.closed for c in clients)
        answered = await ask_all(clients, ctx.args.connections)
        idle_s = time.monotonic() - t0
    finally:
        for c in clients:
            c.close()
        await asyncio.sleep(1.0)
    rss2 = gw.procset.rss()
    info = {"held": len(clients), "failed": dict(failed), "open_s": open_s, "rss_before_mb": rss0 / 2 ** 20,
            "rss_idle_mb": rss1 / 2 ** 20, "extra_rss_mb": (rss1 - rss0) / 2 ** 20,
            "rss_after_close_mb": rss2 / 2 ** 20, "per_worker": workers,
            "still_open": still_open, "answered_again": answered, "held_s": idle_s,
            "client_extra_rss_mb": (client1 - client0) / 2 ** 20}
    return info, r


SCENARIO = Scenario(run=run)
