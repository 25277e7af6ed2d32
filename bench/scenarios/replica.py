"""Reads with one read replica (issue 12): a gateway whose ``upstreams.rest_replicas`` names a
second nginx upstream (the same small JSON body), publishable GETs balanced between the primary
and the replica, in the same rounds as the same GETs on the main gateway (primary only); after
the rounds, what each upstream served (their /counted/ logs)."""

from __future__ import annotations

import json

from bench import BenchError, log
from bench.results import Row
from bench.scenario import Context, Scenario
from bench.stack import Upstream
from bench.wrk import Load

OFF, ON = "/counted/replica-off", "/counted/replica-on"  # both under /counted/: each upstream pays its log write


def _replica(ctx: Context) -> Upstream:
    return ctx.stack.upstream("nginx-replica")


def loads(ctx: Context) -> list[Load]:
    st, gw = ctx.stack, ctx.gw
    replica = _replica(ctx)
    g = st.gateway("gateway-replica", env={"GATEWAY_UPSTREAMS__REST_REPLICAS": json.dumps([replica.url])})
    log(f"nginx replica upstream on {replica.url}; gateway with one read replica healthy in {g.startup_s:.2f}s "
        f"on :{g.port}")
    assert gw.procset is not None and g.procset is not None
    watch = {"replica": replica.ps}
    return [
        Load("replica.c.off", "replica", "publishable key GET, primary only", "c", gw.url + "/rest/v1" + OFF,
             gw.procset, {"apikey": ctx.pub}, watch=watch),
        Load("replica.c.on", "replica", "publishable key GET, one read replica", "c", g.url + "/rest/v1" + ON,
             g.procset, {"apikey": g.new_key("publishable", "bench_replica")}, watch=watch, vs="replica.c.off"),
    ]


def run(ctx: Context) -> list[Row]:
    """What the primary and the replica served of each load (warm-up and sanity requests included)."""
    st, replica = ctx.stack, _replica(ctx)
    served = {path: (st.upstream_served(path), st.upstream_served(path, replica)) for path in (OFF, ON)}
    primary, replicated = served[ON]
    if served[OFF][1]:
        raise BenchError(f"the replica served {served[OFF][1]} requests of the primary-only gateway")
    total = primary + replicated
    e = {"primary_served": primary, "replica_served": replicated, "replica_share": replicated / max(total, 1),
         "primary_only_served": served[OFF][0]}
    row = Row("replica", "reads with one replica: what each upstream served", "c", key="replica.share", extra=e,
              note=f"primary {primary:,} ({100 * (1 - e['replica_share']):.1f} %), replica {replicated:,} "
                   f"({100 * e['replica_share']:.1f} %) of {total:,} (warm-up included); primary-only gateway: "
                   f"primary {served[OFF][0]:,}, replica 0")
    log(f"  {row.note}")
    return [row]


SCENARIO = Scenario(loads=loads, run=run)
