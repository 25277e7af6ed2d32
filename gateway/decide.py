"""Every decision of the public listener, in one place for both ways it is served: the ASGI app
(gateway.serve.asgi) and the fast path of the listener's own protocol (gateway.serve.fastpath).

A request is an ``Exchange``. ``Gateway.route`` admits it (431, 400, 404, 403) and answers what
the gateway answers itself (preflights, ``/health``); ``grant_now`` decides on its key from
memory or says which lookup it needs (``grant`` does it); ``plan`` applies restrictions and rate
limits and says where it goes, with which headers; ``record`` writes the access log line and
the metrics, once.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass

from gateway import errors, observe, routes
from gateway.auth import NO_KEY, Authenticator, Grant, Need
from gateway.config import Settings
from gateway.headers import upstream_headers
from gateway.request import MAX_HEADER_BYTES, MAX_HEADERS, RequestInfo, split_query
from gateway.responses import JSON, Headers, cors_headers, error_headers, preflight_headers
from gateway.routes import BadPath, Cors, Kind, Policy, QueryKey, Route, match, normalize
from gateway.rules.clientip import ClientIp, limit_key, parse_networks
from gateway.rules.keyrules import denied_resources
from gateway.rules.limits import Limiter, RateLimits
from gateway.rules.origins import OriginSet
from gateway.rules.quota import Quotas
from gateway.upstream.services import Reads, Upstream, configured_upstreams, read_targets

log = logging.getLogger("gateway")

HEADERS_HINT = f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES // 1024} KiB in all."
HEALTH_BODY = json.dumps({"status": "ok"}).encode()


@dataclass(slots=True)
class Answer:
    """What the gateway answers itself."""

    status: int
    headers: Headers
    body: bytes


@dataclass(slots=True)
class Plan:
    """Where a decided request goes: its upstream, the target below the upstream's base path,
    and the headers it gets (``host`` first)."""

    upstream: Upstream
    target: str
    headers: Headers

    def for_upstream(self, other: Upstream) -> Headers:
        return self.headers if other is self.upstream else [(b"host", other.host), *self.headers[1:]]


class Exchange:
    """One request as the gateway handles it: what it is, what was decided, what it answered."""

    __slots__ = ("started", "method", "info", "path", "query", "headers_in", "https", "port", "route",
                 "upstream_path", "grant", "status", "client_ip", "headers", "limited", "upstream")

    def __init__(self, method: str, raw_path: str, query: bytes, headers: Headers, client_ip: str, https: bool,
                 port: bytes | None, status: int) -> None:
        self.started = time.perf_counter()
        self.method = method
        self.headers_in = headers
        self.info = RequestInfo(headers)
        self.path = raw_path  # normalised once admitted: what the access log shows
        self.query = query
        self.https = https
        self.port = port  # the listener's, for X-Forwarded-Port
        self.route: Route | None = None
        self.upstream_path = ""
        self.grant: Grant = NO_KEY
        self.status = status
        self.client_ip = client_ip
        self.headers: Headers = []  # the gateway adds these to the answer (RateLimit)
        self.limited: str | None = None  # the rate limit that refused it
        self.upstream: str | None = None  # the name of the upstream that served it


def admit(x: Exchange) -> None:
    """What holds before any key is looked at: header limits (431) and a safe path (400)."""
    if x.info.too_large:
        raise errors.HEADERS_TOO_LARGE(HEADERS_HINT)
    try:
        x.path = normalize(x.path)
    except BadPath as e:
        raise errors.BAD_PATH(str(e)) from None
    found = match(x.path)
    if found is not None:
        x.route, x.upstream_path = found


_PORTS: dict[int, bytes] = {}


def listener_port(server: tuple[str, int | None] | None) -> bytes | None:
    """The port a request came in on, for ``X-Forwarded-Port`` (ASGI's ``server``), as bytes."""
    if not server or server[1] is None:
        return None
    port = _PORTS.get(server[1])
    if port is None:
        port = _PORTS[server[1]] = str(server[1]).encode()
    return port


class Gateway:
    def __init__(self, settings: Settings, auth: Authenticator, limiter: Limiter | None = None) -> None:
        self.settings = settings
        self.auth = auth
        self.limiter = limiter or Limiter()
        self.rate_limits = RateLimits.from_settings(settings)
        self.client_ips = ClientIp(parse_networks(settings.server.trusted_proxies))
        self.meta_origins = OriginSet.parse(settings.cors.meta_origins)
        self.upstreams: dict[str, Upstream] = {}
        self.reads: Reads | None = None  # PostgREST's read replicas with the primary
        self.functions_required = settings.functions.verify == "required"
        self.log_access = settings.log.access
        self.denied = denied_resources(settings.rest.denied_resources)  # None: no list
        self.quotas = Quotas()  # counts written and read by gateway.rules.quotastore

    async def start(self) -> None:
        self.upstreams = configured_upstreams(self.settings)
        self.reads = read_targets(self.settings, self.upstreams.get("rest"))

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()
        for upstream in self.reads.targets[1:] if self.reads else ():
            await upstream.close()

    def exchange(self, method: str, raw_path: str, query: bytes, headers: Headers, peer: str, https: bool,
                 port: bytes | None, status: int) -> Exchange:
        x = Exchange(method, raw_path, query, headers, peer, https, port, status)
        x.client_ip = self.client_ips.resolve(peer, x.info.xff)
        return x

    # --- the steps, in order --------------------------------------------------------------------

    def route(self, x: Exchange, ws: bool = False) -> Answer | None:
        """Admit the request and find its route; the gateway's own answer if it has one."""
        admit(x)
        if not ws and x.method == "OPTIONS" and x.info.preflight:
            x.status = 200
            cors = x.route.cors if x.route is not None else Cors.ANY
            return Answer(200, preflight_headers(x.info.origin, x.info.acr_headers, cors, self.meta_origins), b"")  # type: ignore[arg-type]
        if x.route is None:
            raise errors.NOT_FOUND()
        if x.route.kind is Kind.FORBIDDEN:
            raise errors.FORBIDDEN_ROUTE()
        if x.route is routes.HEALTH:
            if ws:
                raise errors.NOT_FOUND()
            x.status = 200
            return Answer(200, [(b"content-type", JSON), (b"content-length", b"%d" % len(HEALTH_BODY)),
                                *self.extra(x)], HEALTH_BODY)
        x.info.query_keys, x.query = split_query(x.query)  # read once: the key, and the target without it
        return None

    def grant_now(self, x: Exchange) -> Grant | Need:
        """The decision on the request's key from memory, or the lookup it needs first."""
        return self.auth.decide(self.policy(x.route, x.upstream_path), x.info)  # type: ignore[arg-type]

    async def grant(self, x: Exchange) -> Grant:
        """``grant_now`` with the lookups done (a key not in memory, a user JWT not seen yet)."""
        return await self.auth.check(self.policy(x.route, x.upstream_path), x.info)  # type: ignore[arg-type]

    def policy(self, route: Route, upstream_path: str) -> Policy:
        """The route's policy; with functions.verify = "required", a function not named in
        functions.open needs a key or a user JWT (its name: the first segment, normalised)."""
        if route.service == "functions" and self.functions_required:
            if upstream_path.split("/", 2)[1] not in self.settings.functions.open:
                return Policy.KEY_OR_USER
        return route.policy

    def plan(self, x: Exchange, grant: Grant, ws: bool = False) -> Plan:
        """Restrictions and rate limits on the granted request, then where it goes, with which headers."""
        x.grant = grant
        route: Route = x.route  # type: ignore[assignment]
        entry = grant.entry
        if entry is not None and entry.restrictions is not None:
            entry.restrictions.check(x.info.origin, x.info.referer, x.client_ip, route.service)
        if entry is not None and entry.rules is not None:  # resources and methods (gateway.rules.keyrules)
            entry.rules.check("GET" if ws else x.method, route, x.upstream_path, x.headers_in)
        if self.denied is not None and route.upstream == "rest" and (entry is None or not entry.is_secret):
            self.denied.check(x.method, route, x.upstream_path, x.headers_in)
        self._limit(x)
        if entry is not None and entry.quota is not None:
            self.quotas.admit(x, entry)
        query = x.query
        if route.query_key is QueryKey.REPLACE and x.info.query_keys and grant.token is not None:
            token = grant.token.encode()
            query = query + b"&apikey=" + token if query else b"apikey=" + token
        upstream = self.upstreams.get(route.upstream)
        if upstream is None:
            raise errors.UPSTREAM_NOT_CONFIGURED(f"Set upstreams.{route.upstream} to enable {route.prefix}.")
        headers = upstream_headers(x.headers_in, x.info, route, grant, upstream.host, x.client_ip.encode(), x.https,
                                   ws, x.port)
        return Plan(upstream, x.upstream_path + ("?" + query.decode("latin-1") if query else ""), headers)

    def _limit(self, x: Exchange) -> None:
        """Count the request against its rate limits (from memory), or refuse it with 429."""
        scopes = self.rate_limits.scopes(x.grant.entry, x.grant.claims, limit_key(x.client_ip))
        if not scopes:
            return
        outcome = self.limiter.admit(scopes)
        if outcome.refused is not None:
            x.limited = outcome.refused
            raise outcome.refusal()
        x.headers = outcome.headers()

    def reads_for(self, x: Exchange) -> Reads | None:
        """The read targets a request may go to (primary and replicas), or None."""
        if self.reads is None or x.method not in x.route.replica_methods:  # type: ignore[union-attr]
            return None
        return self.reads

    # --- answers and records --------------------------------------------------------------------

    def extra(self, x: Exchange) -> Headers:
        """What the gateway adds to any answer: CORS for a request with Origin, RateLimit."""
        info = x.info
        if info.origin is None:
            return x.headers
        cors = cors_headers(info.origin, x.route.cors if x.route is not None else Cors.ANY, self.meta_origins)
        return cors + x.headers if x.headers else cors

    def refusal(self, x: Exchange, r: errors.Refusal) -> Answer:
        x.status = r.status
        return Answer(r.status, error_headers(r, self.extra(x)), r.body)

    def record(self, x: Exchange) -> None:
        entry = x.grant.entry
        observe.record(x.method, x.path, x.route.service if x.route is not None else "gateway", x.status, x.started,
                       x.grant.role, entry.id if entry else None, entry.prefix if entry else None, self.log_access,
                       x.limited, x.upstream)


def log_unexpected(e: BaseException) -> None:
    """A bug or an unforeseen failure: where it happened, never its message (which may quote a
    URL with the minted JWT in it, or a header)."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    log.error("unexpected %s while proxying; traceback (message withheld):\n%s", type(e).__name__, frames)
