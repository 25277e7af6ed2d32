"""Where a key is optional (/storage/v1, /functions/v1, the open auth paths) no request escapes the
limits: a verified user JWT alone counts under per_user, a legacy key sent only as a bearer under
that key's limits, a key however it arrives under its own, and a request with neither per client
IP under keyless_per_ip. Both ways of serving; counts, never timings."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.factories import LEGACY_ANON, hs256, user_claims
from tests.helpers import assert_refused


@pytest.fixture(scope="module")
def gw(gateways, serving, up):
    return gateways(GATEWAY_LIMITS__SYNC_MS="50", GATEWAY_LIMITS__PER_USER="3/m",
                    GATEWAY_LIMITS__PUBLISHABLE_PER_IP="2/m", GATEWAY_LIMITS__KEYLESS_PER_IP="4/m",
                    GATEWAY_UPSTREAMS__STUDIO=up.urls["rest"], **serving)


def statuses(client: httpx.Client, n: int, path: str, **headers: str) -> list[int]:
    return [client.get(path, headers=headers).status_code for _ in range(n)]


@pytest.mark.parametrize("route", ["/storage/v1/object/a", "/functions/v1/f"])
def test_a_user_jwt_without_a_key_counts_under_per_user(client, route):
    user = hs256(user_claims(sub=f"u-{uuid.uuid4().hex[:8]}"))
    assert statuses(client, 4, route, Authorization=f"Bearer {user}") == [200] * 3 + [429]
    r = client.get(route, headers={"Authorization": f"Bearer {user}"})
    assert_refused(r, 429, "OVER_REQUEST_RATE_LIMIT")
    assert "per_user" in r.json()["hint"] and r.headers["ratelimit-policy"] == '"per_user";q=3;w=60'


def test_the_same_user_is_counted_across_routes_with_and_without_a_key(gw, client):
    user = hs256(user_claims(sub=f"u-{uuid.uuid4().hex[:8]}"))
    pub = gw.create_key("publishable", limits={"per_ip": "100/m"})["api_key"]
    bearer = f"Bearer {user}"
    assert client.get("/storage/v1/object/a", headers={"Authorization": bearer}).status_code == 200
    assert client.get("/rest/v1/t", headers={"apikey": pub, "Authorization": bearer}).status_code == 200
    assert client.get("/functions/v1/f", headers={"Authorization": bearer}).status_code == 200
    assert client.get("/rest/v1/t", headers={"apikey": pub, "Authorization": bearer}).status_code == 429


def test_a_legacy_key_sent_only_as_a_bearer_counts_under_the_publishable_defaults(gw):
    # A client of its own: the publishable default counts per IP, and this module shares 127.0.0.1.
    with httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address="127.0.0.5")) as c:
        got = statuses(c, 3, "/storage/v1/object/a", Authorization=f"Bearer {LEGACY_ANON}")
    assert got == [200, 200, 429]


def test_requests_with_neither_count_per_client_ip(gw):
    with httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address="127.0.0.6")) as c:
        got = [c.get(path).status_code for path in ("/storage/v1/object/public/a", "/functions/v1/hook",
                                                    "/auth/v1/verify", "/storage/v1/object/sign/x")]
        got += [c.get("/functions/v1/hook", headers={"Authorization": "Bearer not-a-jwt"}).status_code]
        got += [c.get("/functions/v1/hook", headers={"Authorization": f"Bearer {hs256(user_claims(ttl=-9))}"})
                .status_code]
    assert got == [200, 200, 200, 200, 429, 429]  # garbage or an expired JWT is no way around it
    with httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address="127.0.0.7")) as other:
        assert other.get("/storage/v1/object/public/a").status_code == 200  # another address, its own count


def test_a_key_in_the_query_or_as_a_bearer_counts_under_its_limits(gw, client):
    key = gw.create_key("publishable", limits={"per_key": "2/m"})["api_key"]
    assert client.get("/storage/v1/object/a", params={"apikey": key}).status_code == 200
    assert client.get("/functions/v1/f", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/storage/v1/object/a", headers={"apikey": key}).status_code == 429


def test_the_dashboard_is_not_counted_by_address(gw):
    """Behind its own password (none here), for the people who run the stack: never keyless."""
    with httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address="127.0.0.8")) as c:
        assert [c.get("/project/default").status_code for _ in range(6)] == [200] * 6
        assert c.get("/storage/v1/object/public/a").status_code == 200  # its own count, untouched
