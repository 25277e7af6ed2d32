"""A dual-stack listener sees IPv4 clients as ``::ffff:a.b.c.d``: such an address is the IPv4
address everywhere (per-IP limits, allowed_ips, trusted proxies, X-Forwarded-For upstream), so
that one IPv4 client never exhausts a limit for every other one. The listener here binds
``::ffff:127.0.0.1`` (loopback only), and clients connect from 127.0.0.2 and 127.0.0.3."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.upstreams import echo_header


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_SERVER__HOST="::ffff:127.0.0.1", GATEWAY_SERVER__TRUSTED_PROXIES='["127.0.0.4"]',
                    GATEWAY_LIMITS__SYNC_MS="50", **serving)


@pytest.fixture(scope="module")
def clients(gw) -> Iterator[dict[str, httpx.Client]]:
    """One client per source address."""
    made = {ip: httpx.Client(base_url=gw.url, timeout=30, transport=httpx.HTTPTransport(local_address=ip))
            for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4")}
    yield made
    for c in made.values():
        c.close()


def test_per_ip_limits_count_each_ipv4_client_apart(gw, clients):
    key = gw.create_key("publishable", limits={"per_ip": "2/m"})["api_key"]
    a, b = clients["127.0.0.2"], clients["127.0.0.3"]
    assert [a.get("/rest/v1/t", headers={"apikey": key}).status_code for _ in range(3)] == [200, 200, 429]
    assert [b.get("/rest/v1/t", headers={"apikey": key}).status_code for _ in range(2)] == [200, 200]


def test_the_upstream_gets_the_ipv4_address(gw, clients):
    key = gw.create_key("publishable")["api_key"]
    echo = clients["127.0.0.3"].get("/rest/v1/t", headers={"apikey": key}).json()
    assert echo_header(echo, "x-forwarded-for") == ["127.0.0.3"]


def test_allowed_ips_match_ipv4_clients(gw, clients):
    key = gw.create_key("publishable", allowed_ips=["127.0.0.2/32"])["api_key"]
    assert clients["127.0.0.2"].get("/rest/v1/t", headers={"apikey": key}).status_code == 200
    assert clients["127.0.0.3"].get("/rest/v1/t", headers={"apikey": key}).status_code == 403


def test_a_trusted_proxy_named_as_ipv4_is_trusted(gw, clients):
    key = gw.create_key("publishable")["api_key"]
    headers = {"apikey": key, "X-Forwarded-For": "198.51.100.9"}
    via_proxy = clients["127.0.0.4"].get("/rest/v1/t", headers=headers).json()
    assert echo_header(via_proxy, "x-forwarded-for") == ["198.51.100.9"]
    spoofed = clients["127.0.0.3"].get("/rest/v1/t", headers=headers).json()
    assert echo_header(spoofed, "x-forwarded-for") == ["127.0.0.3"]
