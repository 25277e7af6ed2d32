"""HTTP forwarding over ASGI: the headers an upstream gets (a pure function), request bodies
passed on as they arrive, responses streamed back unchanged."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from gateway import errors
from gateway.auth import Grant
from gateway.request import RequestInfo
from gateway.responses import Headers, Receive, Send
from gateway.routes import Route
from gateway.upstream import Pool, Response, UpstreamConnectError, UpstreamError, UpstreamTimeout

log = logging.getLogger("gateway")

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
# What a client's ``Connection`` header may never remove: headers the gateway owns or sets.
PROTECTED = frozenset({
    b"authorization", b"apikey", b"x-api-key", b"sb-api-key", b"content-length", b"transfer-encoding", b"host",
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix",
})
WS_HANDSHAKE = frozenset({b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
                          b"sec-websocket-protocol"})
# The gateway owns CORS; the server adds its own Date (as nginx does, the upstream's is dropped).
RESPONSE_DROP = HOP_BY_HOP | {b"access-control-allow-origin", b"access-control-expose-headers",
                              b"access-control-allow-credentials", b"date"}


def upstream_headers(headers: Headers, info: RequestInfo, route: Route, grant: Grant, host: bytes,
                     client_ip: bytes, https: bool, ws: bool = False, port: bytes | None = None) -> Headers:
    """The request headers an upstream gets: the client's, less hop-by-hop ones (and those its
    ``Connection`` names, unless ours) and those the gateway sets, plus the minted JWT."""
    nominated = info.connection - PROTECTED if info.connection else info.connection
    owned = route.owned_headers
    drop_authorization = grant.authorization is not None
    out = [(b"host", host)]
    for name, value in headers:
        if name in HOP_BY_HOP or name in REPLACED or name in owned or name in nominated:
            continue
        if (drop_authorization and name == b"authorization") or (ws and name in WS_HANDSHAKE):
            continue
        out.append((name, value))
    if grant.token is not None:
        token = grant.token.encode()
        out += [(name, token) for name in route.token_headers]
    if grant.authorization is not None:
        out.append((b"authorization", grant.authorization.encode("latin-1")))
    out += route.extra_headers
    out.append((b"x-forwarded-for", client_ip))  # the client as the gateway judged it (trusted proxies)
    out.append((b"x-forwarded-proto", b"https" if https else b"http"))
    if info.host is not None:
        out.append((b"x-forwarded-host", info.host))
    if port is not None:
        out.append((b"x-forwarded-port", port))  # the listener's, as Envoy and Kong send
    out.append((b"x-forwarded-prefix", route.prefix.encode()))
    return out


def response_headers(upstream: Headers, extra: Headers) -> Headers:
    """The upstream's answer headers, less hop-by-hop and CORS ones, plus the gateway's own."""
    out = [(k, v) for k, v in upstream if k not in RESPONSE_DROP]
    if extra:
        out += extra
    return out


class Retry(Exception):
    """The target failed before a byte of the answer reached the client: another may serve it."""


RETRY_STATUS = frozenset({502, 503})


async def forward(send: Send, receive: Receive, pool: Pool, method: str, target: str, headers: Headers,
                  extra: Headers, service: str, body: Body, retryable: bool = False) -> int:
    """Send the request upstream and stream its answer back; returns the status sent. With
    ``retryable``, a refused or timed-out connection and a 502/503 answer raise Retry instead."""
    data = body.data if isinstance(body, _BodyStream) else body
    try:
        resp = await pool.request(method, target, headers, data)
    except UpstreamConnectError as e:
        if retryable:
            raise Retry() from None
        if not isinstance(e, UpstreamTimeout):
            raise errors.UPSTREAM_UNAVAILABLE(f"The {service} service could not be reached.") from None
        raise errors.UPSTREAM_TIMEOUT(f"The {service} service did not answer in time.") from None
    except UpstreamTimeout:
        raise errors.UPSTREAM_TIMEOUT(f"The {service} service did not answer in time.") from None
    except UpstreamError:
        raise errors.UPSTREAM_UNAVAILABLE(f"The {service} service could not be reached.") from None
    if retryable and resp.status in RETRY_STATUS:
        resp.release()
        raise Retry()
    try:
        headers_out = response_headers(resp.headers, extra)
        length = resp.content_length
        if length is not None and length <= SMALL_BODY:
            payload = await resp.read()
            await send({"type": "http.response.start", "status": resp.status, "headers": headers_out})
            await send({"type": "http.response.body", "body": payload})
            return resp.status
        await send({"type": "http.response.start", "status": resp.status, "headers": headers_out})
        await _stream(send, receive, resp, watch=not isinstance(body, _BodyStream) or body.complete)
        return resp.status
    except UpstreamError:
        # The response had begun: all we can do is cut the connection short.
        log.warning("upstream %s broke off a response", service)
        return resp.status
    finally:
        resp.release()


async def _stream(send: Send, receive: Receive, resp: Response, watch: bool) -> None:
    # The server drops what we send once the client has gone, without telling us: watch for
    # the disconnect (possible once the request body is all read) and stop pulling from upstream.
    gone = asyncio.ensure_future(_disconnected(receive)) if watch else None
    try:
        async for chunk in resp.stream():
            if gone is not None and gone.done():
                return  # release() closes the half-read connection
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        if gone is not None:
            gone.cancel()
    await send({"type": "http.response.body", "body": b""})


class _BodyStream:
    """A request body passed on chunk by chunk as it arrives (never buffered whole)."""

    __slots__ = ("receive", "first", "complete", "data")

    def __init__(self, receive: Receive, first: bytes) -> None:
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
                raise errors.CLIENT_CLOSED_REQUEST()
            chunk = m.get("body", b"")
            if chunk:
                yield chunk
            if not m.get("more_body", False):
                self.complete = True
                return


Body = bytes | _BodyStream | None


def replayable(body: Body) -> bool:
    """Can the body be sent again to another target (not a stream already being read)?"""
    return not isinstance(body, _BodyStream)


async def read_body(receive: Receive) -> Body:
    """The body as bytes when it came in one piece, else a stream."""
    msg = await receive()
    if msg["type"] == "http.disconnect":
        raise errors.CLIENT_CLOSED_REQUEST()
    first = msg.get("body", b"")
    if not msg.get("more_body", False):
        return first or None
    return _BodyStream(receive, first)


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone (call only after the request body was read whole)."""
    while (await receive())["type"] != "http.disconnect":
        pass
