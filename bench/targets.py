"""The targets of issues 5, 10, 12, 15, 20 and 25 as data: the rows each reads, the value it takes from them, how
that is shown, and the bar it must clear; ``check`` holds a run's rows against them, in this order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.results import Row, paired_ratio


@dataclass
class Results:
    """A run's rows by key, and its facts (idle memory of the main gateway, connections)."""

    by: dict[str, Row]
    facts: dict[str, Any]

    def __getitem__(self, key: str) -> Row:
        return self.by[key]


Value = Callable[[Results], "float | None"]


@dataclass(frozen=True)
class Target:
    name: str  # formatted with the ``extra`` of the first row read, e.g. "{keys:,} keys: ..."
    rows: tuple[str, ...]  # the row keys read; the target is checked when the run has them all
    value: Value  # None: not measured in this run, the target is left out
    shown: str | Callable[[float, Results], str] = "{:.3f}"  # a format for the value, or the text
    below: float | None = None  # PASS when the value is below this
    at_least: float | None = None  # PASS when it is at least this; with neither: information ("-")
    within: Callable[[Results], tuple[float, float]] | None = None  # PASS when low <= value <= high (a bar
    # that depends on the run, e.g. on the traffic it offered)


def _field(key: str, name: str) -> Value:
    return lambda r: getattr(r[key], name)


def _extra(key: str, name: str) -> Value:
    return lambda r: r[key].extra.get(name)


def _publishable(key: str, what: str) -> list[Target]:
    """Issue 15's bar (issue 5's was 0.25 ×, < 100 µs, p99 < 15 ms)."""
    return [
        Target(f"publishable GET ≥ 0.5 × nginx proxy_pass ({what})", (key,), _field(key, "ratio"), at_least=0.5),
        Target(f"publishable GET p99 < 10 ms ({what})", (key,), _field(key, "p99_ms"), "{:.2f} ms", below=10),
        Target(f"publishable GET ≤ 45 µs gateway CPU/req ({what})", (key,), _field(key, "cpu_us"), "{:.1f} µs",
               below=45.05),
    ]


def _auth_cost(pub: str, nokey: str, what: str) -> Target:
    """1 − publishable / no key, paired by round: what the key check, browser rule and JWT cost."""
    return Target(f"key check + browser rule + JWT reuse < 10 % of throughput ({what})", (pub, nokey),
                  lambda r: 1 - (paired_ratio(r[pub], r[nokey]) or 0.0) if r[nokey].rps else None,
                  lambda v, _: f"{100 * v:.1f} %", below=0.10)


def _builds(suffix: str, what: str) -> Target:
    """Issue 25's A/B: the compiled build against the pure-Python one, same run, paired by round."""
    c, p = f"builds.compiled{suffix}", f"builds.pure{suffix}"
    return Target(f"(info) compiled vs pure-Python build, publishable GET ({what}): throughput, gateway CPU a "
                  "request", (c, p), lambda r: paired_ratio(r[c], r[p]),
                  lambda v, r: f"{v:.3f} × the pure build's req/s ({r[c].rps:,.0f} vs {r[p].rps:,.0f}); "
                               f"{r[c].cpu_us:.1f} vs {r[p].cpu_us:.1f} µs/req")


def _stream_growth(r: Results) -> float | None:
    """Peak RSS growth of the gateway over idle, per concurrent stream, in MB."""
    idle, peak = r.facts.get("gateway_idle_rss_mb"), r["stream.c"].peak_rss_mb
    return (peak - idle) / max(r.facts.get("connections", 50), 1) if idle and peak else None


def _stream_growth_shown(v: float, r: Results) -> str:
    idle = r.facts["gateway_idle_rss_mb"]
    return f"+{r['stream.c'].peak_rss_mb - idle:.0f} MB over idle {idle:.0f} MB ({v:.2f} MB per stream)"


def _bytes_per_key(r: Results) -> float | None:
    e = r["startup"].extra
    if not e.get("rss_mb_with_2_keys"):
        return None
    return (e["rss_mb"] - e["rss_mb_with_2_keys"]) * 2 ** 20 / e["keys"] / max(len(e["rss_each_mb"]) - 2, 1)


