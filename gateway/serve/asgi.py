"""The public listener as a plain ASGI app: the decisions of gateway.decide, then forwarding (the
attempts and error map of gateway.upstream, bodies streamed both ways) or the WebSocket relay
(gateway.serve.websocket). It runs under any ASGI server; ``gateway serve`` also answers bodiless
requests on a fast path of its own (gateway.serve.fastpath) that shares all of this with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from gateway import errors
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.decide import Decider, Plan, listener_port, log_unexpected
from gateway.headers import response_headers
from gateway.observe import metrics
from gateway.request import Request
from gateway.responses import Receive, Scope, Send, send_refusal
from gateway.rules.guard import Guard
from gateway.rules.limits import Limiter
from gateway.serve.realtime import channel_guard
from gateway.serve.sockets import OpenSockets
from gateway.serve.websocket import connect, deny, relay
from gateway.upstream.attempts import Attempts
from gateway.upstream.errors import UpstreamConnectError, UpstreamError, refusal_for
from gateway.upstream.pool import Response

log = logging.getLogger("gateway")

SMALL_BODY = 64 * 1024


class Proxy:
    def __init__(self, settings: Settings, auth: Authenticator, limiter: Limiter | None = None,
                 decider: Decider | None = None, guard: Guard | None = None) -> None:
        self.decider = decider or Decider(settings, auth, limiter, guard)
        self.settings = settings
        self.auth = auth
        self.sockets = OpenSockets()  # the relayed connections a key admitted, judged again on key changes

    async def start(self) -> None:
        await self.decider.start()
        self.auth.ring.on_change.append(self.sockets.changed)
        self.decider.guard.on_change.append(self.sockets.changed)  # a block, or the allow list changed

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.auth.ring.on_change.remove(self.sockets.changed)
            self.decider.guard.on_change.remove(self.sockets.changed)
        self.sockets.close()
        await self.decider.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    def _request(self, scope: Scope, method: str, websocket: bool = False) -> Request:
        client = scope.get("client")
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        return self.decider.request(method, raw_path, scope.get("query_string", b""), scope["headers"],
                                    client[0] if client else "", scope.get("scheme") in ("https", "wss"),
                                    listener_port(scope.get("server")), websocket,
                                    "HTTP/" + scope.get("http_version", "1.1"))

    async def _plan(self, req: Request, ws: bool) -> Plan:
        return self.decider.plan(req, await self.decider.grant(req), ws)

    # --- HTTP ----------------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        d = self.decider
        req = self._request(scope, scope["method"])
        send = counting(send, req)
        try:
            answer = d.route(req)
            if answer is not None:
                await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
                await send({"type": "http.response.body", "body": answer.body})
                return
            plan = await self._plan(req, ws=False)
            req.status = await self._forward(req, plan, receive, send)
        except errors.Refusal as r:
            d.refused(req, r)
            await send_refusal(send, r, d.answer_headers(req))
        except Exception as e:
            req.status = 500
            log_unexpected(e)
            try:  # fails if the response had begun: the connection is cut
                await send_refusal(send, errors.INTERNAL_ERROR(), d.answer_headers(req))
            except Exception:
                pass
        finally:
            d.record(req)

    async def _forward(self, req: Request, plan: Plan, receive: Receive, send: Send) -> int:
        """Send the request to its upstream (gateway.upstream.attempts says which, and whether
        again) and stream the answer back; returns the status sent."""
        body = await read_body(receive)
        attempts = Attempts(plan.upstream, self.decider.replicas_for(req), replayable(body))
        data = body.data if isinstance(body, _BodyStream) else body
        while True:
            upstream = attempts.target
            req.upstream = upstream.name
            try:
                resp = await upstream.pool.request(req.method, upstream.base_path + plan.target,
                                                   plan.for_upstream(upstream), data, fresh=attempts.fresh)
            except UpstreamError as e:
                if attempts.again(e):
                    continue
                raise refusal_for(e, req.route.upstream) from None  # type: ignore[union-attr]
            if attempts.again_after(resp.status):
                resp.release()
                continue
            break
        try:
            await _answer(resp, send, receive, self.decider.answer_headers(req),
                          watch=not isinstance(body, _BodyStream) or body.complete)
            attempts.answered(resp.status)
        except UpstreamError:  # the answer had begun: all we can do is cut it short
            attempts.broke_off()
            log.warning("upstream %s broke off a response", req.route.upstream)  # type: ignore[union-attr]
        except BaseException:
            attempts.abandoned()
            raise
        finally:
            resp.release()
        return resp.status

    # --- WebSocket -----------------------------------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        d = self.decider
        req = self._request(scope, "WEBSOCKET", websocket=True)
        try:
            d.route(req, ws=True)
            plan = await self._plan(req, ws=True)
            upstream = plan.upstream
            req.upstream = upstream.name
            guard = channel_guard(req, d, self.auth, self.settings.realtime.max_key_only_seconds)
            with self.sockets.holding(guard):  # judged again from now on, on every key change
                try:
                    socket = await connect(upstream, upstream.base_path + plan.target, plan.headers,
                                           req.info.ws_protocols, self.settings.upstreams.connect_timeout)
                except UpstreamError as e:
                    if isinstance(e, UpstreamConnectError):
                        metrics.UPSTREAM_CONNECT_ERRORS.labels(upstream.name).inc()
                    raise refusal_for(e, upstream.name) from None
                metrics.WEBSOCKETS.labels(upstream.name, "open").inc()
                await send({"type": "websocket.accept", "subprotocol": socket.protocol,
                            "headers": d.answer_headers(req)})
                await relay(receive, send, socket, guard)
        except errors.Refusal as r:
            d.refused(req, r)
            await deny(scope, send, r, d.answer_headers(req))
        except Exception as e:
            req.status = 500
            log_unexpected(e)
            try:
                await send({"type": "websocket.close", "code": 1011})
            except Exception:
                pass
        finally:
            d.record(req)


# --- over ASGI: request bodies passed on as they arrive, answers streamed back -------------------


def counting(send: Send, req: Request) -> Send:
    """``send``, adding the body bytes of the answer to ``req.sent`` (the access line's bytes; none
    for HEAD, whose body the server never sends)."""

    async def counted(message: dict) -> None:
        if message["type"] == "http.response.body" and req.method != "HEAD":
            req.sent += len(message.get("body", b""))
        await send(message)

    return counted


async def _answer(resp: Response, send: Send, receive: Receive, extra: list[tuple[bytes, bytes]],
                  watch: bool) -> None:
    """The upstream's answer to the client: a small one in one piece, else streamed."""
    headers = response_headers(resp.headers, extra)
    length = resp.content_length
    if length is not None and length <= SMALL_BODY:
        payload = await resp.read()
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    # The server drops what we send once the client has gone, without telling us: watch for
    # the disconnect (possible once the request body is all read) and stop pulling from upstream.
    gone = asyncio.ensure_future(_disconnected(receive)) if watch else None
    try:
        async for piece in resp.stream():
            if gone is not None and gone.done():
                return  # release() closes the half-read connection
            await send({"type": "http.response.body", "body": piece, "more_body": True})
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
            piece = m.get("body", b"")
            if piece:
                yield piece
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
