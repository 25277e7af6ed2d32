"""The public listener's HTTP protocol: uvicorn's httptools protocol with coalesced writes, a
deadline for each request head, and a cap on the connections a worker holds (docs/requests.md).

Idle keep-alive connections are closed by uvicorn after ``server.keepalive_seconds``; a request
head must arrive whole within ``server.header_timeout_seconds`` of its first byte (or of the
connection, for the first one), else 408 and the connection is closed; past
``server.max_connections`` a new connection is answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway import errors
from gateway.clock import DEADLINES
from gateway.decide import REQUEST_ID, Decider, listener_port
from gateway.ids import new_id
from gateway.responses import error_headers, head_bytes
from gateway.serve.coalesce import CoalescingTransport
from gateway.serve.fastpath import BODY_HEADERS, FastRequest, eligible


def _close_with(spec: errors.ErrorSpec) -> bytes:
    r = spec()
    headers = [*error_headers(r), (REQUEST_ID, new_id().encode()), (b"connection", b"close")]
    return head_bytes(r.status, headers) + r.body


class HttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_connections = 10_000
    decider: Decider | None = None  # set: bodiless requests take the fast path (gateway.serve.fastpath)

    @classmethod
    def configured(cls, header_timeout: float, max_connections: int,
                   decider: Decider | None = None) -> type["HttpProtocol"]:
        return type("HttpProtocol", (cls,), {"header_timeout": header_timeout, "max_connections": max_connections,
                                             "decider": decider})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_started = False
        self._fast: FastRequest | None = None
        self._bodyish = False  # the request coming has (or may have) a body
        self.deadline: float | None = None  # of the request head, or of an idle kept-alive connection
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections:
            transport.write(_close_with(errors.TOO_MANY_CONNECTIONS))
            transport.close()
            return
        self.deadline = self.loop.time() + self.header_timeout
        DEADLINES.watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        DEADLINES.unwatch(self)
        fast, self._fast = self._fast, None
        super().connection_lost(exc)
        if fast is not None:
            fast.client_lost()

    def on_header(self, name: bytes, value: bytes) -> None:  # uvicorn's, noting a body on the way
        name = name.lower()
        if name in BODY_HEADERS:
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            if name != b"content-length" or value.strip() != b"0":
                self._bodyish = True
        self.headers.append((name, value))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._bodyish = False
        if not self._head_started:  # a new request: its head must come in time (the first one's
            self._head_started = True  # deadline runs from the connection's start)
            if self.cycle is not None:
                self.deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self.deadline = None
        self._head_started = False
        decider = self.decider
        if (decider is not None and (self.cycle is None or self.cycle.response_complete)
                and not self._bodyish and not self.parser.should_upgrade()
                and eligible(self.parser.get_method(), self.url)):
            self._start_fast(decider)
        else:
            super().on_headers_complete()

    def _start_fast(self, decider: Decider) -> None:
        raw_path, _, query = self.url.partition(b"#")[0].partition(b"?")  # as httptools' parse_url: no fragment
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        req = decider.request(self.parser.get_method().decode("ascii"), raw_path.decode("latin-1"),
                              query, self.headers, self.client[0] if self.client else "",
                              self.scheme == "https", listener_port(self.server), False,
                              "HTTP/1.0" if self.parser.get_http_version() == "1.0" else "HTTP/1.1")
        fast = self._fast = FastRequest(self, decider, req, keep_alive)
        self.cycle = fast.cycle  # type: ignore[assignment]  # uvicorn's bookkeeping: a request in flight
        fast.start()

    def fast_done(self, fast: FastRequest, keep_alive: bool) -> None:
        """The fast path's answer is complete: keep the connection for the next request (the idle
        deadline instead of uvicorn's keep-alive timer), or close it."""
        if self._fast is fast:
            self._fast = None
        if not keep_alive:
            self.transport.close()
            return
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # requests that came meanwhile went to uvicorn's queue: run the next
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.deadline = self.loop.time() + self.timeout_keep_alive

    def send_400_response(self, msg: str) -> None:
        """A request that is not HTTP: our JSON answer, its request id, instead of uvicorn's text."""
        self.transport.write(_close_with(errors.BAD_REQUEST))
        self.transport.close()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._fast is not None:
            self._fast.client_can_write()

    def deadline_passed(self) -> None:
        """A request head that did not come in time, or a kept-alive connection idle too long."""
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if self._head_started:  # part of a head came, too slowly
            self.transport.write(_close_with(errors.REQUEST_HEAD_TIMEOUT))
        self.transport.close()


def protocol_for(settings: Any, decider: Decider | None = None) -> type[HttpProtocol]:
    server = settings.server
    return HttpProtocol.configured(server.header_timeout_seconds, server.max_connections,
                                   decider if server.fast_path else None)


class GoingAwayWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, except that a server stopping closes an open socket with 1001
    (going away: the client may reconnect at once, to another instance) where uvicorn sends 1012."""

    def shutdown(self) -> None:
        if self.close_sent or not self.handshake_complete or self.initial_response is not None:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
        self.conn.send_close(1001, "Server shutting down")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
