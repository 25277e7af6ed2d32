"""gateway.rules.network as table tests: addresses in hostile spellings, CIDR sets as merged ranges,
what blocks go by (an IPv6 client's /64), and the allow list's canonical form."""

from __future__ import annotations

import ipaddress
import random

import pytest

from gateway.rules.network import EVERYONE, MAX_CIDRS, Networks, address_value, block_key, canonical_cidrs


@pytest.mark.parametrize(("text", "expected"), [
    ("203.0.113.7", (4, 0xCB007107)),
    ("::ffff:203.0.113.7", (4, 0xCB007107)),  # IPv4-mapped: the IPv4 address
    ("::FFFF:cb00:7107", (4, 0xCB007107)),  # the same, written in hex and upper case
    ("0:0:0:0:0:ffff:203.0.113.7", (4, 0xCB007107)),
    ("2001:db8::1", (6, 0x20010DB8 << 96 | 1)),
    ("::1", (6, 1)),
    ("::ffff:0:1", (4, 1)),  # in ::ffff:0:0/96, however it is written
    ("203.0.113.7/32", None),  # a CIDR is not one address
    ("203.0.113.007", None),  # no octal-looking spellings
    ("203.0.113", None),
    (" 203.0.113.7", None),
    ("203.0.113.7:443", None),
    ("fe80::1%eth0", None),  # a zone id
    ("", None),
    ("garbage", None),
    ("1.2.3.4\x00", None),
])
def test_address_value(text, expected):
    assert address_value(text) == expected


@pytest.mark.parametrize(("text", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),  # the same subscriber: the same key
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64: another key
    ("::1", "::/64"),
    ("garbage", None),
    ("2001:db8::/64", None),
])
def test_block_key(text, key):
    assert block_key(text) == key


def v(text: str) -> tuple[int, int]:
    parsed = address_value(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(("cidrs", "inside", "outside"), [
    (["10.0.0.0/8"], ["10.0.0.0", "10.255.255.255", "::ffff:10.1.2.3"], ["9.255.255.255", "11.0.0.0", "::a00:1"]),
    (["10.0.0.0/24", "10.0.1.0/24"], ["10.0.0.255", "10.0.1.0"], ["10.0.2.0"]),  # adjacent: merged
    (["10.0.0.0/8", "10.1.0.0/16"], ["10.1.2.3", "10.200.0.1"], ["11.0.0.1"]),  # nested
    (["10.0.0.0/8", "10.1.0.0/16"][::-1], ["10.1.2.3", "10.200.0.1"], ["11.0.0.1"]),  # any order
    (["192.0.2.7"], ["192.0.2.7"], ["192.0.2.6", "192.0.2.8"]),  # a bare address is its /32
    (["10.1.2.3/8"], ["10.9.9.9"], ["11.0.0.0"]),  # host bits set: the network
    (["::ffff:192.0.2.0/120"], ["192.0.2.9", "::ffff:192.0.2.9"], ["192.0.3.0"]),  # a mapped CIDR is IPv4
    (["2001:db8::/32"], ["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"], ["2001:db9::", "32.1.13.184"]),
    (["0.0.0.0/0"], ["0.0.0.0", "255.255.255.255"], ["::1", "2001:db8::1"]),  # IPv4 only
    (["::/0"], ["::1", "2001:db8::1"], ["127.0.0.1"]),  # IPv6 only (mapped addresses are IPv4)
    ([], [], ["127.0.0.1", "::1"]),
])
def test_networks_contains(cidrs, inside, outside):
    nets = Networks.parse(cidrs)
    for text in inside:
        assert nets.contains(*v(text)), text
    for text in outside:
        assert not nets.contains(*v(text)), text


def test_networks_agree_with_ipaddress_on_random_sets():
    rng = random.Random(7)
    for _ in range(50):
        cidrs = [f"{rng.randrange(256)}.{rng.randrange(256)}.0.0/{rng.randrange(8, 25)}"
                 for _ in range(rng.randrange(1, 9))]
        nets, parsed = Networks.parse(cidrs), [ipaddress.ip_network(c, strict=False) for c in cidrs]
        for _ in range(200):
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            assert nets.contains(4, int(address)) == any(address in n for n in parsed), (cidrs, address)


@pytest.mark.parametrize(("cidrs", "covers"), [
    (["0.0.0.0/0", "::/0"], (True, True)),
    (["0.0.0.0/1", "128.0.0.0/1"], (True, False)),  # halves that add up to everyone
    (["0.0.0.0/1"], (False, False)),
    (["::/1", "8000::/1"], (False, True)),
])
def test_covers(cidrs, covers):
    nets = Networks.parse(cidrs)
    assert (nets.covers(4), nets.covers(6)) == covers
    assert EVERYONE.covers(4) and EVERYONE.covers(6)


@pytest.mark.parametrize(("given", "v4", "v6"), [
    (["203.0.113.0/24", "2001:db8::/32"], ["203.0.113.0/24"], ["2001:db8::/32"]),
    (["203.0.113.7/24"], ["203.0.113.0/24"], []),  # host bits cleared
    (["203.0.113.7"], ["203.0.113.7/32"], []),
    (["::ffff:203.0.113.0/120"], ["203.0.113.0/24"], []),  # mapped: IPv4
    (["2001:DB8::1/64", "2001:db8::/64"], [], ["2001:db8::/64"]),  # duplicates dropped
    (["10.0.0.0/8", "10.0.0.0/8", " 10.0.0.0/8 "], ["10.0.0.0/8"], []),
])
def test_canonical_cidrs(given, v4, v6):
    assert canonical_cidrs(given) == (v4, v6)


@pytest.mark.parametrize("given", [
    ["203.0.113.0/24", "not-a-cidr"], ["10.0.0.0/33"], ["2001:db8::/129"], [""], [None], [42], ["10.0.0.0/8/8"],
    ["1.2.3.4-1.2.3.9"], ["fe80::1%eth0/64"],
])
def test_canonical_cidrs_name_the_entry_never_the_text(given):
    with pytest.raises(ValueError) as e:
        canonical_cidrs(given)
    bad = next(i for i, text in enumerate(given) if i > 0 or text != "203.0.113.0/24")
    assert str(e.value) == f"entry {bad} is not an IP address or CIDR"


def test_canonical_cidrs_are_bounded():
    too_many = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_CIDRS + 1)]
    with pytest.raises(ValueError, match="at most"):
        canonical_cidrs(too_many)
    assert len(canonical_cidrs(too_many[:MAX_CIDRS])[0]) == MAX_CIDRS
