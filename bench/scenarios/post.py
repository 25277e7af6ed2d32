"""A 1 MB request body POSTed through each target (a wrk Lua script), read in full by the upstream."""

from __future__ import annotations

from bench.scenario import Context, Scenario
from bench.wrk import Load

POST_BYTES = 1024 * 1024


def loads(ctx: Context) -> list[Load]:
    st, gw = ctx.stack, ctx.gw
    assert gw.procset is not None
    script = st.tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = string.rep("x", {POST_BYTES})\n'
                      f'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    label, lua, body = "1 MB POST body", str(script), b"x" * 1000  # body: what the sanity check POSTs
    return [
        Load("post.a", "post", label, "a", st.upstream_url + "/upload", st.upstream_ps, script=lua, body=body),
        Load("post.b", "post", label, "b", st.proxy_url + "/rest/v1/upload", st.proxy_ps, script=lua, body=body),
        Load("post.c", "post", label, "c", gw.url + "/rest/v1/upload", gw.procset, {"apikey": ctx.pub},
             script=lua, body=body),
    ]


SCENARIO = Scenario(loads=loads)
