"""The run: the stack and the main gateway up, then the wrk loads of every chosen scenario
alternating round by round, then the scenarios that run on their own, in the order of
bench/scenarios; the rows they make."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import BenchError, log
from bench.keys import user_jwt
from bench.process import http_request
from bench.results import Row, paired_ratio, summarize
from bench.scenario import Context, Scenario
from bench.stack import Stack
from bench.wrk import Load, Wrk


def setup(args: argparse.Namespace, stack: Stack, wrk: str) -> Context:
    """Start the stack and the main gateway with its keys; note the gateway's idle facts."""
    stack.start()
    gw = stack.gateway("gateway")
    log(f"gateway (access log on) healthy in {gw.startup_s:.2f}s on :{gw.port}, workers {len(gw.worker_pids())}")
    ctx = Context(args, stack, Wrk(wrk, args, stack.upstream_ps), gw, pub=gw.new_key("publishable", "bench_pub"),
                  sec=gw.new_key("secret", "bench_secret"), jwt=user_jwt())
    time.sleep(0.5)
    assert gw.procset is not None
    ctx.facts.update({
        "gateway_startup_s_empty_db": round(gw.startup_s, 3),
        "gateway_idle_rss_mb": round(gw.procset.rss() / 2 ** 20, 1),
        "gateway_idle_memory": gw.procset.memory(),
        "gateway_idle_rss_each_mb": [round(x / 2 ** 20, 1) for x in gw.procset.rss_each()],
        "gateway_all_workers_ready_s_empty_db": gw.all_ready_s,
        "gateway_processes": len(gw.procset.procs()),
        "connections": args.connections,
    })
    return ctx


def run(ctx: Context, scenarios: dict[str, Scenario]) -> list[Row]:
    """Every scenario's rows: the wrk loads first (in rounds), then the runs of their own."""
    loads = {name: s.loads(ctx) for name, s in scenarios.items() if s.loads}
    rows = measure_rounds(ctx, loads, {name: scenarios[name].throughput for name in loads})
    for s in scenarios.values():
        if s.run:
            rows += s.run(ctx)
    return rows


def measure_rounds(ctx: Context, loads: dict[str, list[Load]], throughput: dict[str, str]) -> list[Row]:
    """Warm-up, then ``--rounds`` rounds of every load in turn (a, b, c, c, … then again, so that
    slow drifts of the machine hit all alike); rows with medians and c/b paired by round."""
    every = [load for group in loads.values() for load in group]
    if not every:
        return []
    sanity(every)
    a = ctx.args
    if a.warmup > 0:
        log(f"warm-up: {a.warmup:g}s per URL")
        for load in every:
            ctx.wrk.run(load, a.warmup)
    results: dict[str, list[dict[str, Any]]] = {load.key: [] for load in every}
    shows_bytes = {load.key for name, group in loads.items() if throughput[name] == "bytes_per_s" for load in group}
    for rnd in range(1, a.rounds + 1):
        for load in every:
            r = ctx.wrk.run(load, a.duration)
            results[load.key].append(r)
            log(f"round {rnd}/{a.rounds} {load.key:<18} {r['rps']:>10,.0f} req/s  p50 {r.get('p50_ms', 0):6.2f} ms  "
                f"p99 {r.get('p99_ms', 0):6.2f} ms  {r['cpu_us_per_req']:7.1f} µs/req"
                + (f"  {r['bytes_per_s'] / 2 ** 20:,.0f} MiB/s" if load.key in shows_bytes else "")
                + (f"  errors {r['errors']}" if r["errors"] else ""))
    rows: list[Row] = []
    for name, group in loads.items():
        by_key = {load.key: summarize(load, results[load.key], throughput[name]) for load in group}
        base = next((by_key[load.key] for load in group if load.via == "b"), None)
        if base and base.rps:
            for row in by_key.values():  # the median of per-round ratios: each pair ran minutes apart at most
                row.ratio = paired_ratio(row, base, throughput[name])
        rows += by_key.values()
    by_key = {row.key: row for row in rows}
    for load in every:
        if load.vs in by_key:  # relative to another load of the same rounds, e.g. limits on vs off
            row, other = by_key[load.key], by_key[load.vs]
            if (ratio := paired_ratio(row, other)) is not None:
                row.extra["vs_ratio"] = ratio
                row.add_note(f"{ratio:.3f} × {other.label}")
    return rows


def sanity(loads: list[Load]) -> None:
    """Each URL answers as expected once before anything is measured (wrong keys fail fast)."""
    for load in loads:
        status, body = http_request(load.url, load.headers, load.body, timeout=10)
        if status != load.expect:
            raise BenchError(f"{load.key}: {load.url} answered {status}: {body[:300]!r}")