def _limits_cost(store: str) -> Target:
    """1 − limited / unlimited publishable GET, paired by round: what limits that never refuse cost."""
    on, off = f"limits.c.{store}", "limits.c.off"
    return Target(f"rate limits on: cost < 5 % of throughput ({store} store; per_key and per_ip limits that "
                  "never refuse)", (on, off),
                  lambda r: 1 - (paired_ratio(r[on], r[off]) or 0.0) if r[off].rps else None,
                  lambda v, r: f"{100 * v:.1f} %; CPU {r[on].cpu_us:.1f} vs {r[off].cpu_us:.1f} µs/req", below=0.05)


def _restrict_cost(r: Results) -> float | None:
    """1 − restricted / plain publishable GET, paired by round."""
    return 1 - (paired_ratio(r["restrict.c.on"], r["restrict.c.off"]) or 0.0) if r["restrict.c.off"].rps else None


def _rules_cost(r: Results) -> float | None:
    """1 − publishable GET with resource and method rules / the same GET without, paired by round."""
    return 1 - (paired_ratio(r["restrict.c.rules"], r["restrict.c.off"]) or 0.0) if r["restrict.c.off"].rps else None


def _replica_shown(v: float, r: Results) -> str:
    on, off, e = r["replica.c.on"], r["replica.c.off"], r.by.get("replica.share")
    share = f"; the replica served {100 * e.extra['replica_share']:.1f} %" if e else ""
    return f"{v:.3f} ({on.rps:,.0f} vs {off.rps:,.0f} req/s){share}"


def _flood_shown(v: float, r: Results) -> str:
    e = r["limits.flood"].extra
    return (f"upstream served {e['upstream_served']:,}, the gateway admitted {e['admitted']:,}; "
            f"{e['answered_429']:,} answered 429 ({100 * e['share_429']:.2f} %)")


def _flood_cpu_shown(v: float, r: Results) -> str:
    base = r.by.get("limits.c.off") or r.by.get("get.c.pub")
    return f"{v:.1f} µs" + (f" (a proxied publishable GET: {base.cpu_us:.1f} µs)" if base and base.cpu_us else "")


def _accuracy(store: str) -> Target:
    key = f"limits.acc.{store}"

    def shown(v: float, r: Results) -> str:
        e = r[key].extra
        return (f"{v:,.0f} admitted, limit {e['limit_count']:,} ({e['over_limit_pct']:+.1f} %), at most "
                f"{e['bound']:,.0f} ({e['offered_rps']:.0f} req/s offered, sync {e['sync_ms']} ms)")
    return Target(f"rate limits, {store} store, 2 instances × 2 workers: admitted between the limit and the limit + "
                  "5 % + one sync interval of traffic ({seconds} s, one window)", (key,), _extra(key, "admitted"),
                  shown, within=lambda r: (r[key].extra["limit_count"], r[key].extra["bound"]))


def _rotation(key: str, what: str) -> list[Target]:
    """Issue 20: after a flood from many addresses (or user subs) one worker is idle again at once,
    holds its counters in little memory, and its exchange with the store was never late."""
    def late_shown(v: float, r: Results) -> str:
        e = r[key].extra
        late = "no lag metric" if e["late_exchanges"] is None else f"{e['late_exchanges']} late exchange(s)"
        age = "" if e["max_sync_age_s"] is None else f", longest lag seen {e['max_sync_age_s']:.2f} s"
        return f"{late}, store unreachable logged {e['store_unreachable_logged']} time(s){age}"

    def idle_shown(v: float, r: Results) -> str:
        e = r[key].extra
        return (f"{e['cpu_pct_1_3s_after']:.1f} % of a core 1–3 s after the traffic stops vs "
                f"{e['idle_cpu_pct_before']:.1f} % before the flood ({v:+.1f} points; first second after: "
                f"{e['cpu_pct_0_1s_after']:.1f} %)")

    targets = [
        Target(f"{what}: idle CPU back to its baseline within a second (≤ 2 points of a core over the idle CPU "
               "before the flood, 1–3 s after the last answer)", (key,), _extra(key, "idle_cpu_extra_points"),
               idle_shown, below=2.0),
        Target(f"{what}: the exchange with the store never late (no exchange more than 3 sync intervals after "
               "the previous one, no timeout)", (key,), _extra(key, "sync_late"), late_shown, within=lambda r: (0, 0)),
        Target(f"(info) {what}: p95 latency during the flood", (key,), _extra(key, "p95_ms"),
               lambda v, r: f"{v:.2f} ms (first {r[key].extra['p95_cut']:,} {r[key].extra['p95_first_ms']:.2f}, last "
                            f"{r[key].extra['p95_cut']:,} {r[key].extra['p95_last_ms']:.2f})"),
    ]
    bar = 30.0 if key == "rotation.addresses" else None  # the user subs' growth is information
    growth = Target(f"{'' if bar else '(info) '}{what}: worker RSS growth{' < 30 MB' if bar else ''}", (key,),
                    _extra(key, "rss_growth_mb"),
                    lambda v, r: f"{v:.1f} MB ({r[key].extra['rss_before_mb']:.0f} → "
                                 f"{r[key].extra['rss_after_mb']:.0f} MB)", below=bar)
    return [growth, *targets]


