"""The public listener's HTTP protocol: uvicorn's httptools protocol with coalesced writes, a
deadline for each request head, and a cap on the connections a worker holds (SPEC section 9).

Idle keep-alive connections are closed by uvicorn after ``server.keepalive_seconds``; a request
head must arrive whole within ``server.header_timeout_seconds`` of its first byte (or of the
connection, for the first one), else 408 and the connection is closed; past
``server.max_connections`` a new connection is answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import errors
from gateway.coalesce import CoalescingTransport
from gateway.responses import error_headers


def _close_with(spec: errors.ErrorSpec) -> bytes:
    r = spec()
    head = [b"HTTP/1.1 %d %s\r\n" % (r.status, b"Request Timeout" if r.status == 408 else b"Service Unavailable")]
    head += [name + b": " + value + b"\r\n" for name, value in error_headers(r)]
    return b"".join(head) + b"connection: close\r\n\r\n" + r.body


class HttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_connections = 10_000

    @classmethod
    def configured(cls, header_timeout: float, max_connections: int) -> type["HttpProtocol"]:
        return type("HttpProtocol", (cls,), {"header_timeout": header_timeout, "max_connections": max_connections})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections:
            transport.write(_close_with(errors.TOO_MANY_CONNECTIONS))
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_started = False
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:  # part of a head came, too slowly
            self.transport.write(_close_with(errors.REQUEST_HEAD_TIMEOUT))
        self.transport.close()


def protocol_for(settings: Any) -> type[HttpProtocol]:
    server = settings.server
    return HttpProtocol.configured(server.header_timeout_seconds, server.max_connections)
