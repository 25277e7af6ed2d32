"""Network restrictions on the wire (docs/protection.md): ``protection.deny_ips``
and the allow list kept in Postgres, changed live over the admin API, on both ways of serving and
across two instances: 403 FORBIDDEN_IP before anything else (no key check, no upstream), /health
answering everyone, the admin listener untouched. Clients bound to 127.0.0.x."""

from __future__ import annotations

import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.helpers import assert_refused, create_database
from tests.upstreams import within

FORBIDDEN = ("FORBIDDEN_IP", "Client IP not allowed")
EVERYONE = {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}


def bound(url: str, ip: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=ip))


def status(url: str, ip: str, key: str, method: str = "GET") -> int:
    with bound(url, ip) as c:
        return c.request(method, "/rest/v1/todos", headers={"apikey": key},
                         content=b"{}" if method == "POST" else None).status_code


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_PROTECTION__DENY_IPS='["127.0.0.7/32", "::ffff:127.0.0.8/128"]', **serving)


@pytest.fixture
def everyone(gw):
    yield
    assert gw.admin("POST", "/network-restrictions/apply", json=EVERYONE).status_code == 201


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])  # POST: the ASGI app even with the fast path on
def test_denied_addresses_are_refused_before_anything_else(gw, pub, up, method):
    name = f"denied-{uuid.uuid4().hex}"
    for ip in ("127.0.0.7", "127.0.0.8"):  # the second written as an IPv4-mapped CIDR
        with bound(gw.url, ip) as c:
            for headers in ({"apikey": pub}, {"apikey": "sb_publishable_garbage"}, {}):  # no key check at all
                r = c.request(method, f"/rest/v1/{name}", headers=headers, content=b"{}" if method == "POST" else None)
                assert_refused(r, 403, *FORBIDDEN)
            r = c.options(f"/rest/v1/{name}", headers={"Origin": "https://a.example",
                                                        "Access-Control-Request-Method": "GET"})
            assert_refused(r, 403, *FORBIDDEN)  # preflights too
            assert c.get("/health").json() == {"status": "ok"}  # probes are answered
    assert not any(name.encode() in r for r in up.received)
    assert status(gw.url, "127.0.0.9", pub, method) in (200, 201, 204)  # a neighbour is not


def test_a_denied_websocket_is_refused_at_its_handshake(gw, pub):
    with pytest.raises(InvalidStatus) as e:
        connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10,
                source_address=("127.0.0.7", 0))
    assert e.value.response.status_code == 403


def test_an_open_realtime_socket_is_closed_when_the_allow_list_leaves_it_out(gw, pub, everyone):
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10,
                 source_address=("127.0.0.3", 0)) as ws:
        ws.send("info")
        ws.recv(timeout=10)
        assert gw.admin("POST", "/network-restrictions/apply", json={"dbAllowedCidrs": ["127.0.0.4/32"]}).status_code \
            == 201
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert (e.value.rcvd.code, e.value.rcvd.reason) == (1008, "Client IP not allowed")


def test_the_allow_list_changes_live(gw, pub, everyone):
    assert status(gw.url, "127.0.0.3", pub) == 200
    r = gw.admin("POST", "/network-restrictions/apply", json={"dbAllowedCidrs": ["127.0.0.4/32", "127.0.0.7"],
                                                               "dbAllowedCidrsV6": []})
    assert r.status_code == 201
    assert r.json()["config"] == {"dbAllowedCidrs": ["127.0.0.4/32", "127.0.0.7/32"], "dbAllowedCidrsV6": []}
    within(1, lambda: status(gw.url, "127.0.0.3", pub) == 403)
    with bound(gw.url, "127.0.0.3") as c:
        assert_refused(c.get("/rest/v1/todos", headers={"apikey": pub}), 403, *FORBIDDEN)
        assert c.get("/health").status_code == 200
    assert status(gw.url, "127.0.0.4", pub) == 200
    assert status(gw.url, "127.0.0.4", pub, "POST") == 200  # the echo upstream answers 200
    assert status(gw.url, "127.0.0.7", pub) == 403  # allowed, but denied by the configuration: deny wins
    assert httpx.get(gw.admin_url + "/health").status_code == 200  # the admin listener is not the public one
    # Added to with PATCH (the Supabase CLI's update --append), then everyone again.
    r = gw.admin("PATCH", "/network-restrictions", json={"add": {"dbAllowedCidrs": ["127.0.0.3/32"]}})
    assert r.status_code == 200
    within(1, lambda: status(gw.url, "127.0.0.3", pub) == 200)
    assert gw.admin("POST", "/network-restrictions/apply", json=EVERYONE).status_code == 201
    within(1, lambda: status(gw.url, "127.0.0.5", pub) == 200)


def test_an_allow_list_change_reaches_every_worker_of_every_instance(gateways, pg_server):
    dsn = create_database(pg_server)
    a, b = gateways(workers=2, dsn=dsn), gateways(workers=2, dsn=dsn)
    pub = a.create_key("publishable")["api_key"]
    within(2, lambda: status(b.url, "127.0.0.3", pub) == 200)
    assert a.admin("POST", "/network-restrictions/apply", json={"dbAllowedCidrs": ["127.0.0.4/32"]}).status_code == 201
    assert within(1, lambda: all(status(g.url, "127.0.0.3", pub) == 403 for g in (a, b, a, b, a, b))) < 1
    assert all(status(g.url, "127.0.0.4", pub) == 200 for g in (a, b, a, b))
    # A restart keeps it: it is in Postgres.
    b.stop()
    c = gateways(workers=1, dsn=dsn)
    assert status(c.url, "127.0.0.3", pub) == 403 and status(c.url, "127.0.0.4", pub) == 200
    assert a.admin("POST", "/network-restrictions/apply", json=EVERYONE).status_code == 201
    assert within(1, lambda: all(status(g.url, "127.0.0.3", pub) == 200 for g in (a, c, a, c))) < 1
