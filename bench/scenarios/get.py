"""Small JSON GETs: the upstream direct, nginx, and the gateway with every kind of credential (and
none); the publishable and no-key runs again on a second gateway with the access log off."""

from __future__ import annotations

from bench import log
from bench.scenario import Context, Scenario
from bench.wrk import Load


def loads(ctx: Context) -> list[Load]:
    st, gw = ctx.stack, ctx.gw
    assert gw.procset is not None
    pub = {"apikey": ctx.pub}
    out = [
        Load("get.a", "get", "small JSON GET", "a", st.upstream_url + "/items", st.upstream_ps),
        Load("get.b", "get", "small JSON GET", "b", st.proxy_url + "/rest/v1/items", st.proxy_ps),
        Load("get.c.pub", "get", "publishable key GET", "c", gw.url + "/rest/v1/items", gw.procset, pub),
        Load("get.c.nokey", "get", "no key (storage route)", "c", gw.url + "/storage/v1/items", gw.procset),
    ]
    if not ctx.args.no_access_log_variant:
        q = st.gateway("gateway-nolog", access_log=False)
        assert q.procset is not None
        log(f"gateway (access log off) healthy in {q.startup_s:.2f}s on :{q.port}")
        out += [
            Load("get.c.pub.nolog", "get", "publishable key GET, access log off", "c", q.url + "/rest/v1/items",
                 q.procset, pub),
            Load("get.c.nokey.nolog", "get", "no key (storage route), access log off", "c",
                 q.url + "/storage/v1/items", q.procset),
        ]
    return out + [
        Load("get.c.secret", "get", "secret key GET", "c", gw.url + "/rest/v1/items", gw.procset,
             {"apikey": ctx.sec}),
        Load("get.c.jwt", "get", "user JWT pass-through", "c", gw.url + "/rest/v1/items", gw.procset,
             {"apikey": ctx.pub, "Authorization": f"Bearer {ctx.jwt}"}),
        Load("get.c.query", "get", "apikey in query string", "c", gw.url + f"/rest/v1/items?select=*&apikey={ctx.pub}",
             gw.procset),
    ]


SCENARIO = Scenario(loads=loads)