TARGETS: list[Target] = [
    *_publishable("get.c.pub", "access log on"),
    *_publishable("get.c.pub.nolog", "access log off"),
    _auth_cost("get.c.pub", "get.c.nokey", "access log on"),
    _auth_cost("get.c.pub.nolog", "get.c.nokey.nolog", "access log off"),
    *_publishable("builds.compiled", "the compiled build, access log on"),
    _builds("", "access log on"),
    _builds(".nolog", "access log off"),
    Target("10 MB stream ≥ 0.5 × nginx proxy_pass bytes/s", ("stream.c", "stream.b"),
           lambda r: paired_ratio(r["stream.c"], r["stream.b"], "bytes_per_s") or 0.0, at_least=0.5),
    Target("10 MB stream: memory flat (peak RSS growth per concurrent stream < 1/4 of the body)",
           ("stream.c", "stream.b"), _stream_growth, _stream_growth_shown, below=2.5),
    Target("{keys:,} keys: start-up < 3 s (to the first healthy answer)", ("startup",),
           _extra("startup", "startup_s"), "{:.2f} s", below=3),
    Target("{keys:,} keys: every worker ready < 2 s", ("startup",),
           _extra("startup", "all_workers_ready_s"), "{:.2f} s", below=2),
    Target("{keys:,} keys: RSS < 200 MB (all gateway processes)", ("startup",), _extra("startup", "rss_mb"),
           "{:.0f} MB", below=200),
    Target("(info) memory per key per worker", ("startup",), _bytes_per_key, "{:,.0f} bytes"),
    Target("(info) periodic full reload of the key table: longest /health answer (event loop stall)", ("reload",),
           _extra("reload", "max_ms"), lambda v, r: f"{v:.0f} ms, {r['reload'].extra['cpu_s_per_reload']:.2f} s CPU "
                                                    "per reload"),
    Target("first use: one round trip, then none (extra latency of the first request; next ones as a known key)",
           ("firstuse",), _extra("firstuse", "extra_first_ms"),
           lambda v, r: f"+{v:.2f} ms first; next {r['firstuse'].extra['next_p50_ms']:.2f} vs known "
                        f"{r['firstuse'].extra['known_next_p50_ms']:.2f} ms"),
    Target("1,000 idle WebSockets: < 50 MB extra RSS", ("ws.c",), _extra("ws.c", "idle_extra_rss_mb"), "{:.1f} MB",
           below=50),
    Target("WebSocket relay p99 < 5 ms (echo round trip through the gateway)", ("ws.c",), _extra("ws.c", "p99_ms"),
           "{:.2f} ms", below=5),
    Target("{idle_held:,} idle keep-alive connections: < 100 MB extra RSS (all gateway processes)", ("idle.c.held",),
           _extra("idle.c.held", "idle_extra_rss_mb"),
           lambda v, r: f"{v:.1f} MB ({r['idle.c.held'].extra['idle_kb_each']:.1f} KB each; per worker "
                        f"{r['idle.c.held'].extra['per_worker']})", below=100),
    Target("load with {idle_held:,} idle connections open: throughput ≥ 0.9 × without (50-connection publishable GET, "
           "paired by round)", ("idle.c.held", "idle.c.base"), _extra("idle.c.held", "vs_ratio"),
           lambda v, r: f"{v:.3f} ({r['idle.c.held'].rps:,.0f} vs {r['idle.c.base'].rps:,.0f} req/s)", at_least=0.9),
    *(_limits_cost(store) for store in ("postgres", "redis")),
    Target("limits + restrictions on: cost < 5 % of throughput (per_key and per_ip limits that never refuse; "
           "origins, IPs, services and expiry, all met)", ("restrict.c.on", "restrict.c.off"), _restrict_cost,
           lambda v, r: f"{100 * v:.1f} %; CPU {r['restrict.c.on'].cpu_us:.1f} vs {r['restrict.c.off'].cpu_us:.1f} "
                        "µs/req", below=0.05),
    Target("resource and method rules on: cost < 5 % of throughput (a read-only key reaching three resources, "
           "the one asked for among them)", ("restrict.c.rules", "restrict.c.off"), _rules_cost,
           lambda v, r: f"{100 * v:.1f} %; CPU {r['restrict.c.rules'].cpu_us:.1f} vs {r['restrict.c.off'].cpu_us:.1f} "
                        "µs/req", below=0.05),
    Target("reads with one replica: throughput not below the primary-only build (≥ 0.95 × the same GET without "
           "a replica, paired by round)", ("replica.c.on", "replica.c.off"),
           lambda r: paired_ratio(r["replica.c.on"], r["replica.c.off"]), _replica_shown, at_least=0.95),
    Target("rate limits, flood far over a limit ({limit}, wrk at full speed): the upstream saw none of the refused "
           "requests (served − admitted)", ("limits.flood",),
           lambda r: r["limits.flood"].extra["upstream_served"] - r["limits.flood"].extra["admitted"], _flood_shown,
           within=lambda r: (0, 0)),
    Target("(info) rate limits, flood: gateway CPU per refused request", ("limits.flood",),
           _extra("limits.flood", "cpu_us_per_refused"), _flood_cpu_shown),
    *(_accuracy(store) for store in ("postgres", "redis")),
    Target("blocking: a flood of random keys from one address is answered from the block (≥ 99 % of its requests, "
           "no access line each, nothing upstream)", ("blocking.flood",), _extra("blocking.flood", "share_blocked"),
           lambda v, r: f"{100 * v:.2f} %; {r['blocking.flood'].extra['access_lines']:,} access lines, upstream "
                        f"served {r['blocking.flood'].extra['upstream_served']:,}",
           at_least=0.99),
    Target("(info) blocking: gateway CPU per blocked request", ("blocking.flood",), _field("blocking.flood", "cpu_us"),
           lambda v, r: f"{v:.1f} µs" + (f" (a 401 from memory with blocking off: {r['blocking.refused'].cpu_us:.1f}"
                                         " µs)" if "blocking.refused" in r.by else "")),
    Target("(info) blocking: rotating addresses, each refused and counted: CPU per request, RSS growth, CPU once "
           "they go quiet", ("blocking.rotating",), _field("blocking.rotating", "cpu_us"),
           lambda v, r: f"{v:.1f} µs; +{r['blocking.rotating'].extra['rss_growth_mb']:.0f} MB peak; quiet "
                        f"{r['blocking.rotating'].extra['quiet_cpu_ms_per_s']:.1f} ms CPU/s after, "
                        f"{r['blocking.rotating'].extra['idle_cpu_ms_per_s']:.1f} before"),
    *_rotation("rotation.addresses", "address rotation, {addresses:,} addresses, 1 worker"),
    *_rotation("rotation.subs", "user rotation, {subs:,} subs, 1 worker"),
]


def check(rows: list[Row], facts: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, PASS/FAIL/-) for every target the run measured."""
    res = Results({r.key: r for r in rows}, facts)
    out = []
    for t in TARGETS:
        if not all(k in res.by for k in t.rows) or (v := t.value(res)) is None:
            continue
        shown = t.shown(v, res) if callable(t.shown) else t.shown.format(v)
        if t.within is not None:
            low, high = t.within(res)
            ok: bool | None = low <= v <= high
        else:
            ok = v < t.below if t.below is not None else v >= t.at_least if t.at_least is not None else None
        out.append((t.name.format(**res[t.rows[0]].extra), shown, "-" if ok is None else ("PASS" if ok else "FAIL")))
    return out
