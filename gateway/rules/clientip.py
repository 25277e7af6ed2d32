"""The client's IP address: the socket's peer, or, when the peer is one of
``server.trusted_proxies``, the rightmost ``X-Forwarded-For`` address that is not trusted.

A spoofed ``X-Forwarded-For`` from an untrusted peer changes nothing: it is not read at all.
Pure functions and a small cache of peers already judged; no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_MAX = 4096


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses); ValueError naming the first that is neither. Parsed once: the
    same list always gives the same networks (the settings that checked them, the gateway)."""
    try:
        return _parse_networks(tuple(texts))
    except TypeError:  # an entry that is no text (unhashable): not a CIDR
        return _parse_networks_unhashable(list(texts))


def _parse_networks_unhashable(texts: list[object]) -> tuple[Network, ...]:
    strings: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"entry {i} is not an IP address or CIDR")
        strings.append(text)
    return _parse_networks(tuple(strings))


@functools.lru_cache(maxsize=1024)
def _parse_networks(texts: tuple[str, ...]) -> tuple[Network, ...]:
    out = []
    for i, text in enumerate(texts):
        try:
            out.append(_as_ipv4(ipaddress.ip_network(text.strip(), strict=False)))
        except (ValueError, AttributeError):
            raise ValueError(f"entry {i} is not an IP address or CIDR") from None
    return tuple(out)


def _as_ipv4(network: Network) -> Network:
    """``::ffff:192.0.2.0/120`` is ``192.0.2.0/24``: IPv4-mapped addresses are IPv4 everywhere."""
    mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    if mapped is None or network.prefixlen < 96:
        return network
    return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")


def canonical(peer: str) -> str:
    """The address as the rest of the gateway knows it: an IPv4-mapped IPv6 address
    (``::ffff:a.b.c.d``, how a dual-stack listener sees IPv4 clients) is the IPv4 address."""
    if peer.startswith("::ffff:") and "." in peer:
        return peer[7:]
    return peer


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port, as some proxies write it
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientIp:
    """``resolve(peer, x_forwarded_for)``: the client's address as text."""

    __slots__ = ("trusted", "_peers")

    def __init__(self, trusted: tuple[Network, ...]) -> None:
        self.trusted = trusted
        self._peers: dict[str, bool] = {}

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.trusted)

    def _peer_trusted(self, peer: str) -> bool:
        known = self._peers.get(peer)
        if known is None:
            address = _address(peer)
            known = address is not None and self._is_trusted(address)
            if len(self._peers) >= _CACHE_MAX:
                self._peers.clear()
            self._peers[peer] = known
        return known

    def trusts(self, peer: str) -> bool:
        """Whether the socket's peer is one of the trusted proxies."""
        return bool(self.trusted) and self._peer_trusted(canonical(peer))

    def resolve(self, peer: str, xff: bytes | None) -> str:
        peer = canonical(peer)
        if not self.trusted or not xff or not self._peer_trusted(peer):
            return peer
        hops = xff.decode("latin-1").split(",")
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage a trusted proxy would not write: believe no further
            if not self._is_trusted(address):
                return str(address)
            peer = str(address)  # a trusted proxy: look one further left
        return peer


def limit_key(ip: str) -> str:
    """What a per-IP limit counts by: the address, or its /64 for IPv6 (one subscriber's
    network, which hands out as many addresses as it likes)."""
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    except ValueError:
        return ip
