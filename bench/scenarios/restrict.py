"""Key restrictions and limits together (issues 11 and 15): a publishable GET with a key carrying
all four restrictions (origins, IPs, services, expiry), every one of them met, and per-key and
per-IP limits that never refuse, in the same rounds as the same GET with a key carrying none; and
(issue 23) the same GET with a key whose resource and method rules allow it (a read-only key
reaching three resources, the one asked for among them)."""

from __future__ import annotations

import datetime as dt

import httpx

from bench import BenchError, log
from bench.scenario import Context, Scenario
from bench.scenarios.limits import NEVER
from bench.wrk import Load

ORIGIN = "https://app.example.com"
RESTRICTIONS = {"allowed_origins": [ORIGIN], "allowed_ips": ["127.0.0.0/8"], "allowed_services": ["rest"]}
RULES = {"allowed_resources": ["todos", "items", "rpc/search_*"], "allowed_methods": ["GET", "HEAD"]}


def loads(ctx: Context) -> list[Load]:
    """Both on the main gateway (the Postgres store), both sending ``Origin``: the gateway adds CORS
    headers to any answer to a request with an Origin, so the pair differs only in the key."""
    st, gw = ctx.stack, ctx.gw
    assert gw.procset is not None
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat(timespec="seconds")
    key = gw.new_key("publishable", "bench_restricted", limits=NEVER, expires_at=expires, **RESTRICTIONS)
    url = gw.url + "/rest/v1/items"
    _refused(url, {"apikey": key, "Origin": "https://other.example.com"}, "FORBIDDEN_ORIGIN")
    _refused(gw.url + "/storage/v1/items", {"apikey": key, "Origin": ORIGIN}, "FORBIDDEN_SERVICE")
    log(f"restricted key: origins {RESTRICTIONS['allowed_origins']}, IPs {RESTRICTIONS['allowed_ips']}, services "
        f"{RESTRICTIONS['allowed_services']}, expires {expires}, limits {NEVER} (refuses another origin and service)")
    ruled = gw.new_key("publishable", "bench_rules", **RULES)
    _refused(gw.url + "/rest/v1/secrets", {"apikey": ruled, "Origin": ORIGIN}, "FORBIDDEN_RESOURCE")
    _refused(url, {"apikey": ruled, "Origin": ORIGIN}, "FORBIDDEN_METHOD", "DELETE")
    log(f"key with rules: resources {RULES['allowed_resources']}, methods {RULES['allowed_methods']} "
        "(refuses another resource and a DELETE)")
    pg = {"postgres": st.pg_ps} if st.pg_ps else {}
    return [
        Load("restrict.c.off", "restrict", "publishable key GET with Origin, no limits or restrictions", "c", url,
             gw.procset, {"apikey": ctx.pub, "Origin": ORIGIN}, watch=pg),
        Load("restrict.c.on", "restrict", "publishable key GET with Origin, limits + all four restrictions on", "c",
             url, gw.procset, {"apikey": key, "Origin": ORIGIN}, watch=pg, vs="restrict.c.off"),
        Load("restrict.c.rules", "restrict", "publishable key GET with Origin, resource and method rules that allow it",
             "c", url, gw.procset, {"apikey": ruled, "Origin": ORIGIN}, watch=pg, vs="restrict.c.off"),
    ]


def _refused(url: str, headers: dict[str, str], code: str, method: str = "GET") -> None:
    """The restrictions are in force: a request that breaks one is refused with ``code``."""
    try:
        r = httpx.request(method, url, headers=headers, timeout=10, trust_env=False)
    except httpx.HTTPError as e:
        raise BenchError(f"restricted key: {url} failed: {e}") from None
    if r.status_code != 403 or r.headers.get("sb-error-code") != code:
        raise BenchError(f"restricted key: {url} answered {r.status_code} {r.headers.get('sb-error-code')} (wanted "
                         f"403 {code}): {r.text[:300]!r}")


SCENARIO = Scenario(loads=loads)
