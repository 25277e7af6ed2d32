"""A small HTTP/1.1 client for the proxy's hot path: keep-alive pools over asyncio protocols,
responses parsed by httptools, bodies streamed both ways with back-pressure.

Why not httpx or aiohttp here: measured on this kind of machine, httpx's pool polls every
pooled connection per request and aiohttp's client costs ~3x the CPU of this one per request
(see the README's benchmark section). Both stay where they cost nothing: admin, JWKS fetches, WebSockets, tests.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import AsyncIterator

from gateway.upstream.connection import (
    NO_BODY_STATUS,
    Body,
    Connection,
    Framing,
    Headers,
    State,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamError,
    UpstreamTimeout,
    request_head,
)

__all__ = ["Pool", "Response", "UpstreamConnectError", "UpstreamConnectTimeout", "UpstreamError", "UpstreamTimeout"]


class Response:
    """Status and headers at once; the body as an async stream, or whole when small."""

    __slots__ = ("_conn", "status", "headers", "_released")

    def __init__(self, conn: Connection) -> None:
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

    async def stream(self) -> AsyncIterator[bytes]:
        conn, timeout = self._conn, self._conn.pool.read_timeout
        while (chunk := await conn.next_chunk(timeout)) is not None:
            yield chunk

    async def read(self) -> bytes:
        whole = self._conn.take_body()  # the usual small answer: all there already
        if whole is not None:
            return whole
        return b"".join([chunk async for chunk in self.stream()])

    def release(self) -> None:
        """Give the connection back if the exchange ended cleanly, else close it."""
        if not self._released:
            self._released = True
            self._conn.pool.release(self._conn)


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
        self.outstanding = 0  # requests begun and not released
        self._idle: list[Connection] = []

    def _forget(self, conn: Connection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def release(self, conn: Connection) -> None:
        self.outstanding -= 1
        conn.resume()  # a connection kept idle must be read (an answer, or the upstream closing)
        conn._disarm()
        conn.sink = None
        if conn.reusable and len(self._idle) < self.max_idle:
            conn.state = State.IDLE
            self._idle.append(conn)
        else:
            conn.close()

    async def connect(self) -> Connection:
        """A new connection (UpstreamConnectError, UpstreamConnectTimeout)."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamConnectTimeout("timed out connecting to upstream") from None
        except (OSError, ssl.SSLError):
            raise UpstreamConnectError("cannot connect to upstream") from None
        return conn

    def take_idle(self) -> Connection | None:
        """A kept-alive connection ready for an exchange, without waiting; None if there is none."""
        while self._idle:
            conn = self._idle.pop()
            if conn.state is State.IDLE:
                return conn
        return None

    async def _acquire(self) -> Connection:
        return self.take_idle() or await self.connect()

    async def request(self, method: str, target: str, headers: Headers, body: Body) -> Response:
        """Send a request; returns once the response head has arrived.

        A reused connection that turns out closed before any answer is replaced once, when the
        body can be sent again (no body or bytes): the usual keep-alive race, not a failure.
        """
        self.outstanding += 1
        try:
            conn = await self._acquire()
            try:
                return await self._exchange(conn, method, target, headers, body)
            except UpstreamTimeout:
                raise
            except UpstreamError:
                raced = conn.exchanges > 1 and conn.lost_in is State.WAITING  # closed while idle in the pool
                if not (raced and not hasattr(body, "__aiter__")):
                    raise
            return await self._exchange(await self.connect(), method, target, headers, body)
        except BaseException:
            self.outstanding -= 1
            raise

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _exchange(self, conn: Connection, method: str, target: str, headers: Headers,
                        body: Body) -> Response:
        conn.begin(method)
        head, framing = request_head(method, target, headers, body)
        try:
            if framing is Framing.NONE:
                if not conn.send_now(head):
                    await conn.send(head)
            elif framing is Framing.LENGTH:
                await conn.send(head + body)  # type: ignore[operator]
            else:
                await conn.send(head)
                async for chunk in body:  # type: ignore[union-attr]
                    if conn.state is not State.WAITING:
                        break  # the upstream answered early (or went): stop sending; never reused
                    if chunk:
                        await conn.send(chunk if framing is Framing.STREAM else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    if framing is Framing.CHUNKED:
                        await conn.send(b"0\r\n\r\n")
                    conn.request_done()
            if framing is Framing.NONE or framing is Framing.LENGTH:
                conn.request_done()
            await conn.answer_head(self.read_timeout)
        except BaseException:
            conn.close()
            raise
        return Response(conn)
