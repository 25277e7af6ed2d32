"""What a key may do: the resources it may reach (``allowed_resources``) and the
methods it may use (``allowed_methods``), and what no public request may reach
(``rest.denied_resources``). Decided from memory after the key's restrictions and before rate
limits, so that a refused request uses up nothing; a key without rules pays nothing (its entry's
``rules`` is None), one with rules a set lookup and, on REST routes, a dict lookup.

Methods: ``GET`` allows ``HEAD`` too (a GET without its body); a WebSocket handshake is a GET;
preflights are answered before any key is looked at, so never refused. A key that may not POST
may not send over Realtime either (gateway.rules.frames).
"""

from __future__ import annotations

from gateway import errors, routes
from gateway.rules.resources import ResourceSet, profile_header

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def reaches(resources: ResourceSet, route: routes.Route, method: str, upstream_path: str,
            headers: list[tuple[bytes, bytes]]) -> bool | None:
    """Whether a request to a route of the rest upstream names a resource on the list (``None``:
    no resource PostgREST serves). The OpenAPI root and /graphql/v1 are GraphQL (see resources)."""
    if route is not routes.REST:
        return resources.graphql
    return resources.matches_path(upstream_path, profile_header(headers, method))


class KeyRules:
    """The rules of one key, shared by the keys with the same lists (``rules_for``)."""

    __slots__ = ("source", "resources", "methods", "may_send")

    def __init__(self, resources: list[str] | tuple[str, ...], methods: list[str] | tuple[str, ...]) -> None:
        self.source = (tuple(resources), tuple(methods))
        self.resources = ResourceSet(resources) if resources else None
        allowed = set(methods)
        if "GET" in allowed:
            allowed.add("HEAD")
        self.methods = frozenset(allowed) or None
        self.may_send = self.methods is None or "POST" in self.methods  # over Realtime: broadcast, presence

    def check(self, method: str, route: routes.Route, upstream_path: str, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise the refusal of the first rule the request breaks (``method``: GET for a WebSocket)."""
        if self.methods is not None and method not in self.methods:
            raise errors.FORBIDDEN_METHOD()
        if self.resources is not None and route.upstream == "rest" \
                and reaches(self.resources, route, method, upstream_path, headers) is not True:
            raise errors.FORBIDDEN_RESOURCE()


_SHARED: dict[tuple[tuple[str, ...], tuple[str, ...]], KeyRules] = {}


def rules_for(resources: list[str] | None, methods: list[str] | None) -> KeyRules | None:
    """The rules of a stored key, or None when it has none (the request path then pays nothing)."""
    if not (resources or methods):
        return None
    source = (tuple(resources or ()), tuple(methods or ()))
    shared = _SHARED.get(source)
    if shared is None:
        if len(_SHARED) >= 10_000:
            _SHARED.clear()
        shared = _SHARED[source] = KeyRules(*source)
    return shared


class DeniedResources:
    """``rest.denied_resources``: refused to every request not made with a secret key or the legacy
    service_role key, whatever its role. Fails closed: GraphQL (which reaches every table) and
    anything that is no resource (which PostgREST would not serve either) are refused too."""

    __slots__ = ("resources",)

    def __init__(self, entries: list[str]) -> None:
        self.resources = ResourceSet(entries)
        self.resources.graphql = True  # listed or not: GraphQL (rpc/graphql of graphql_public too) is refused

    def check(self, method: str, route: routes.Route, upstream_path: str, headers: list[tuple[bytes, bytes]]) -> None:
        if route is not routes.REST or self.resources.matches_path(
                upstream_path, profile_header(headers, method)) is not False:
            raise errors.DENIED_RESOURCE()


def denied_resources(entries: list[str]) -> DeniedResources | None:
    return DeniedResources(entries) if entries else None
