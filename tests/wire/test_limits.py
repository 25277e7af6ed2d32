"""docs/protection.md on the wire: rate limits per key, per client IP and per user, the 429 answer
and its headers, the client IP behind trusted proxies (and a spoofed X-Forwarded-For that
changes nothing), limits changed live, and the upstream never seeing a refused request. Real
gateway processes, real upstreams, the real Postgres store (the shared-counts suite also runs
on Redis). Counts, never timings: small windows, a few requests."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.factories import LEGACY_ANON, hs256, user_claims
from tests.helpers import assert_refused
from tests.upstreams import echo_header, within


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_LIMITS__SYNC_MS="50", GATEWAY_LIMITS__PER_USER="3/m",
                    GATEWAY_SERVER__TRUSTED_PROXIES='["10.0.0.0/8"]')


def marker() -> str:
    return "limits_" + uuid.uuid4().hex[:10]


def reached(up, mark: str) -> int:
    """How many requests with ``mark`` in their path reached any upstream."""
    return sum(1 for r in list(up.received) if mark.encode() in r.split(b"\n", 1)[0])


def statuses(client: httpx.Client, n: int, path: str, **headers: str) -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(n)]


def test_a_per_key_limit_admits_its_count_and_refuses_the_rest(gw, client, up):
    key = gw.create_key("publishable", limits={"per_key": "5/m"})["api_key"]
    mark = marker()
    got = statuses(client, 12, f"/rest/v1/{mark}", apikey=key)
    assert got == [200] * 5 + [429] * 7
    assert reached(up, mark) == 5  # the upstream never saw a refused request


def test_the_429_answer_and_its_headers(gw, client):
    key = gw.create_key("secret", limits={"per_key": "2/m"})["api_key"]
    admitted = client.get("/rest/v1/todos", headers={"apikey": key})
    assert admitted.headers["ratelimit-policy"] == '"per_key";q=2;w=60'
    assert re.fullmatch(r'"per_key";r=1;t=\d+', admitted.headers["ratelimit"])
    client.get("/rest/v1/todos", headers={"apikey": key})
    r = client.get("/rest/v1/todos", headers={"apikey": key, "Origin": "https://app.example.com"})
    assert_refused(r, 429, "OVER_REQUEST_RATE_LIMIT", "Too many requests")
    assert "2/m" in r.json()["hint"] and key not in r.text
    assert 1 <= int(r.headers["retry-after"]) <= 63
    assert r.headers["ratelimit-policy"] == '"per_key";q=2;w=60'
    assert re.fullmatch(r'"per_key";r=0;t=\d+', r.headers["ratelimit"])
    assert r.headers["access-control-allow-origin"] == "*"  # readable by the browser that sent it


def test_preflights_and_health_never_count(gw, client):
    key = gw.create_key("publishable", limits={"per_key": "2/m"})["api_key"]
    for _ in range(5):
        client.options("/rest/v1/todos", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET",
                                                  "apikey": key})
        client.get("/health", headers={"apikey": key})
    assert statuses(client, 3, "/rest/v1/todos", apikey=key) == [200, 200, 429]


def test_per_ip_counts_each_client_apart_behind_a_trusted_proxy(gw, up):
    """The gateway's peer here is 127.0.0.1, not a trusted proxy: X-Forwarded-For is not believed."""
    key = gw.create_key("publishable", limits={"per_ip": "3/m"})["api_key"]
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        spoofed = [c.get("/rest/v1/todos", headers={"apikey": key, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                   for i in range(6)]
        assert spoofed == [200, 200, 200, 429, 429, 429]  # six "clients", one peer: one count
        r = c.get("/rest/v1/todos", headers={"apikey": key, "X-Forwarded-For": "203.0.113.99"})
    assert r.status_code == 429


def test_per_ip_behind_a_trusted_proxy(gateways, up):
    g = gateways(GATEWAY_SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]', GATEWAY_LIMITS__SYNC_MS="50")
    key = g.create_key("publishable", limits={"per_ip": "2/m"})["api_key"]
    with httpx.Client(base_url=g.url, timeout=30) as c:
        def get(xff: str) -> httpx.Response:
            return c.get("/rest/v1/todos", headers={"apikey": key, "X-Forwarded-For": xff})

        # The rightmost address that is not a trusted proxy is the client.
        assert [get("198.51.100.1").status_code for _ in range(3)] == [200, 200, 429]
        assert [get("198.51.100.2").status_code for _ in range(3)] == [200, 200, 429]
        # What the client wrote to the left of the real address changes nothing.
        assert get("6.6.6.6, 198.51.100.1").status_code == 429
        r = get("7.7.7.7, 198.51.100.3")
        assert r.status_code == 200
        assert echo_header(r.json(), "x-forwarded-for") == ["198.51.100.3"]  # and it is what the upstream is told
        # IPv6 clients count by their /64.
        assert [get(f"2001:db8:1:1::{i}").status_code for i in (1, 2, 3)] == [200, 200, 429]


def test_per_user_by_the_sub_of_a_verified_jwt(gw, client):
    key = gw.create_key("publishable")["api_key"]
    alice, bob = hs256(user_claims(sub="alice-" + uuid.uuid4().hex)), hs256(user_claims(sub="bob-" + uuid.uuid4().hex))
    auth = {"apikey": key}
    assert statuses(client, 4, "/rest/v1/todos", **auth, Authorization=f"Bearer {alice}") == [200, 200, 200, 429]
    assert statuses(client, 3, "/rest/v1/todos", **auth, Authorization=f"Bearer {bob}") == [200, 200, 200]
    assert client.get("/rest/v1/todos", headers=auth).status_code == 200  # no user: no per-user limit


def test_configured_defaults_for_keys_without_their_own(gateways):
    g = gateways(GATEWAY_LIMITS__PUBLISHABLE_PER_IP="3/m", GATEWAY_LIMITS__SECRET_PER_KEY="2/m")
    pub = g.create_key("publishable")["api_key"]
    sec = g.create_key("secret")["api_key"]
    own = g.create_key("publishable", limits={"per_ip": "5/m"})["api_key"]
    with httpx.Client(base_url=g.url, timeout=30) as c:
        assert statuses(c, 4, "/rest/v1/todos", apikey=pub) == [200] * 3 + [429]
        assert statuses(c, 3, "/rest/v1/todos", apikey=sec) == [200] * 2 + [429]
        assert statuses(c, 6, "/rest/v1/todos", apikey=own) == [200] * 5 + [429]  # its own limit wins
        assert statuses(c, 4, "/rest/v1/todos", apikey=LEGACY_ANON) == [200] * 3 + [429]  # legacy anon: publishable
        r = c.get("/rest/v1/todos", headers={"apikey": pub})
        assert r.headers["ratelimit-policy"] == '"per_ip";q=3;w=60'
    assert g.admin("GET", "/api-keys").status_code == 200


def test_limits_changed_live_take_effect_within_a_second(gw, client):
    made = gw.create_key("publishable", limits={"per_key": "2/m"})
    key = made["api_key"]
    assert statuses(client, 3, "/rest/v1/todos", apikey=key) == [200, 200, 429]
    assert gw.admin("PATCH", f"/api-keys/{made['id']}", json={"limits": {"per_key": "50/m"}}).status_code == 200
    within(1.0, lambda: client.get("/rest/v1/todos", headers={"apikey": key}).status_code == 200)
    assert gw.admin("PATCH", f"/api-keys/{made['id']}", json={"limits": {"per_key": "1/m"}}).status_code == 200
    within(1.0, lambda: client.get("/rest/v1/todos", headers={"apikey": key}).status_code == 429)


def test_refused_requests_are_counted_and_logged(gw, client):
    key = gw.create_key("publishable", limits={"per_key": "1/m"})
    client.get("/rest/v1/todos", headers={"apikey": key["api_key"]})
    client.get("/rest/v1/todos", headers={"apikey": key["api_key"]})

    def logged() -> bool:
        return any(line.get("status") == 429 and line.get("rate_limited") == "per_key"
                   and line.get("key_id") == key["id"] for line in gw.access_log())

    within(3.0, logged)
    within(3.0, lambda: re.search(r'gateway_rate_limited_total\{scope="per_key"\} [1-9]',
                                  gw.metrics()) is not None)


def test_websocket_handshakes_count_too(gw):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    key = gw.create_key("publishable", limits={"per_key": "1/m"})["api_key"]
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10) as ws:
        ws.send("info")
        json.loads(ws.recv(timeout=10))
    with pytest.raises(InvalidStatus) as e:
        connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10)
    assert e.value.response.status_code == 429
