"""The public listener: a plain ASGI app that routes, authenticates and forwards.

HTTP is streamed both ways through one keep-alive pool per service (gateway.upstream);
WebSockets are relayed frame by frame with aiohttp. Nothing here touches the database for a
known key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from typing import Any, AsyncIterator
from urllib.parse import unquote_plus, urlsplit

import aiohttp
from yarl import URL

from gateway import observe
from gateway.auth import BAD_AUTHORIZATION, Authenticator, Grant, Refusal
from gateway.browser import sec_fetch_signal
from gateway.config import Settings
from gateway.responses import (
    OriginPolicy, Send, cors_headers, preflight_headers, send_error, send_json,
)
from gateway.realtime import frame_rewriter
from gateway.routes import BadPath, Policy, Route, match, normalize
from gateway.upstream import Pool, UpstreamError, UpstreamTimeout

log = logging.getLogger("gateway")

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
SMALL_BODY = 64 * 1024

# Connection-level headers (RFC 9110 7.6.1) and the ones we set ourselves.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
REPLACED = frozenset({
    b"host", b"apikey", b"sb-api-key", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
    b"x-forwarded-port", b"x-forwarded-prefix",
    b"expect",  # bodies are streamed as they come: no 100-continue dance
})
WS_HANDSHAKE = frozenset({b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
                          b"sec-websocket-protocol"})
# The gateway owns CORS; uvicorn adds its own Date (as nginx does, the upstream's is dropped).
RESPONSE_DROP = HOP_BY_HOP | {b"access-control-allow-origin", b"access-control-expose-headers",
                              b"access-control-allow-credentials", b"date"}
SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class RequestInfo:
    """One pass over the request headers: what the gateway needs to know."""

    __slots__ = ("apikeys", "authorization", "authorizations", "user_agent", "sec_fetch", "origin", "acr_method", "acr_headers",
                 "host", "xff", "connection", "ws_protocols", "total")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.apikeys: list[str] = []
        self.authorization: str | None = None
        self.authorizations = 0
        self.user_agent: str | None = None
        sec_fetch: list[bytes] = []
        self.origin: bytes | None = None
        self.acr_method: bytes | None = None
        self.acr_headers: bytes | None = None
        self.host: bytes | None = None
        self.xff: bytes | None = None
        self.connection: frozenset[bytes] = frozenset()
        self.ws_protocols: list[str] = []
        total = 0
        for name, value in headers:
            total += len(name) + len(value) + 4
            if name == b"apikey":
                self.apikeys.append(value.decode("latin-1").strip())
            elif name == b"authorization":
                self.authorization = value.decode("latin-1").strip()
                self.authorizations += 1
            elif name == b"user-agent":
                self.user_agent = value.decode("latin-1")
            elif name.startswith(b"sec-fetch-"):
                sec_fetch.append(name)
            elif name == b"origin":
                self.origin = value
            elif name == b"host":
                self.host = value
            elif name == b"x-forwarded-for":
                self.xff = value if self.xff is None else self.xff + b", " + value
            elif name == b"connection":
                self.connection = frozenset(t.strip().lower() for t in value.split(b","))
            elif name == b"access-control-request-method":
                self.acr_method = value
            elif name == b"access-control-request-headers":
                self.acr_headers = value
            elif name == b"sec-websocket-protocol":
                self.ws_protocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
        self.total = total
        self.sec_fetch = sec_fetch_signal(sec_fetch, self.user_agent)


def split_query(query: bytes) -> tuple[list[str], bytes]:
    """The ``apikey`` values of a query string, and the query without them. Other parameters
    keep their bytes."""
    if b"apikey" not in query.lower() and b"%" not in query:
        return [], query
    keys: list[str] = []
    kept: list[bytes] = []
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "apikey":
            keys.append(unquote_plus(value.decode("latin-1")).strip())
        else:
            kept.append(part)
    return keys, b"&".join(kept)


class Proxy:
    def __init__(self, settings: Settings, auth: Authenticator) -> None:
        self.settings = settings
        self.auth = auth
        self.origins = OriginPolicy(settings.cors.meta_origins)
        self.pools: dict[str, Pool] = {}
        self.upstream_host: dict[str, bytes] = {}  # Host header per service
        self.upstream_path: dict[str, str] = {}  # path prefix of the base URL per service
        self.ws_origin: dict[str, str] = {}  # ws://host:port per service
        self.sessions: dict[str, aiohttp.ClientSession] = {}  # WebSockets only
        self.bases: dict[str, str | None] = {
            s: settings.upstreams.base(s) for s in ("rest", "realtime", "functions", "auth", "storage", "meta")
        }
        self.log_access = settings.log.access

    async def start(self) -> None:
        up = self.settings.upstreams
        for service, base in self.bases.items():
            if base is None:
                continue
            url = urlsplit(base)
            tls = url.scheme == "https"
            self.pools[service] = Pool(url.hostname or "localhost", url.port or (443 if tls else 80),
                                       connect_timeout=up.connect_timeout, read_timeout=up.timeout_for(service),
                                       tls=tls)
            host = up.realtime_host if service == "realtime" else url.netloc
            self.upstream_host[service] = host.encode("latin-1")
            self.upstream_path[service] = url.path.rstrip("/")
            self.ws_origin[service] = ("wss://" if tls else "ws://") + url.netloc
            self.sessions[service] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60), auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, skip_auto_headers=SKIP_AUTO,
                timeout=aiohttp.ClientTimeout(total=None, connect=up.connect_timeout),
            )

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()
        for session in self.sessions.values():
            await session.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    # --- HTTP --------------------------------------------------------------------------------

    async def http(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        info = RequestInfo(scope["headers"])
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        route: Route | None = None
        grant: Grant | None = None
        status = 500
        try:
            if len(scope["headers"]) > MAX_HEADERS or info.total > MAX_HEADER_BYTES:
                raise Refusal(431, "REQUEST_HEADERS_TOO_LARGE", "Request header fields too large",
                              f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES // 1024} KiB in all.")
            try:
                path = normalize(raw_path)
            except BadPath as e:
                raise Refusal(400, "BAD_PATH", "Invalid request path", str(e)) from None
            raw_path = path
            route = match(path)

            if method == "OPTIONS" and info.origin is not None and info.acr_method is not None:
                headers = preflight_headers(info.origin, info.acr_headers, route is not None and route.meta_cors,
                                            self.origins)
                status = 200
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            if route is None:
                raise Refusal(404, "NOT_FOUND", "no Route matched with those values")
            if route.policy is Policy.HEALTH:
                status = 200
                await send_json(send, 200, {"status": "ok"}, self._cors(info, route))
                return
            if route.policy is Policy.FORBIDDEN:
                raise Refusal(403, "FORBIDDEN_ROUTE", "Access is forbidden.")

            grant, query = await self._check(scope, info, route)
            status = await self._forward(scope, receive, send, info, route, grant, query)
        except Refusal as r:
            status = r.status
            await send_error(send, r.status, r.code, r.message, r.hint,
                             self._cors(info, route) if route else cors_headers(info.origin, False, self.origins))
        except Exception as e:
            status = 500
            _log_unexpected(e)
            with contextlib.suppress(Exception):  # fails if the response had begun: the connection is cut
                await send_error(send, 500, "INTERNAL_ERROR", "Internal gateway error")
        finally:
            entry = grant.entry if grant else None
            observe.record(method, raw_path, route.service if route else None, status, started,
                           grant.role if grant else "none", entry.id if entry else None,
                           entry.prefix if entry else None, self.log_access)

    async def _check(self, scope: dict[str, Any], info: RequestInfo, route: Route) -> tuple[Grant, bytes]:
        """The grant, and the query string without the key (read once, used for the target)."""
        if info.authorizations > 1:
            raise BAD_AUTHORIZATION  # which one would the upstream read? Not ours to guess.
        query_keys, query = split_query(scope.get("query_string", b""))
        # Open auth paths need no key, but one that is sent (supabase-js sends its key everywhere)
        # is checked and translated like on functions and storage: its plaintext never goes on.
        policy = Policy.OPTIONAL if route.policy is Policy.OPEN else route.policy
        grant = await self.auth.check(policy, info.apikeys, query_keys, info.authorization, info.user_agent,
                                      info.sec_fetch)
        if route.realtime and query_keys and grant.token is not None:  # Realtime reads its JWT there
            query = query + b"&apikey=" + grant.token.encode() if query else b"apikey=" + grant.token.encode()
        return grant, query

    def _cors(self, info: RequestInfo, route: Route | None) -> list[tuple[bytes, bytes]]:
        return cors_headers(info.origin, route is not None and route.meta_cors, self.origins)

    def _target(self, route: Route, query: bytes) -> str:
        """The upstream request target: base path, rewritten path, query without the key."""
        if self.bases[route.service] is None:  # type: ignore[index]
            raise Refusal(503, "UPSTREAM_NOT_CONFIGURED", "Service not configured",
                          f"Set upstreams.{route.service} to enable {route.prefix}.")
        target = self.upstream_path[route.service] + route.upstream_path  # type: ignore[index]
        return target + "?" + query.decode("latin-1") if query else target

    def _upstream_headers(self, scope: dict[str, Any], info: RequestInfo, route: Route, grant: Grant,
                          ws: bool = False) -> list[tuple[bytes, bytes]]:
        drop_authorization = grant.authorization is not None
        out = [(b"host", self.upstream_host[route.service])]  # type: ignore[index]
        for name, value in scope["headers"]:
            if name in HOP_BY_HOP or name in REPLACED or name in info.connection:
                continue
            if (name == b"authorization" and drop_authorization) or (route.realtime and name == b"x-api-key"):
                continue
            if ws and name in WS_HANDSHAKE:
                continue
            if route.extra_headers and any(name == n for n, _ in route.extra_headers):
                continue  # the route sets it
            out.append((name, value))
        if grant.token is not None:
            token = grant.token.encode()
            out.append((b"apikey", token))
            if route.realtime:
                out.append((b"x-api-key", token))
            if route.functions:
                out.append((b"sb-api-key", token))
        if grant.authorization is not None:
            out.append((b"authorization", grant.authorization.encode("latin-1")))
        out.extend(route.extra_headers)
        client = scope.get("client")
        client_ip = client[0].encode() if client else b""
        out.append((b"x-forwarded-for", info.xff + b", " + client_ip if info.xff else client_ip))
        out.append((b"x-forwarded-proto", b"https" if scope.get("scheme") in ("https", "wss") else b"http"))
        if info.host is not None:
            out.append((b"x-forwarded-host", info.host))
        server = scope.get("server")
        if server and server[1] is not None:
            out.append((b"x-forwarded-port", _port_bytes(server[1])))  # the listener's, as Envoy and Kong send
        out.append((b"x-forwarded-prefix", route.prefix.encode()))
        return out

    async def _forward(self, scope: dict[str, Any], receive: Any, send: Send, info: RequestInfo, route: Route,
                       grant: Grant, query: bytes) -> int:
        target = self._target(route, query)
        pool = self.pools[route.service]  # type: ignore[index]
        headers = self._upstream_headers(scope, info, route, grant)
        body = await _request_body(receive)
        data = body.data if isinstance(body, _BodyStream) else body
        try:
            resp = await pool.request(scope["method"], target, headers, data)
        except UpstreamTimeout:
            raise Refusal(504, "UPSTREAM_TIMEOUT", "Upstream timed out",
                          f"The {route.service} service did not answer in time.") from None
        except UpstreamError:
            raise Refusal(502, "UPSTREAM_UNAVAILABLE", "Upstream unreachable",
                          f"The {route.service} service could not be reached.") from None
        try:
            headers_out = [(k, v) for k, v in resp.headers if k not in RESPONSE_DROP]
            if info.origin is not None:
                headers_out += self._cors(info, route)
            length = resp.content_length
            if length is not None and length <= SMALL_BODY:
                payload = await resp.read()
                await send({"type": "http.response.start", "status": resp.status, "headers": headers_out})
                await send({"type": "http.response.body", "body": payload})
                return resp.status
            await send({"type": "http.response.start", "status": resp.status, "headers": headers_out})
            # uvicorn drops what we send once the client has gone, without telling us: watch for
            # the disconnect (once the request body is all read) and stop pulling from upstream.
            gone = None
            if not isinstance(body, _BodyStream) or body.complete:
                gone = asyncio.ensure_future(_disconnected(receive))
            try:
                async for chunk in resp.stream():
                    if gone is not None and gone.done():
                        return resp.status  # release() closes the half-read connection
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                if gone is not None:
                    gone.cancel()
            await send({"type": "http.response.body", "body": b""})
            return resp.status
        except UpstreamError:
            # The response had begun: all we can do is cut the connection short.
            log.warning("upstream %s broke off a response", route.service)
            return resp.status
        finally:
            resp.release()

    # --- WebSocket ---------------------------------------------------------------------------

    async def websocket(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        started = time.perf_counter()
        info = RequestInfo(scope["headers"])
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        route: Route | None = None
        grant: Grant | None = None
        status = 101
        try:
            if len(scope["headers"]) > MAX_HEADERS or info.total > MAX_HEADER_BYTES:
                raise Refusal(431, "REQUEST_HEADERS_TOO_LARGE", "Request header fields too large",
                              f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES // 1024} KiB in all.")
            try:
                path = normalize(raw_path)
            except BadPath as e:
                raise Refusal(400, "BAD_PATH", "Invalid request path", str(e)) from None
            raw_path = path
            route = match(path)
            if route is not None and route.policy is Policy.FORBIDDEN:
                raise Refusal(403, "FORBIDDEN_ROUTE", "Access is forbidden.")
            if route is None or route.service is None:
                raise Refusal(404, "NOT_FOUND", "no Route matched with those values")
            grant, query = await self._check(scope, info, route)
            target = self._target(route, query)  # 503 when the service is not configured
            url = URL(self.ws_origin[route.service] + target, encoded=True)
            headers = [(k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in self._upstream_headers(scope, info, route, grant, ws=True)]
            session = self.sessions[route.service]
            try:
                upstream = await session.ws_connect(
                    url, headers=headers, protocols=info.ws_protocols, autoclose=False, autoping=True,
                    max_msg_size=0, compress=0, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
                )
            except aiohttp.WSServerHandshakeError as e:
                raise Refusal(502, "UPSTREAM_UNAVAILABLE", "Upstream refused the WebSocket",
                              f"The {route.service} service answered {e.status}.") from None
            except asyncio.TimeoutError:
                raise Refusal(504, "UPSTREAM_TIMEOUT", "Upstream timed out") from None
            except (aiohttp.ClientError, OSError):
                raise Refusal(502, "UPSTREAM_UNAVAILABLE", "Upstream unreachable",
                              f"The {route.service} service could not be reached.") from None
            observe.WEBSOCKETS.labels(route.service, "open").inc()
            await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
            await _relay(receive, send, upstream, frame_rewriter(route, grant, self.auth))
        except Refusal as r:
            status = r.status
            await _deny(scope, send, r)
        except Exception as e:
            status = 500
            _log_unexpected(e)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1011})
        finally:
            entry = grant.entry if grant else None
            observe.record("WEBSOCKET", raw_path, route.service if route else None, status, started,
                           grant.role if grant else "none", entry.id if entry else None,
                           entry.prefix if entry else None, self.log_access)


@functools.lru_cache(maxsize=8)
def _port_bytes(port: int) -> bytes:
    return str(port).encode()


def _log_unexpected(e: BaseException) -> None:
    """A bug or an unforeseen failure: where it happened, never its message (which may quote a
    URL with the minted JWT in it, or a header)."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    log.error("unexpected %s while proxying; traceback (message withheld):\n%s", type(e).__name__, frames)


