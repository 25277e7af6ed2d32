"""Client networks as sorted integer ranges: the public listener's allow list (kept in Postgres),
``protection.deny_ips`` and ``protection.never_block``.

An address is read once into ``(version, integer)`` (an IPv4-mapped IPv6 address is the IPv4
address, as everywhere in the gateway); a set of CIDRs is merged into sorted, disjoint ranges
per family, so that a lookup is one bisect, whatever the number of CIDRs. Pure functions; the
per-address cache of answers is the guard's (gateway.rules.guard).
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable

from gateway.rules.clientip import Network, parse_networks

_V4_MAPPED = 0xFFFF << 32
BITS = {4: 32, 6: 128}
MAX_CIDRS = 1000  # per family, in the allow list


def address_value(text: str) -> tuple[int, int] | None:
    """``(4 or 6, the address as an integer)``; an IPv4-mapped IPv6 address is IPv4; None for
    anything that is not one address (a CIDR, a port, a zone id, garbage)."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, TypeError, ValueError):
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, TypeError, ValueError):
        return None
    if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d
        return 4, value & 0xFFFFFFFF
    return 6, value


def block_key(text: str) -> str | None:
    """What blocks and refusal counts go by: the IPv4 address, or an IPv6 address's /64 (one
    subscriber's network, which hands out as many addresses as it likes), as text; None for
    anything that is no address."""
    parsed = address_value(text)
    if parsed is None:
        return None
    version, value = parsed
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    return f"{ipaddress.IPv6Address(value >> 64 << 64)}/64"


def _span(network: Network) -> tuple[int, int, int]:
    return network.version, int(network.network_address), int(network.broadcast_address)


class Networks:
    """CIDRs of both families as merged ranges: ``contains`` is one bisect."""

    __slots__ = ("starts", "ends", "networks")

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)
        self.starts: dict[int, list[int]] = {4: [], 6: []}
        self.ends: dict[int, list[int]] = {4: [], 6: []}
        for version, start, end in sorted(_span(n) for n in self.networks):
            starts, ends = self.starts[version], self.ends[version]
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)

    @classmethod
    def parse(cls, texts: list[str]) -> "Networks":
        """ValueError naming the first entry that is not an address or CIDR (by position)."""
        return cls(parse_networks(texts))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, version: int, value: int) -> bool:
        starts = self.starts[version]
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= self.ends[version][i]

    def covers(self, version: int) -> bool:
        """Every address of the family (``0.0.0.0/0``, ``::/0``, or ranges that add up to it)."""
        return self.starts[version] == [0] and self.ends[version] == [(1 << BITS[version]) - 1]


EVERYONE = Networks(parse_networks(["0.0.0.0/0", "::/0"]))


def canonical_cidrs(texts: list[str]) -> tuple[list[str], list[str]]:
    """CIDRs as the allow list keeps them: host bits cleared, IPv4-mapped ones as IPv4, a bare
    address as its /32 or /128, duplicates dropped, in the order given; split into IPv4 and
    IPv6. ValueError names the first bad entry by position, never by its text."""
    if len(texts) > 2 * MAX_CIDRS:
        raise ValueError(f"at most {MAX_CIDRS} CIDRs of each family")
    out: dict[int, list[str]] = {4: [], 6: []}
    for i, network in enumerate(parse_networks(texts)):
        if "%" in texts[i]:  # a zone id (fe80::1%eth0/64): no client address carries one
            raise ValueError(f"entry {i} is not an IP address or CIDR")
        text = str(network)
        if text not in out[network.version]:
            out[network.version].append(text)
    if max(len(out[4]), len(out[6])) > MAX_CIDRS:
        raise ValueError(f"at most {MAX_CIDRS} CIDRs of each family")
    return out[4], out[6]
