"""The two builds in the same run (issue 25, docs/builds.md): the publishable GET through a
compiled gateway and a pure-Python one, with the access log on and off, nginx's proxy_pass as the
yardstick. Each gateway is started for this group, whatever ``--build`` is."""

from __future__ import annotations

from bench import log
from bench.scenario import Context, Scenario
from bench.wrk import Load


def loads(ctx: Context) -> list[Load]:
    st = ctx.stack
    pub = {"apikey": ctx.pub}  # every gateway of the run shares its database, and so its keys
    out = [Load("builds.b", "builds", "small JSON GET", "b", st.proxy_url + "/rest/v1/items", st.proxy_ps)]
    for build in ("compiled", "pure"):
        for access_log, suffix, what in ((True, "", ""), (False, ".nolog", ", access log off")):
            g = st.gateway(f"gateway-{build}{suffix}", access_log=access_log, build=build)
            assert g.procset is not None
            log(f"gateway ({build}{what}) healthy in {g.startup_s:.2f}s on :{g.port}")
            out.append(Load(f"builds.{build}{suffix}", "builds", f"publishable key GET, {build}{what}", "c",
                            g.url + "/rest/v1/items", g.procset, pub,
                            vs=f"builds.pure{suffix}" if build == "compiled" else ""))
    return out


SCENARIO = Scenario(loads=loads)
