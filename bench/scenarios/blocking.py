"""Blocking abusive clients (issue 23): a flood of random keys from one address, wrk at full speed,
against a gateway with ``protection.block_after`` (the share answered from the block, the gateway's
CPU per blocked request, the access lines written, what reached the upstream) and against the main
gateway without it (every request a 401 from memory, an access line each); and a flood of random
keys from rotating addresses (a random X-Forwarded-For behind a trusted proxy, none of them reaching
the threshold): CPU per counted refusal, memory, and the CPU the gateway spends once they go quiet."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from bench import BenchError, log
from bench.gateways import BenchGateway
from bench.results import Row
from bench.scenario import Context, Scenario
from bench.wrk import Load

BLOCK_AFTER = "30/m"
PATH = "/counted/blocking"
QUIET_SECONDS = 3.0
# Every request a new made-up key (22 random characters and a random checksum: refused from memory,
# no database lookup); with ROTATE, a random client address behind the trusted proxy (wrk itself).
LUA = """
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function rand(n)
  local t = {}
  for i = 1, n do local k = math.random(1, 64); t[i] = chars:sub(k, k) end
  return table.concat(t)
end
function init(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000003) end
request = function()
  local headers = {apikey = "sb_publishable_" .. rand(22) .. "_" .. rand(8)}
  if ROTATE then
    headers["X-Forwarded-For"] = math.random(11, 223) .. "." .. math.random(0, 255) .. "." ..
      math.random(0, 255) .. "." .. math.random(1, 254)
  end
  return wrk.format("GET", nil, headers)
end
"""


def _script(ctx: Context, rotate: bool) -> str:
    path = ctx.stack.tmp / f"random-keys{'-rotating' if rotate else ''}.lua"
    path.write_text(f"ROTATE = {'true' if rotate else 'false'}\n" + LUA)
    return str(path)


def _metric(gw: BenchGateway, name: str) -> int:
    try:
        text = gw.metrics()
    except httpx.HTTPError as e:
        raise BenchError(f"gateway {gw.name}: /metrics failed: {e}") from None
    found = re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return round(sum(float(n) for n in found))


def _access_lines(gw: BenchGateway) -> int:
    path = gw.workdir / "stdout.log"
    return sum(1 for _ in path.open("rb")) if path.exists() else 0


def run(ctx: Context) -> list[Row]:
    """Each gateway with blocking on its own database: blocks hold on every instance of a database,
    whatever its own settings, so the main gateway (blocking off) would be blocked too."""
    st = ctx.stack
    rows = [flood(ctx, ctx.gw, "blocking.refused", "random keys from one address, blocking off (every one a 401)")]
    for key, label, env, rotate in (
            ("blocking.flood", f"random keys from one address, block_after {BLOCK_AFTER}", {}, False),
            ("blocking.rotating", "random keys from rotating addresses (X-Forwarded-For behind a trusted proxy), "
             f"block_after {BLOCK_AFTER}", {"GATEWAY_SERVER__TRUSTED_PROXIES": '["127.0.0.1/32"]'}, True)):
        g = st.gateway(f"gateway-{key.replace('.', '-')}", dsn=st.database(migrated=True),
                       env={"GATEWAY_PROTECTION__BLOCK_AFTER": BLOCK_AFTER, **env})
        try:
            rows.append(flood(ctx, g, key, label, rotate))
        finally:
            g.stop()
    return rows


def flood(ctx: Context, gw: BenchGateway, key: str, label: str, rotate: bool = False) -> Row:
    """wrk at full speed with a new random key a request for ``--duration``; what the gateway
    answered, logged, counted and spent, and what reached the upstream."""
    st = ctx.stack
    assert gw.procset is not None
    load = Load(key, "blocking", label, "c", gw.url + "/rest/v1" + PATH, gw.procset, script=_script(ctx, rotate),
                expect=429)
    log(f"blocking: {label}, wrk at full speed for {ctx.args.duration:g}s")
    cpu0 = gw.procset.cpu()
    time.sleep(QUIET_SECONDS)  # idle, as a baseline for the quiet time after the flood
    idle_cpu_ms = (gw.procset.cpu() - cpu0) * 1000 / QUIET_SECONDS
    served0, lines0 = st.upstream_served(PATH), _access_lines(gw)
    blocked0 = _metric(gw, "gateway_blocked_requests_total")
    rss0 = gw.procset.rss()
    r = ctx.wrk.run(load, ctx.args.duration)
    time.sleep(0.5)  # the access log, the metric files and the last exchange catch up
    served = st.upstream_served(PATH) - served0
    blocked = _metric(gw, "gateway_blocked_requests_total") - blocked0
    lines = _access_lines(gw) - lines0
    total = r["requests"]
    cpu0 = gw.procset.cpu()
    time.sleep(QUIET_SECONDS)  # quiet: what the gateway still spends on the addresses it saw
    quiet_cpu_ms = (gw.procset.cpu() - cpu0) * 1000 / QUIET_SECONDS
    e: dict[str, Any] = {
        # Every answer but a block's writes an access line; wrk counts only the answers that came
        # before its time was up, the gateway also the ones then in flight: the share is the gateway's.
        "requests": total, "blocked": blocked, "share_blocked": blocked / max(blocked + lines, 1),
        "access_lines": lines,
        "upstream_served": served, "cpu_us_per_req": r["cpu_us_per_req"], "socket_errors": r["socket_errors"],
        "rss_before_mb": rss0 / 2 ** 20, "peak_rss_mb": r["peak_rss_mb"],
        "rss_growth_mb": r["peak_rss_mb"] - rss0 / 2 ** 20,
        "idle_cpu_ms_per_s": idle_cpu_ms, "quiet_cpu_ms_per_s": quiet_cpu_ms,
        "blocks_started": _metric(gw, "gateway_blocks_started_total"),
    }
    note = (f"{100 * e['share_blocked']:.2f} % answered from the block ({blocked:,} of {blocked + lines:,}); "
            f"{r['cpu_us_per_req']:.1f} µs gateway CPU per request; {lines:,} access lines; "
            f"upstream served {served:,}; RSS {e['rss_before_mb']:.0f} → peak {r['peak_rss_mb']:.0f} MB; "
            f"CPU while quiet {idle_cpu_ms:.1f} ms/s before, {quiet_cpu_ms:.1f} ms/s after")
    row = Row("blocking", label, "c", rps=r["rps"], p50_ms=r.get("p50_ms"), p99_ms=r.get("p99_ms"),
              cpu_us=r["cpu_us_per_req"], peak_rss_mb=r["peak_rss_mb"], key=key, runs=[r], extra=e, note=note)
    if r["socket_errors"]:
        row.add_note(f"ERRORS: {r['socket_errors']} socket errors")
    log(f"  {row.note}")
    return row


SCENARIO = Scenario(run=run)