class _BodyStream:
    """A request body passed on chunk by chunk as it arrives (never buffered whole)."""

    __slots__ = ("receive", "first", "complete", "data")

    def __init__(self, receive: Any, first: bytes) -> None:
        self.receive = receive
        self.first = first
        self.complete = False
        self.data = self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        while True:
            m = await self.receive()
            if m["type"] == "http.disconnect":
                raise Refusal(499, "CLIENT_CLOSED_REQUEST", "Client closed request")
            chunk = m.get("body", b"")
            if chunk:
                yield chunk
            if not m.get("more_body", False):
                self.complete = True
                return


async def _request_body(receive: Any) -> bytes | _BodyStream | None:
    """The body as bytes when it came in one piece, else a stream."""
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise Refusal(499, "CLIENT_CLOSED_REQUEST", "Client closed request")
    first = msg.get("body", b"")
    if not msg.get("more_body", False):
        return first or None
    return _BodyStream(receive, first)


async def _disconnected(receive: Any) -> None:
    """Returns once the client has gone (call only after the request body was read whole)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _deny(scope: dict[str, Any], send: Send, r: Refusal) -> None:
    """Refuse a WebSocket handshake with an HTTP answer where the server supports it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        from gateway.responses import error_body

        body = error_body(r.message, r.hint)
        await send({"type": "websocket.http.response.start", "status": r.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"sb-error-code", r.code.encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


# Close codes that may not be sent in a close frame (RFC 6455 7.4.1), and what we send instead.
_UNSENDABLE = {1005: 1000, 1006: 1001, 1015: 1011}


def _sendable(code: int | None) -> int:
    if not code:
        return 1000
    return _UNSENDABLE.get(code, code)


async def _relay(receive: Any, send: Send, upstream: aiohttp.ClientWebSocketResponse,
                 rewrite: Any = None) -> None:
    """Frames both ways until either side closes; the close code and reason cross over."""

    async def client_to_upstream() -> tuple[str, int, str]:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.receive":
                if msg.get("text") is not None:
                    await upstream.send_str(rewrite(msg["text"]) if rewrite else msg["text"])
                elif msg.get("bytes") is not None:
                    await upstream.send_bytes(msg["bytes"])
            elif msg["type"] == "websocket.disconnect":
                return "client", msg.get("code") or 1000, msg.get("reason") or ""

    async def upstream_to_client() -> tuple[str, int, str]:
        # Not ``async for``: aiohttp ends that iteration on CLOSE and hides the reason.
        while True:
            msg = await upstream.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                return "upstream", msg.data, msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            else:  # CLOSING, CLOSED, ERROR: the connection broke
                return "upstream", upstream.close_code or 1011, ""

    tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
    # Realtime channels joined with the key get fresh JWTs pushed (see gateway.realtime).
    refresher = asyncio.ensure_future(rewrite.keep_fresh(upstream.send_str)) if rewrite is not None else None
    side, code, reason = "error", 1011, ""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finished = done.pop()
        if not finished.cancelled() and finished.exception() is None:
            side, code, reason = finished.result()
    finally:
        if refresher is not None:
            tasks.append(refresher)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        code = _sendable(code)
        if side != "client":
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": reason})
        if not upstream.closed:
            with contextlib.suppress(Exception):
                await upstream.close(code=code, message=reason.encode()[:123])
