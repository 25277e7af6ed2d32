"""A 10 MB response streamed through each target: bytes/s, and the peak RSS that shows whether
bodies are buffered."""

from __future__ import annotations

from bench.scenario import Context, Scenario
from bench.wrk import Load


def loads(ctx: Context) -> list[Load]:
    st, gw = ctx.stack, ctx.gw
    assert gw.procset is not None
    label = "10 MB streamed response"
    return [
        Load("stream.a", "stream", label, "a", st.upstream_url + "/big.bin", st.upstream_ps),
        Load("stream.b", "stream", label, "b", st.proxy_url + "/rest/v1/big.bin", st.proxy_ps),
        Load("stream.c", "stream", label, "c", gw.url + "/rest/v1/big.bin", gw.procset, {"apikey": ctx.pub}),
    ]


SCENARIO = Scenario(loads=loads, throughput="bytes_per_s")
