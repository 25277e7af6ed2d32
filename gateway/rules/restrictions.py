"""Key restrictions (docs/protection.md): where a key may be used from, and for what.

``allowed_origins`` (the ``Origin`` header, else the origin of ``Referer``; neither: allowed),
``allowed_ips`` (the client IP as gateway.rules.clientip finds it) and ``allowed_services`` (the
route's service). Decided from memory after the key is identified, with a few dict lookups:
the answers for the origins and addresses a key has seen are remembered (bounded). A refusal
never echoes the key, the lists or the client's address. Expiry is the authenticator's (401).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway import errors
from gateway.rules.clientip import canonical, parse_networks
from gateway.rules.origins import OriginSet, referer_origin

_CACHE_MAX = 1024


class Restrictions:
    __slots__ = ("source", "origins", "networks", "services", "_referers", "_ips")

    def __init__(self, origins: list[str], ips: list[str], services: list[str]) -> None:
        self.source = (tuple(origins), tuple(ips), tuple(services))
        self.origins = OriginSet.parse(origins) if origins else None
        self.networks = parse_networks(ips) or None
        self.services = frozenset(services) or None
        self._referers: dict[bytes, bool] = {}
        self._ips: dict[str, bool] = {}

    def check(self, origin: bytes | None, referer: bytes | None, client_ip: str, service: str) -> None:
        """Raise the refusal of the first restriction the request does not meet."""
        if self.origins is not None:
            if origin is not None:
                if not self.origins.allows_header(origin):
                    raise errors.FORBIDDEN_ORIGIN()
            elif referer is not None and not self._referer_allowed(referer):
                raise errors.FORBIDDEN_ORIGIN()
        if self.networks is not None and not self._ip_allowed(client_ip):
            raise errors.FORBIDDEN_IP()
        if self.services is not None and service not in self.services:
            raise errors.FORBIDDEN_SERVICE()

    def _referer_allowed(self, referer: bytes) -> bool:
        seen = self._referers.get(referer)
        if seen is None:
            origins = self.origins
            seen = origins is not None and origins.allows(referer_origin(referer.decode("latin-1")))
            _remember(self._referers, referer, seen)
        return seen

    def _ip_allowed(self, client_ip: str) -> bool:
        seen = self._ips.get(client_ip)
        if seen is None:
            try:
                address = ipaddress.ip_address(canonical(client_ip))
            except ValueError:
                seen = False
            else:
                seen = any(address in network for network in self.networks or ())
            _remember(self._ips, client_ip, seen)
        return seen


def _remember(cache: dict[Any, bool], key: Any, value: bool) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


_SHARED: dict[tuple[tuple[str, ...], ...], Restrictions] = {}  # keys with the same lists share one


def restrictions_for(origins: list[str] | None, ips: list[str] | None, services: list[str] | None) -> Restrictions | None:
    """The restrictions of a stored key, or None when it has none (the request path then pays nothing)."""
    if not (origins or ips or services):
        return None
    source = (tuple(origins or ()), tuple(ips or ()), tuple(services or ()))
    shared = _SHARED.get(source)
    if shared is None:
        if len(_SHARED) >= 10_000:
            _SHARED.clear()
        shared = _SHARED[source] = Restrictions(list(source[0]), list(source[1]), list(source[2]))
    return shared
