"""Keep-alive connections to one upstream, and the requests in flight to it.

A request checks a connection out (one kept alive, or a new one) and gives it back with
``release``, which keeps it only if its exchange was complete (``Connection.reusable``);
``outstanding`` counts the requests between the two, for the read replicas' balancing.

Why not httpx or aiohttp here: measured on this kind of machine, httpx's pool polls every
pooled connection per request and aiohttp's client costs ~3x the CPU of this one per request
(see docs/benchmark.md). Both stay where they cost nothing: admin, JWKS fetches, WebSockets, tests.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import AsyncIterator

from gateway.upstream.connection import Connection, State
from gateway.upstream.errors import UpstreamConnectError, UpstreamConnectTimeout
from gateway.upstream.messages import NO_BODY_STATUS, Body, Headers, request_head


class Response:
    """Status and headers at once; the body as an async stream, or whole when small."""

    __slots__ = ("_pool", "_conn", "status", "headers", "_released")

    def __init__(self, pool: "Pool", conn: Connection) -> None:
        self._pool = pool
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    @property
    def content_length(self) -> int | None:
        if self._conn.head_only or self.status in NO_BODY_STATUS:
            return 0
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def stream(self) -> AsyncIterator[bytes]:
        """The body's pieces as they come."""
        return _Pieces(self._conn)

    async def read(self) -> bytes:
        whole = self._conn.take_body()  # the usual small answer: all there already
        if whole is not None:
            return whole
        return b"".join([piece async for piece in self.stream()])

    def release(self) -> None:
        """Give the connection back: kept if the exchange was complete, else closed."""
        if not self._released:
            self._released = True
            self._pool.release(self._conn)


class _Pieces:
    """An answer's body as an async iterator (a class: compiled code has no async generators)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __aiter__(self) -> "_Pieces":
        return self

    async def __anext__(self) -> bytes:
        piece = await self._conn.next_chunk()
        if piece is None:
            raise StopAsyncIteration
        return piece


class Pool:
    """Keep-alive connections to one upstream ``host:port``."""

    def __init__(self, host: str, port: int, *, connect_timeout: float, read_timeout: float,
                 tls: bool = False, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl.create_default_context() if tls else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self.outstanding = 0  # connections checked out and not released: requests in flight
        self._idle: list[Connection] = []

    def take_idle(self) -> Connection | None:
        """A kept-alive connection, checked out, without waiting; None if there is none."""
        while self._idle:
            conn = self._idle.pop()
            if conn.state is State.IDLE:
                self.outstanding += 1
                return conn
        return None

    async def connect(self) -> Connection:
        """A new connection, checked out (UpstreamConnectError, UpstreamConnectTimeout)."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(self.read_timeout, self._forget), self.host, self.port,
                                       ssl=self.ssl),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamConnectTimeout("timed out connecting to upstream") from None
        except (OSError, ssl.SSLError):
            raise UpstreamConnectError("cannot connect to upstream") from None
        self.outstanding += 1
        return conn

    def release(self, conn: Connection) -> None:
        """The end of a checkout: the connection kept for the next request if its exchange was
        complete (and there is room), else closed."""
        self.outstanding -= 1
        if conn.finish():
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()

    async def request(self, method: str, target: str, headers: Headers, body: Body,
                      fresh: bool = False) -> Response:
        """Send a request on a kept-alive connection (``fresh``: a new one); returns once the
        answer's head is in. Raises an UpstreamError, the connection released."""
        conn = (None if fresh else self.take_idle()) or await self.connect()
        head, framing = request_head(method, target, headers, body)
        try:
            await conn.send(method, head, framing, body)
        except BaseException:
            self.release(conn)
            raise
        return Response(self, conn)

    def _forget(self, conn: Connection) -> None:
        """A connection that went away (the upstream closed it, or we did)."""
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
