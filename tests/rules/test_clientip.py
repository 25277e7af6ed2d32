"""gateway.rules.clientip as table tests: the client's address behind trusted proxies, IPv4-mapped
addresses as the IPv4 address they are, and what a per-IP limit counts by."""

from __future__ import annotations

import pytest

from gateway.rules.clientip import ClientIp, canonical, limit_key, parse_networks


@pytest.mark.parametrize(("peer", "expected"), [
    ("203.0.113.7", "203.0.113.7"),
    ("::ffff:203.0.113.7", "203.0.113.7"),  # a dual-stack listener's IPv4 client
    ("::ffff:127.0.0.2", "127.0.0.2"),
    ("2001:db8::1", "2001:db8::1"),
    ("::1", "::1"),
    ("::ffff:0:1", "::ffff:0:1"),  # not a mapped IPv4 address
])
def test_canonical(peer, expected):
    assert canonical(peer) == expected


TRUSTED = ClientIp(parse_networks(["10.0.0.0/8", "::ffff:192.0.2.1", "2001:db8:ff::/48"]))
NOBODY = ClientIp(())


@pytest.mark.parametrize(("resolver", "peer", "xff", "client"), [
    (NOBODY, "203.0.113.7", b"198.51.100.1", "203.0.113.7"),  # no trusted proxy: never read
    (NOBODY, "::ffff:203.0.113.7", b"198.51.100.1", "203.0.113.7"),
    (NOBODY, "::ffff:203.0.113.7", None, "203.0.113.7"),
    (TRUSTED, "10.1.2.3", b"198.51.100.1", "198.51.100.1"),
    (TRUSTED, "::ffff:10.1.2.3", b"198.51.100.1", "198.51.100.1"),  # a mapped proxy is the proxy
    (TRUSTED, "192.0.2.1", b"::ffff:198.51.100.1", "198.51.100.1"),  # a mapped client behind it
    (TRUSTED, "10.1.2.3", b"198.51.100.1, 10.9.9.9", "198.51.100.1"),  # rightmost untrusted
    (TRUSTED, "10.1.2.3", b"garbage, 198.51.100.1", "198.51.100.1"),
    (TRUSTED, "10.1.2.3", b"198.51.100.1, garbage", "10.1.2.3"),  # garbage: believe no further
    (TRUSTED, "203.0.113.7", b"198.51.100.1", "203.0.113.7"),  # an untrusted peer's header
    (TRUSTED, "2001:db8:ff::9", b"[2001:db8::5]:443", "2001:db8::5"),
    (TRUSTED, "10.1.2.3", b"198.51.100.1:8443", "198.51.100.1"),
])
def test_resolve(resolver, peer, xff, client):
    assert resolver.resolve(peer, xff) == client


@pytest.mark.parametrize(("ip", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one subscriber's network
    ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ("not an address", "not an address"),
])
def test_limit_key(ip, key):
    assert limit_key(ip) == key


def test_parse_networks_names_the_bad_entry():
    with pytest.raises(ValueError, match="entry 1"):
        parse_networks(["10.0.0.0/8", "not-a-cidr"])


def test_a_list_of_networks_is_parsed_once():
    """The settings' check and the gateway that uses them get the same objects."""
    assert parse_networks(["10.0.0.0/8", "::1"]) is parse_networks(("10.0.0.0/8", "::1"))
    with pytest.raises(ValueError, match="entry 0"):
        parse_networks([["not", "text"]])  # type: ignore[list-item]
