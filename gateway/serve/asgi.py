"""The public listener as a plain ASGI app: the decisions of gateway.decide, then forwarding
(gateway.headers) or the WebSocket relay (gateway.serve.websocket). It runs under any ASGI server;
``gateway serve`` also answers bodiless requests on a fast path of its own (gateway.serve.fastpath)
that shares every decision with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from gateway import errors, observe
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.decide import Exchange, Gateway, Plan, listener_port, log_unexpected
from gateway.headers import response_headers
from gateway.responses import Headers, Receive, Scope, Send, send_refusal
from gateway.rules.limits import Limiter
from gateway.serve.realtime import frame_rewriter
from gateway.serve.websocket import connect, deny, relay
from gateway.upstream.pool import Pool, Response, UpstreamConnectError, UpstreamError, UpstreamTimeout
from gateway.upstream.services import RETRY_STATUS

log = logging.getLogger("gateway")

SMALL_BODY = 64 * 1024


class Proxy:
    def __init__(self, settings: Settings, auth: Authenticator, limiter: Limiter | None = None,
                 gateway: Gateway | None = None) -> None:
        self.gateway = gateway or Gateway(settings, auth, limiter)
        self.settings = settings
        self.auth = auth

    async def start(self) -> None:
        await self.gateway.start()

    async def close(self) -> None:
        await self.gateway.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    def _exchange(self, scope: Scope, method: str, status: int) -> Exchange:
        client = scope.get("client")
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        return self.gateway.exchange(method, raw_path, scope.get("query_string", b""), scope["headers"],
                                     client[0] if client else "", scope.get("scheme") in ("https", "wss"),
                                     listener_port(scope.get("server")), status)

    async def _plan(self, x: Exchange, ws: bool) -> Plan:
        return self.gateway.plan(x, await self.gateway.grant(x), ws)

    # --- HTTP ----------------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        g = self.gateway
        x = self._exchange(scope, scope["method"], 500)
        try:
            answer = g.route(x)
            if answer is not None:
                await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
                await send({"type": "http.response.body", "body": answer.body})
                return
            plan = await self._plan(x, ws=False)
            x.status = await self._send(x, send, receive, plan)
        except errors.Refusal as r:
            x.status = r.status
            await send_refusal(send, r, g.extra(x))
        except Exception as e:
            x.status = 500
            log_unexpected(e)
            try:  # fails if the response had begun: the connection is cut
                await send_refusal(send, errors.INTERNAL_ERROR())
            except Exception:
                pass
        finally:
            g.record(x)

    async def _send(self, x: Exchange, send: Send, receive: Receive, plan: Plan) -> int:
        """Forward to the route's upstream, or for a read with replicas to the primary or a
        replica, trying another when the first fails before answering."""
        service = x.route.upstream  # type: ignore[union-attr]
        body = await read_body(receive)
        extra = self.gateway.extra(x)
        reads = self.gateway.reads_for(x)
        if reads is None:
            x.upstream = plan.upstream.name
            return await forward(send, receive, plan.upstream.pool, x.method, plan.upstream.base_path + plan.target,
                                 plan.headers, extra, service, body)
        attempts = reads.pick() if replayable(body) else reads.pick()[:1]
        for i, upstream in enumerate(attempts):
            x.upstream = upstream.name
            last = i == len(attempts) - 1
            try:
                status = await forward(send, receive, upstream.pool, x.method, upstream.base_path + plan.target,
                                       plan.for_upstream(upstream), extra, service, body, retryable=not last)
            except Retry:
                observe.UPSTREAM_RETRIES.labels(upstream.name).inc()
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

    # --- WebSocket -----------------------------------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        g = self.gateway
        x = self._exchange(scope, "WEBSOCKET", 101)
        try:
            g.route(x, ws=True)
            plan = await self._plan(x, ws=True)
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
            log_unexpected(e)
            try:
                await send({"type": "websocket.close", "code": 1011})
            except Exception:
                pass
        finally:
            g.record(x)


# --- forwarding over ASGI: request bodies passed on as they arrive, answers streamed back ---------


class Retry(Exception):
    """The target failed before a byte of the answer reached the client: another may serve it."""


async def forward(send: Send, receive: Receive, pool: Pool, method: str, target: str, headers: Headers,
                  extra: Headers, service: str, body: Body, retryable: bool = False) -> int:
    """Send the request upstream and stream its answer back; returns the status sent. With
    ``retryable``, a refused or timed-out connection and a 502/503 answer raise Retry instead."""
    data = body.data if isinstance(body, _BodyStream) else body
    try:
        resp = await pool.request(method, target, headers, data)
    except UpstreamConnectError as e:
        observe.UPSTREAM_CONNECT_ERRORS.labels(service).inc()  # a replica's count under its service here
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
