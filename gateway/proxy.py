"""The public listener as a plain ASGI app: the decisions of gateway.decide, then forwarding
(gateway.forward) or the WebSocket relay (gateway.relay). It runs under any ASGI server;
``gateway serve`` also answers bodiless requests on a fast path of its own (gateway.fastpath)
that shares every decision with it.
"""

from __future__ import annotations

from gateway import errors, observe
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.decide import Exchange, Gateway, Plan, listener_port, log_unexpected
from gateway.forward import RETRY_STATUS, Retry, forward, read_body, replayable
from gateway.limits import Limiter
from gateway.realtime import frame_rewriter
from gateway.relay import connect, deny, relay
from gateway.responses import Receive, Scope, Send, send_refusal

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
