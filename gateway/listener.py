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
from gateway.decide import Gateway
from gateway.fastpath import FastExchange, eligible
from gateway.responses import error_headers


def _close_with(spec: errors.ErrorSpec) -> bytes:
    r = spec()
    head = [b"HTTP/1.1 %d %s\r\n" % (r.status, b"Request Timeout" if r.status == 408 else b"Service Unavailable")]
    head += [name + b": " + value + b"\r\n" for name, value in error_headers(r)]
    return b"".join(head) + b"connection: close\r\n\r\n" + r.body


class HttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_connections = 10_000
    gateway: Gateway | None = None  # set: bodiless requests take the fast path (gateway.fastpath)

    @classmethod
    def configured(cls, header_timeout: float, max_connections: int,
                   gateway: Gateway | None = None) -> type["HttpProtocol"]:
        return type("HttpProtocol", (cls,), {"header_timeout": header_timeout, "max_connections": max_connections,
                                             "gateway": gateway})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._fast: FastExchange | None = None
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections:
            transport.write(_close_with(errors.TOO_MANY_CONNECTIONS))
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        fast, self._fast = self._fast, None
        super().connection_lost(exc)
        if fast is not None:
            fast.client_lost()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_started = False
        gateway = self.gateway
        if (gateway is not None and (self.cycle is None or self.cycle.response_complete)
                and not self.parser.should_upgrade() and eligible(self.parser.get_method(), self.url, self.headers)):
            self._start_fast(gateway)
        else:
            super().on_headers_complete()

    def _start_fast(self, gateway: Gateway) -> None:
        raw_path, _, query = self.url.partition(b"?")
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        x = gateway.exchange(self.parser.get_method().decode("ascii"), raw_path.decode("latin-1"),
                             query.partition(b"#")[0], self.headers, self.client[0] if self.client else "",
                             self.scheme == "https", _port(self.server), 500)
        fast = self._fast = FastExchange(self, gateway, x, keep_alive)
        self.cycle = fast.cycle  # type: ignore[assignment]  # uvicorn's bookkeeping: a request in flight
        fast.start()

    def fast_done(self, fast: FastExchange, keep_alive: bool) -> None:
        """The fast path's answer is complete: keep the connection for the next request, or close it."""
        if self._fast is fast:
            self._fast = None
        if not keep_alive:
            self.transport.close()
            return
        if not self.transport.is_closing():
            self.on_response_complete()  # reading resumes, the keep-alive timer starts, a pipelined request runs

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._fast is not None:
            self._fast.client_can_write()

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


_PORTS: dict[int, bytes] = {}


def _port(server: tuple[str, int] | None) -> bytes | None:
    if not server or server[1] is None:
        return None
    port = _PORTS.get(server[1])
    if port is None:
        port = _PORTS[server[1]] = str(server[1]).encode()
    return port


def protocol_for(settings: Any, gateway: Gateway | None = None) -> type[HttpProtocol]:
    server = settings.server
    return HttpProtocol.configured(server.header_timeout_seconds, server.max_connections,
                                   gateway if server.fast_path else None)
