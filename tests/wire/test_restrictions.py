"""docs/protection.md on the wire: keys that expire (across two instances, and an open Realtime
socket closed at expiry), origins, client IPs and services a key is restricted to, tricky
spellings of each, restrictions changed live. Real gateway processes, real upstreams."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.helpers import assert_refused, create_database
from tests.upstreams import within

EXPIRED = ("UNAUTHORIZED_API_KEY_EXPIRED", "API key expired")


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]', **serving)


# A body makes a request the ASGI app's even with the fast path on: every restriction is checked
# with and without one.
METHODS = ["GET", "POST", "DELETE"]


def soon(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def get(client: httpx.Client, key: str, path: str = "/rest/v1/todos", method: str = "GET",
        **headers: str) -> httpx.Response:
    return client.request(method, path, headers={"apikey": key, **headers},
                          content=b'{"a": 1}' if method == "POST" else None)


def test_a_key_that_expires_works_then_is_refused_on_every_instance(gateways, pg_server):
    dsn = create_database(pg_server)
    a, b = gateways(dsn=dsn), gateways(dsn=dsn, workers=2)
    made = a.create_key("secret", expires_at=soon(2.5))
    assert made["expires_at"] and made["expired"] is False
    key = made["api_key"]
    within(1, lambda: httpx.get(b.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 200)
    assert httpx.get(a.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 200
    time.sleep(max(0.0, datetime.fromisoformat(made["expires_at"]).timestamp() - time.time()) + 0.1)
    for g in (a, b, b):
        r = httpx.get(g.url + "/rest/v1/todos", headers={"apikey": key})
        assert_refused(r, 401, *EXPIRED)
        r = httpx.get(g.url + "/functions/v1/hello", headers={"Authorization": f"Bearer {key}"})
        assert_refused(r, 401, *EXPIRED)  # as a bearer too
    listed = {k["id"]: k for k in a.admin("GET", "/api-keys").json()}
    assert listed[made["id"]]["expired"] is True  # still listed, marked, until deleted


def test_an_open_realtime_socket_is_closed_when_its_key_expires(gw):
    key = gw.create_key("publishable", expires_at=soon(2))["api_key"]
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10) as ws:
        ws.send("info")
        ws.recv(timeout=10)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert (e.value.rcvd.code, e.value.rcvd.reason) == (1008, "API key expired")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10)
    assert refused.value.response.status_code == 401


ORIGINS = ["https://app.example.com", "https://*.example.org", "http://localhost:*"]


@pytest.fixture(scope="module")
def origin_key(gw) -> str:
    return gw.create_key("publishable", allowed_origins=ORIGINS)["api_key"]


@pytest.mark.parametrize(("origin", "status"), [
    ({"Origin": "https://app.example.com"}, 200),
    ({"Origin": "https://APP.example.com"}, 200),
    ({"Origin": "https://app.example.com:443"}, 200),
    ({"Origin": "https://deep.sub.example.org"}, 200),
    ({"Origin": "http://localhost:5173"}, 200),
    ({}, 200),  # neither Origin nor Referer: mobile apps and servers
    ({"Referer": "https://app.example.com/some/page?q=1"}, 200),
    ({"Origin": "https://app.example.com.evil.com"}, 403),
    ({"Origin": "http://app.example.com"}, 403),
    ({"Origin": "https://example.org"}, 403),
    ({"Origin": "http://localhost:3000.evil.com"}, 403),
    ({"Origin": "null"}, 403),
    ({"Origin": "https://evil.example"}, 403),
    ({"Referer": "https://evil.example/https://app.example.com/"}, 403),
    ({"Origin": "https://evil.example", "Referer": "https://app.example.com/"}, 403),  # Origin wins
])
@pytest.mark.parametrize("method", METHODS)
def test_allowed_origins(origin_key, client, origin, status, method):
    key = origin_key
    r = get(client, key, method=method, **origin)
    if status == 403:
        assert_refused(r, 403, "FORBIDDEN_ORIGIN", "Origin not allowed for this API key")
        assert "example" not in r.text and key not in r.text  # the list is never echoed
    else:
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def ip_key(gw) -> str:
    return gw.create_key("secret", allowed_ips=["10.0.0.0/8", "2001:db8::/32"])["api_key"]


@pytest.mark.parametrize(("xff", "status"), [
    ("10.1.2.3", 200), ("192.168.0.9", 403), ("2001:db8::5", 200), ("2001:db9::5", 403), ("::ffff:10.9.9.9", 200),
    ("203.0.113.1, 10.1.2.3", 200),  # the rightmost untrusted address is the client
    ("10.1.2.3, 192.168.0.9", 403),  # what a client writes to the left changes nothing
])
@pytest.mark.parametrize("method", METHODS)
def test_allowed_ips_behind_a_trusted_proxy(ip_key, client, xff, status, method):
    r = get(client, ip_key, method=method, **{"X-Forwarded-For": xff})
    if status == 403:
        assert_refused(r, 403, "FORBIDDEN_IP", "Client IP not allowed for this API key")
        assert xff.split(",")[-1].strip() not in r.text  # the client's address is never echoed
    else:
        assert r.status_code == 200, r.text


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(gateways):
    g = gateways()  # no trusted proxies: the peer (127.0.0.1) is the client
    key = g.create_key("secret", allowed_ips=["10.0.0.0/8"])["api_key"]
    loopback = g.create_key("secret", allowed_ips=["127.0.0.1"])["api_key"]
    with httpx.Client(base_url=g.url) as c:
        assert get(c, key, **{"X-Forwarded-For": "10.1.2.3"}).status_code == 403
        assert get(c, loopback, **{"X-Forwarded-For": "10.1.2.3"}).status_code == 200


@pytest.mark.parametrize("method", METHODS)
def test_allowed_services(gw, client, method):
    key = gw.create_key("secret", allowed_services=["storage"])["api_key"]
    assert get(client, key, "/storage/v1/object/a", method).status_code == 200
    for path in ("/rest/v1/todos", "/graphql/v1", "/functions/v1/x", "/auth/v1/user", "/pg/tables"):
        assert_refused(get(client, key, path, method), 403, "FORBIDDEN_SERVICE",
                       "Service not allowed for this API key")
    with pytest.raises(InvalidStatus) as e:
        connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10)
    assert e.value.response.status_code == 403
    graphql_only = gw.create_key("publishable", allowed_services=["graphql"])["api_key"]
    assert client.post("/graphql/v1", headers={"apikey": graphql_only}, json={}).status_code == 200
    assert get(client, graphql_only).status_code == 403  # graphql is not rest, though both go to PostgREST


def test_restrictions_changed_live(gw, client):
    made = gw.create_key("publishable")
    key, path = made["api_key"], f"/api-keys/{made['id']}"
    assert get(client, key, Origin="https://other.example").status_code == 200
    assert gw.admin("PATCH", path, json={"allowed_origins": ["https://app.example.com"]}).status_code == 200
    within(1, lambda: get(client, key, Origin="https://other.example").status_code == 403)
    assert gw.admin("PATCH", path, json={"allowed_origins": [], "allowed_services": ["auth"]}).status_code == 200
    within(1, lambda: get(client, key, Origin="https://other.example").status_code == 403
           and get(client, key, "/auth/v1/user").status_code == 200)
    r = gw.admin("PATCH", path, json={"allowed_services": None, "expires_at": soon(-1)})
    assert r.status_code == 200 and r.json()["expired"] is True
    within(1, lambda: get(client, key).status_code == 401)
    assert gw.admin("PATCH", path, json={"expires_at": None}).status_code == 200
    within(1, lambda: get(client, key).status_code == 200)


def test_an_unrestricted_key_is_untouched(gw, client):
    key = gw.create_key("publishable")["api_key"]
    r = get(client, key, Origin="null", **{"X-Forwarded-For": "192.0.2.1"})
    assert r.status_code == 200
