"""The public listener as a plain ASGI app: admit, authenticate, forward, record.

``admit`` settles what every request gets before any key is looked at (431, 400, 404, 403);
``Proxy.http`` and ``Proxy.websocket`` then read as a few early returns, each recording once.
Nothing here touches the database for a known key.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

from gateway import errors, observe, routes
from gateway.auth import NO_KEY, Authenticator, Grant
from gateway.clientip import ClientIp, limit_key, parse_networks
from gateway.config import Settings
from gateway.forward import RETRY_STATUS, Retry, forward, read_body, replayable, upstream_headers
from gateway.limits import Limiter, RateLimits
from gateway.origins import OriginSet
from gateway.realtime import frame_rewriter
from gateway.relay import connect, deny, relay
from gateway.request import MAX_HEADER_BYTES, MAX_HEADERS, RequestInfo, split_query
from gateway.responses import Headers, Receive, Scope, Send, cors_headers, preflight_headers, send_json, send_refusal
from gateway.routes import BadPath, Cors, Kind, Policy, QueryKey, Route, match, normalize
from gateway.services import Reads, Upstream, configured_upstreams, read_targets

log = logging.getLogger("gateway")

HEADERS_HINT = f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES // 1024} KiB in all."


@dataclass(slots=True)
class Admitted:
    path: str  # normalised: what the access log shows
    route: Route | None  # None: no route (404, except for preflights)
    upstream_path: str

    def routed(self) -> Route:
        if self.route is None:
            raise errors.NOT_FOUND()
        if self.route.kind is Kind.FORBIDDEN:
            raise errors.FORBIDDEN_ROUTE()
        return self.route


def admit(info: RequestInfo, raw_path: str) -> Admitted:
    """What holds before any key is looked at: header limits (431) and a safe path (400)."""
    if info.too_large:
        raise errors.HEADERS_TOO_LARGE(HEADERS_HINT)
    try:
        path = normalize(raw_path)
    except BadPath as e:
        raise errors.BAD_PATH(str(e)) from None
    found = match(path)
    return Admitted(path, None, "") if found is None else Admitted(path, found[0], found[1])


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
    """One request as the proxy handles it: what it is, what was decided, what it answered."""

    __slots__ = ("started", "method", "info", "path", "route", "grant", "status", "client_ip", "headers", "limited",
                 "upstream")

    def __init__(self, scope: Scope, method: str, status: int, client_ip: str) -> None:
        self.started = time.perf_counter()
        self.method = method
        self.info = RequestInfo(scope["headers"])
        self.path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        self.route: Route | None = None
        self.grant: Grant = NO_KEY
        self.status = status
        self.client_ip = client_ip
        self.headers: Headers = []  # the gateway adds these to the answer (RateLimit)
        self.limited: str | None = None  # the rate limit that refused it
        self.upstream: str | None = None  # the name of the upstream that served it

    def admit(self) -> Admitted:
        admitted = admit(self.info, self.path)
        self.path, self.route = admitted.path, admitted.route
        return admitted


def _server_port(scope: Scope) -> bytes | None:
    server = scope.get("server")
    return None if not server or server[1] is None else _PORTS.get(server[1]) or _port_bytes(server[1])


_PORTS: dict[int, bytes] = {}


def _port_bytes(port: int) -> bytes:
    _PORTS[port] = value = str(port).encode()
    return value


class Proxy:
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

    async def start(self) -> None:
        self.upstreams = configured_upstreams(self.settings)
        self.reads = read_targets(self.settings, self.upstreams.get("rest"))

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()
        for upstream in self.reads.targets[1:] if self.reads else ():
            await upstream.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    # --- the shared steps ----------------------------------------------------------------------

    def _policy(self, route: Route, upstream_path: str) -> Policy:
        """The route's policy; with functions.verify = "required", a function not named in
        functions.open needs a key or a user JWT (its name: the first segment, normalised)."""
        if route.service == "functions" and self.functions_required:
            if upstream_path.split("/", 2)[1] not in self.settings.functions.open:
                return Policy.KEY_OR_USER
        return route.policy

    async def _authorize(self, scope: Scope, info: RequestInfo, route: Route,
                         upstream_path: str) -> tuple[Grant, bytes]:
        """The grant, and the query string without the key (read once, used for the target)."""
        info.query_keys, query = split_query(scope.get("query_string", b""))
        grant = await self.auth.check(self._policy(route, upstream_path), info)
        if route.query_key is QueryKey.REPLACE and info.query_keys and grant.token is not None:
            token = grant.token.encode()
            query = query + b"&apikey=" + token if query else b"apikey=" + token
        return grant, query

    def _upstream(self, route: Route) -> Upstream:
        """The route's upstream; 503 when it is not configured."""
        upstream = self.upstreams.get(route.upstream)
        if upstream is None:
            raise errors.UPSTREAM_NOT_CONFIGURED(f"Set upstreams.{route.upstream} to enable {route.prefix}.")
        return upstream

    def _exchange(self, scope: Scope, method: str, status: int) -> Exchange:
        client = scope.get("client")
        x = Exchange(scope, method, status, client[0] if client else "")
        if x.info.xff is not None:
            x.client_ip = self.client_ips.resolve(x.client_ip, x.info.xff)
        return x

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

    def _extra(self, x: Exchange) -> Headers:
        """What the gateway adds to any answer: CORS for a request with Origin, RateLimit."""
        info = x.info
        if info.origin is None:
            return x.headers
        cors = cors_headers(info.origin, x.route.cors if x.route is not None else Cors.ANY, self.meta_origins)
        return cors + x.headers if x.headers else cors

    def _record(self, x: Exchange) -> None:
        entry = x.grant.entry
        observe.record(x.method, x.path, x.route.service if x.route is not None else "gateway", x.status, x.started,
                       x.grant.role, entry.id if entry else None, entry.prefix if entry else None, self.log_access,
                       x.limited, x.upstream)

    async def _prepare(self, x: Exchange, scope: Scope, admitted: Admitted, ws: bool) -> Plan:
        """Decide on a routed request: its grant, restrictions and limits, then where it goes and
        with which headers."""
        route = admitted.routed()
        x.route = route
        if route.kind is not Kind.PROXY:
            raise errors.NOT_FOUND()
        x.grant, query = await self._authorize(scope, x.info, route, admitted.upstream_path)
        entry = x.grant.entry
        if entry is not None and entry.restrictions is not None:
            entry.restrictions.check(x.info.origin, x.info.referer, x.client_ip, route.service)
        self._limit(x)
        upstream = self._upstream(route)
        https = scope.get("scheme") in ("https", "wss")
        headers = upstream_headers(scope["headers"], x.info, route, x.grant, upstream.host, x.client_ip.encode(),
                                   https, ws, _server_port(scope))
        return Plan(upstream, admitted.upstream_path + ("?" + query.decode("latin-1") if query else ""), headers)

    async def _send(self, x: Exchange, send: Send, receive: Receive, plan: Plan) -> int:
        """Forward to the route's upstream, or for a read with replicas to the primary or a
        replica, trying another when the first fails before answering."""
        route = x.route
        body = await read_body(receive)
        extra = self._extra(x)
        if self.reads is None or x.method not in route.replica_methods:  # type: ignore[union-attr]
            x.upstream = plan.upstream.name
            return await forward(send, receive, plan.upstream.pool, x.method, plan.upstream.base_path + plan.target,
                                 plan.headers, extra, route.upstream, body)  # type: ignore[union-attr]
        reads = self.reads
        attempts = reads.pick() if replayable(body) else reads.pick()[:1]
        for i, upstream in enumerate(attempts):
            x.upstream = upstream.name
            last = i == len(attempts) - 1
            try:
                status = await forward(send, receive, upstream.pool, x.method, upstream.base_path + plan.target,
                                       plan.for_upstream(upstream), extra, route.upstream, body,  # type: ignore
                                       retryable=not last)
            except Retry:
                reads.failed(upstream)
                continue
            except errors.Refusal as r:
                if r.status in (502, 504):
                    reads.failed(upstream)
                raise
            if status in RETRY_STATUS:
                reads.failed(upstream)
            else:
                reads.served(upstream)
            return status
        raise AssertionError("unreachable: the last attempt never raises Retry")

    # --- HTTP ----------------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        x = self._exchange(scope, scope["method"], 500)
        try:
            admitted = x.admit()
            if x.method == "OPTIONS" and x.info.preflight:
                x.status = 200
                cors = admitted.route.cors if admitted.route is not None else Cors.ANY
                headers = preflight_headers(x.info.origin, x.info.acr_headers, cors, self.meta_origins)  # type: ignore[arg-type]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            if admitted.route is routes.HEALTH:
                x.status = 200
                await send_json(send, 200, {"status": "ok"}, self._extra(x))
                return
            plan = await self._prepare(x, scope, admitted, ws=False)
            x.status = await self._send(x, send, receive, plan)
        except errors.Refusal as r:
            x.status = r.status
            await send_refusal(send, r, self._extra(x))
        except Exception as e:
            x.status = 500
            _log_unexpected(e)
            try:  # fails if the response had begun: the connection is cut
                await send_refusal(send, errors.INTERNAL_ERROR())
            except Exception:
                pass
        finally:
            self._record(x)

    # --- WebSocket -----------------------------------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        x = self._exchange(scope, "WEBSOCKET", 101)
        try:
            plan = await self._prepare(x, scope, x.admit(), ws=True)
            upstream = plan.upstream
            x.upstream = upstream.name
            socket = await connect(upstream, upstream.base_path + plan.target, plan.headers, x.info.ws_protocols,
                                   self.settings.upstreams.connect_timeout)
            observe.WEBSOCKETS.labels(upstream.name, "open").inc()
            await send({"type": "websocket.accept", "subprotocol": socket.protocol})
            await relay(receive, send, socket, frame_rewriter(x.route, x.grant, self.auth,
                                                              self.settings.realtime.max_key_only_seconds))
        except errors.Refusal as r:
            x.status = r.status
            await deny(scope, send, r)
        except Exception as e:
            x.status = 500
            _log_unexpected(e)
            try:
                await send({"type": "websocket.close", "code": 1011})
            except Exception:
                pass
        finally:
            self._record(x)


def _log_unexpected(e: BaseException) -> None:
    """A bug or an unforeseen failure: where it happened, never its message (which may quote a
    URL with the minted JWT in it, or a header)."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    log.error("unexpected %s while proxying; traceback (message withheld):\n%s", type(e).__name__, frames)
