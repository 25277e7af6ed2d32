"""Rate limits (issue 10): what per-key and per-IP limits that never refuse cost a publishable GET
on each store, in the same rounds as the same GET without limits; a flood far over a limit (the
gateway's CPU per refused request, and proof that the upstream saw none of them); and accuracy:
two instances of two workers sharing one limit under a steady load above it, on each store."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from bench import BenchError, log
from bench.gateways import BenchGateway
from bench.measure import median, quantile
from bench.paced import paced
from bench.results import Row
from bench.scenario import Context, Scenario
from bench.wrk import Load
from gateway.config.sections import LimitsSettings

STORES = ("postgres", "redis")
NEVER = {"per_key": "1000000/m", "per_ip": "1000000/m"}  # far above what one machine can send
FLOOD_LIMIT = "100/m"
ACCURACY_RATE = 50.0  # the accuracy limit in requests per second of its window (3000/m)
OFFERED = 1.5  # the steady load over the limit; the run lasts one window (see bench/README.md)
SYNC_MS = LimitsSettings.model_fields["sync_ms"].default  # every gateway here runs the default


def store_env(ctx: Context, store: str) -> dict[str, str]:
    env = {"GATEWAY_LIMITS__STORE": store}
    if store == "redis":
        env["GATEWAY_LIMITS__REDIS_URL"] = ctx.stack.redis()
    return env


def loads(ctx: Context) -> list[Load]:
    """The main gateway (the Postgres store, the default) with a key without limits and one with
    limits; a gateway like it on the Redis store with the same kind of key."""
    st, gw = ctx.stack, ctx.gw
    r = st.gateway("gateway-redis", env=store_env(ctx, "redis"))
    log(f"gateway on the Redis store healthy in {r.startup_s:.2f}s on :{r.port}")
    assert gw.procset is not None and r.procset is not None
    pg = {"postgres": st.pg_ps} if st.pg_ps else {}
    url = "/rest/v1/items"
    return [
        Load("limits.c.off", "limits", "publishable key GET, no limits", "c", gw.url + url, gw.procset,
             {"apikey": ctx.pub}, watch=pg),
        Load("limits.c.postgres", "limits", "publishable key GET, limits on (Postgres store)", "c", gw.url + url,
             gw.procset, {"apikey": gw.new_key("publishable", "bench_limits_pg", limits=NEVER)}, watch=pg,
             vs="limits.c.off"),
        Load("limits.c.redis", "limits", "publishable key GET, limits on (Redis store)", "c", r.url + url,
             r.procset, {"apikey": r.new_key("publishable", "bench_limits_redis", limits=NEVER)},
             watch={"redis": st.redis_ps["redis"]}, vs="limits.c.off"),
    ]


def run(ctx: Context) -> list[Row]:
    return [flood(ctx)] + [accuracy(ctx, store) for store in STORES]


def flood(ctx: Context) -> Row:
    """wrk at full speed with a key limited to FLOOD_LIMIT on the main gateway: what the upstream
    served (its /counted/ log) and what the gateway refused (its metric), before and after."""
    st, gw = ctx.stack, ctx.gw
    assert gw.procset is not None
    path = "/counted/flood"
    key = gw.new_key("publishable", "bench_flood", limits={"per_key": FLOOD_LIMIT})
    load = Load("limits.flood", "limits", f"flood over a per_key limit of {FLOOD_LIMIT}", "c",
                gw.url + "/rest/v1" + path, gw.procset, {"apikey": key}, expect=429)
    log(f"flood: wrk at full speed for {ctx.args.duration:g}s on a key limited to {FLOOD_LIMIT}")
    served0, refused0 = st.upstream_served(path), _rate_limited(gw)
    r = ctx.wrk.run(load, ctx.args.duration)
    time.sleep(0.5)  # the access log and the metric files catch up
    served, refused = st.upstream_served(path) - served0, _rate_limited(gw) - refused0
    total, answered_429 = r["requests"], r["non_2xx"]
    admitted = total - answered_429
    cpu_s = r["cpu_us_per_req"] * total / 1e6
    e = {"limit": FLOOD_LIMIT, "requests": total, "answered_429": answered_429, "admitted": admitted,
         "upstream_served": served, "refused_by_metric": refused, "share_429": answered_429 / max(total, 1),
         "cpu_us_per_refused": cpu_s / max(answered_429, 1) * 1e6, "socket_errors": r["socket_errors"],
         "upstream_cpu_us_per_req": r["upstream_cpu_us_per_req"]}
    row = Row("limits", load.label, "c", rps=r["rps"], p50_ms=r.get("p50_ms"), p99_ms=r.get("p99_ms"),
              cpu_us=r["cpu_us_per_req"], peak_rss_mb=r["peak_rss_mb"], key=load.key, runs=[r], extra=e,
              note=f"{100 * e['share_429']:.2f} % answered 429 ({answered_429:,} of {total:,}); "
                   f"{e['cpu_us_per_refused']:.1f} µs CPU per refused request; admitted {admitted:,}, upstream "
                   f"served {served:,}; the gateway's metric counts {refused:,} refused")
    if r["socket_errors"]:
        row.add_note(f"ERRORS: {r['socket_errors']} socket errors")
    log(f"  {row.note}")
    return row


def _rate_limited(gw: BenchGateway) -> int:
    """gateway_rate_limited_total over every scope (all workers: the metrics are multiprocess)."""
    try:
        text = gw.metrics()
    except httpx.HTTPError as e:
        raise BenchError(f"gateway {gw.name}: /metrics failed: {e}") from None
    counts = re.findall(r"^gateway_rate_limited_total\{[^}]*\} ([0-9.e+]+)$", text, re.MULTILINE)
    return round(sum(float(m) for m in counts))


def accuracy(ctx: Context, store: str) -> Row:
    """Two instances of two workers on the run's database share a per_key limit of one window's
    length; a steady load of OFFERED × the limit spread over both for that window: admitted
    requests against the limit."""
    seconds = int(ctx.args.accuracy_seconds)
    count, rate = round(ACCURACY_RATE * seconds), ACCURACY_RATE * OFFERED
    limit = f"{count}/{_window(seconds)}"
    pair = ctx.stack.gateways(2, f"gateway-pair-{store}", workers=2, env=store_env(ctx, store))
    try:
        key = pair[0].new_key("publishable", f"bench_accuracy_{store}", limits={"per_key": limit})
        time.sleep(1.0)  # every worker of both instances knows the key (a change reaches them within 1 s)
        path = f"/counted/accuracy-{store}"
        log(f"accuracy ({store} store): per_key {limit}, 2 instances × 2 workers, {rate:g} req/s for {seconds}s, "
            "a new connection each")
        served0 = ctx.stack.upstream_served(path)
        cpu0 = sum(g.procset.cpu() for g in pair if g.procset)
        answers = paced([g.url + "/rest/v1" + path for g in pair], {"apikey": key}, rate, seconds)
        cpu = sum(g.procset.cpu() for g in pair if g.procset) - cpu0
        time.sleep(0.5)
        served = ctx.stack.upstream_served(path) - served0
        unreachable = sum(g.logs().count("rate-limit store unreachable") for g in pair)
    finally:
        for g in pair:
            g.stop()
    statuses = [a.status for a in answers]
    admitted, refused = statuses.count(200), statuses.count(429)
    first_429 = statuses.index(429) if 429 in statuses else len(statuses)
    span = answers[-1].sent - answers[0].sent if len(answers) > 1 else 0.0
    offered = (len(answers) - 1) / span if span > 0 else rate  # the rate the requests were really sent at
    bound = count * 1.05 + offered * SYNC_MS / 1000
    e: dict[str, Any] = {
        "store": store, "limit": limit, "limit_count": count, "seconds": seconds, "instances": 2, "workers_each": 2,
        "requests": len(answers), "offered_rps": offered, "admitted": admitted, "refused": refused,
        "other": len(statuses) - admitted - refused, "upstream_served": served, "bound": bound,
        "over_limit_pct": 100 * (admitted - count) / count,
        "admitted_before_first_429": statuses[:first_429].count(200),
        "per_instance_admitted": [sum(a.status == 200 and a.target == i for a in answers) for i in range(2)],
        "store_unreachable_logged": unreachable, "sync_ms": SYNC_MS,
        "cpu_s": cpu,  # both instances, idle work (every worker's exchange loop) included: not per request
    }
    ms = [a.ms for a in answers]
    row = Row("limits", f"accuracy: per_key {limit}, 2 instances × 2 workers ({store} store)", "c", rps=offered,
              p50_ms=median(ms), p99_ms=quantile(ms, 0.99) if ms else None, key=f"limits.acc.{store}", extra=e,
              note=f"{admitted:,} admitted of {count:,} ({e['over_limit_pct']:+.1f} %; bound {bound:,.0f}) from "
                   f"{len(answers):,} sent at {offered:.0f} req/s; the first 429 after "
                   f"{e['admitted_before_first_429']:,} admitted; upstream served {served:,}; per instance "
                   f"{e['per_instance_admitted']}")
    if e["other"]:
        row.add_note(f"ERRORS: {e['other']} answers neither 200 nor 429")
    if unreachable:
        row.add_note(f"(store reported unreachable {unreachable} time(s))")
    log(f"  {row.note}")
    return row


def _window(seconds: int) -> str:
    """``60`` -> ``m``, ``120`` -> ``2m``, ``20`` -> ``20s``."""
    if seconds % 60:
        return f"{seconds}s"
    return "m" if seconds == 60 else f"{seconds // 60}m"


SCENARIO = Scenario(loads=loads, run=run)
