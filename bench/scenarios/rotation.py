"""Address rotation (issue 20): one worker, a key with ``per_ip: 1000/h`` and one GET from each of
50,000 source addresses in 127.0.0.0/8 (each a counter that stays inside its window for an hour);
then 20,000 user JWTs, each a different ``sub``, under ``limits.per_user``. For each: the worker's
RSS before and after, its CPU while idle before the flood and in the seconds after the last
answer (it must be back to idle within a second), p95 latency during, and whether the exchange
with the rate-limit store was ever late (``gateway_limit_sync_late_total``, and the
``rate-limit store unreachable`` warning a timed-out exchange logs)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import jwt
import psutil

from bench import BenchError, log
from bench.gateways import BenchGateway
from bench.measure import quantile
from bench.results import Row
from bench.rotate import Answer, kept_alive, one_each, request, run, source_address
from bench.scenario import Context, Scenario
from tests.helpers import JWT_SECRET

PER_IP = "1000/h"
PER_USER = "1000/h"
CONCURRENCY = 10  # clients at a time: latency, not queueing (one worker)
IDLE_S = 2.0  # the idle CPU measured before the flood
AFTER_S = 3.0  # and after it: [0, 1 s] then [1 s, AFTER_S]
PATH = "/rest/v1/items"
UNREACHABLE = "rate-limit store unreachable"
_LATE = re.compile(r"^gateway_limit_sync_late_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)
_AGE = re.compile(r"^gateway_limit_sync_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


def run_all(ctx: Context) -> list[Row]:
    return [addresses(ctx), subs(ctx)]


def addresses(ctx: Context) -> Row:
    n = ctx.args.rotation_addresses
    gw = ctx.stack.gateway("gateway-rotation-ip", workers=1)
    try:
        key = gw.new_key("publishable", "bench_rotation_ip", limits={"per_ip": PER_IP})
        host, port = "127.0.0.1", gw.port
        headers = {"apikey": key}
        warm = [(source_address(254 * 256 * 200 + i), request(host, port, PATH, headers)) for i in range(200)]
        flood = [(source_address(i), request(host, port, PATH, headers)) for i in range(n)]
        return measure(ctx, gw, "rotation.addresses",
                       f"address rotation: one GET from each of {n:,} addresses, per_ip {PER_IP}, 1 worker",
                       lambda: one_each(host, port, warm, CONCURRENCY),
                       lambda: one_each(host, port, flood, CONCURRENCY), {"addresses": n})
    finally:
        gw.stop()


def subs(ctx: Context) -> Row:
    n = ctx.args.rotation_subs
    gw = ctx.stack.gateway("gateway-rotation-user", workers=1, env={"GATEWAY_LIMITS__PER_USER": PER_USER})
    try:
        key = gw.new_key("publishable", "bench_rotation_user")
        host, port = "127.0.0.1", gw.port
        tokens = [user_token(f"bench-{uuid.uuid4()}") for _ in range(n + 200)]
        reqs = [request(host, port, PATH, {"apikey": key, "Authorization": f"Bearer {t}"}) for t in tokens]
        return measure(ctx, gw, "rotation.subs", f"user rotation: one GET from each of {n:,} user subs, per_user "
                       f"{PER_USER}, 1 worker", lambda: kept_alive(host, port, reqs[n:], CONCURRENCY),
                       lambda: kept_alive(host, port, reqs[:n], CONCURRENCY), {"subs": n})
    finally:
        gw.stop()


def user_token(sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now,
                       "exp": now + 3600}, JWT_SECRET, algorithm="HS256")


def measure(ctx: Context, gw: BenchGateway, key: str, label: str, warm: Any, flood: Any,
            extra: dict[str, Any]) -> Row:
    """Warm up, then idle RSS and CPU; the flood with the lag sampled; CPU and RSS after it."""
    assert gw.proc is not None
    pids = gw.worker_pids() or [gw.proc.pid]  # one worker: the gateway serves in its own process
    if len(pids) != 1:
        raise BenchError(f"{gw.name}: expected one worker, found {len(pids)}")
    worker = psutil.Process(pids[0])
    _check(run(warm), "warm-up")
    time.sleep(1.0)
    rss0 = worker.memory_info().rss
    idle_pct = _cpu_pct(worker, IDLE_S)
    late0, unreachable0 = _late(gw), gw.logs().count(UNREACHABLE)
    log(f"{key}: idle {idle_pct:.1f} % of a core, RSS {rss0 / 2 ** 20:.0f} MB; the flood starts")
    sampler = AgeSampler(gw)
    cpu0, t0 = _cpu(worker), time.monotonic()
    with sampler:
        answers = run(flood)
    end = max(a.done for a in answers)
    cpu_end, t_end = _cpu(worker), time.monotonic()
    time.sleep(max(0.0, end + 1.0 - time.monotonic()))
    cpu_1, t_1 = _cpu(worker), time.monotonic()
    time.sleep(max(0.0, end + AFTER_S - time.monotonic()))
    cpu_3, t_3 = _cpu(worker), time.monotonic()
    rss1 = worker.memory_info().rss
    late1, unreachable1 = _late(gw), gw.logs().count(UNREACHABLE)
    statuses = [a.status for a in answers]
    ms = [a.ms for a in answers]
    cut = min(5000, len(ms) // 4) or 1
    e: dict[str, Any] = {
        **extra, "requests": len(answers), "ok": statuses.count(200), "other": len(answers) - statuses.count(200),
        "rss_before_mb": rss0 / 2 ** 20, "rss_after_mb": rss1 / 2 ** 20, "rss_growth_mb": (rss1 - rss0) / 2 ** 20,
        "idle_cpu_pct_before": idle_pct, "cpu_pct_0_1s_after": 100 * (cpu_1 - cpu_end) / max(t_1 - t_end, 1e-3),
        "cpu_pct_1_3s_after": 100 * (cpu_3 - cpu_1) / max(t_3 - t_1, 1e-3),
        "p50_ms": quantile(ms, 0.5), "p95_ms": quantile(ms, 0.95), "p95_first_ms": quantile(ms[:cut], 0.95),
        "p95_last_ms": quantile(ms[-cut:], 0.95), "p95_cut": cut, "flood_s": end - t0,
        "cpu_us_per_req": (cpu_end - cpu0) / max(len(answers), 1) * 1e6,
        "late_exchanges": None if late1 is None else late1 - (late0 or 0),
        "store_unreachable_logged": unreachable1 - unreachable0, "max_sync_age_s": sampler.max_age,
    }
    e["idle_cpu_extra_points"] = e["cpu_pct_1_3s_after"] - idle_pct
    # Late exchanges and timeouts; unknown (no target) for a gateway without the lag metric that logged no timeout.
    e["sync_late"] = None if e["late_exchanges"] is None and not e["store_unreachable_logged"] else \
        (e["late_exchanges"] or 0) + e["store_unreachable_logged"]
    late = "n/a (no lag metric)" if e["late_exchanges"] is None else f"{e['late_exchanges']} late exchange(s)"
    row = Row("rotation", label, "c", rps=len(answers) / max(e["flood_s"], 1e-9), p50_ms=e["p50_ms"],
              p99_ms=quantile(ms, 0.99), cpu_us=e["cpu_us_per_req"], peak_rss_mb=rss1 / 2 ** 20, key=key, extra=e,
              note=f"worker RSS {e['rss_before_mb']:.0f} → {e['rss_after_mb']:.0f} MB; CPU idle {idle_pct:.1f} % "
                   f"before, {e['cpu_pct_0_1s_after']:.1f} % in the first second after, "
                   f"{e['cpu_pct_1_3s_after']:.1f} % from 1 to {AFTER_S:g} s; p95 {e['p95_ms']:.2f} ms (first "
                   f"{cut:,} {e['p95_first_ms']:.2f}, last {cut:,} {e['p95_last_ms']:.2f}); sync: {late}, store "
                   f"unreachable logged {e['store_unreachable_logged']} time(s)"
                   + ("" if sampler.max_age is None else f", longest lag seen {sampler.max_age:.2f} s"))
    if e["other"]:
        row.add_note(f"ERRORS: {e['other']} answers not 200")
    log(f"  {row.note}")
    return row


class AgeSampler:
    """The largest ``gateway_limit_sync_seconds`` read from /metrics every half second (None if absent)."""

    def __init__(self, gw: BenchGateway) -> None:
        self.gw = gw
        self.max_age: float | None = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                ages = [float(m) for m in _AGE.findall(self.gw.metrics())]
            except Exception:
                continue
            if ages:
                self.max_age = max([*ages, self.max_age or 0.0])

    def __enter__(self) -> "AgeSampler":
        self._t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._t.join()


def _check(answers: list[Answer], what: str) -> None:
    bad = [a.status for a in answers if a.status != 200]
    if bad:
        raise BenchError(f"rotation {what}: {len(bad)} of {len(answers)} answers not 200 (e.g. {bad[:5]})")


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _cpu_pct(p: psutil.Process, seconds: float) -> float:
    c0 = _cpu(p)
    time.sleep(seconds)
    return 100 * (_cpu(p) - c0) / seconds


def _late(gw: BenchGateway) -> float | None:
    counts = _LATE.findall(gw.metrics())
    return round(sum(float(c) for c in counts)) if counts else None


SCENARIO = Scenario(run=run_all)
