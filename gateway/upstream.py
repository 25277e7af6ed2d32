"""A small HTTP/1.1 client for the proxy's hot path: keep-alive pools over asyncio protocols,
responses parsed by httptools, bodies streamed both ways with back-pressure.

Why not httpx or aiohttp here: measured on this kind of machine, httpx's pool polls every
pooled connection per request and aiohttp's client costs ~3x the CPU of this one per request
(see PERF-NOTES). Both stay where they cost nothing: admin, JWKS fetches, WebSockets, tests.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import AsyncIterator

import httptools

Headers = list[tuple[bytes, bytes]]

HIGH_WATER = 256 * 1024
NO_BODY_STATUS = frozenset({204, 304})


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange (no detail that could hold data)."""


class UpstreamTimeout(UpstreamError):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: collections.deque[bytes] = collections.deque()
        self.head_only = False
        self._reset()

    def _reset(self) -> None:
        if self.head_only:  # the parser still expects the body a HEAD answer announced
            self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: Headers = []
        self.head_only = False
        self.until_close = False
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.chunks.clear()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.got_data = False
        self.error: BaseException | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_data = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(UpstreamError("invalid response from upstream"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        if self.until_close and self.headers_done.done() and not self.complete:
            self.on_message_complete()  # a body delimited by the end of the connection
        elif not self.complete:
            self._fail(UpstreamError("upstream closed the connection"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # informational: wait for the final answer
            self.headers = []
            return
        if not self.headers_done.done():
            names = {n for n, _ in self.headers}
            self.until_close = (b"content-length" not in names and b"transfer-encoding" not in names
                                and self.status not in NO_BODY_STATUS and not self.head_only)
            self.headers_done.set_result(None)
        if self.head_only:
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.complete or not self.headers_done.done():
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only meaningful in this callback
        self._wake()

    # --- helpers ---
    def _wake(self) -> None:
        w = self.wakeup
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if not self.headers_done.done():
            self.headers_done.set_exception(exc)
            self.headers_done.exception()  # mark retrieved: the caller may be gone already
        self._wake()

    def _on_timeout(self) -> None:
        self.timer = None
        self._fail(UpstreamTimeout("upstream timed out"))
        self.close()

    def arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._on_timeout)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("upstream closed the connection")
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()


class Response:
    """Status and headers at once; the body as an async stream, or whole when small."""

    __slots__ = ("_conn", "status", "headers", "_released")

    def __init__(self, conn: _Connection) -> None:
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
        conn = self._conn
        while True:
            if conn.chunks:
                chunk = conn.chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.buffered < HIGH_WATER // 2 and conn.transport is not None and not conn.closed:
                    conn.transport.resume_reading()
                yield chunk
                continue
            if conn.complete:
                return
            if conn.error is not None:
                raise conn.error
            conn.wakeup = conn.loop.create_future()
            conn.arm(conn.pool.read_timeout)
            try:
                await conn.wakeup
            finally:
                conn.wakeup = None

    async def read(self) -> bytes:
        conn = self._conn
        if conn.complete:  # the usual small answer: all there already
            data = b"".join(conn.chunks)
            conn.chunks.clear()
            conn.buffered = 0
            return data
        return b"".join([chunk async for chunk in self.stream()])

    def release(self) -> None:
        """Give the connection back if the exchange ended cleanly, else close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.complete and conn.keep_alive and not conn.closed and not conn.chunks and not conn.until_close:
            conn.pool._put_back(conn)
        else:
            conn.close()


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
        self._idle: list[_Connection] = []

    def _forget(self, conn: _Connection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def _put_back(self, conn: _Connection) -> None:
        if len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn._reset()
        conn.reused = True
        self._idle.append(conn)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamTimeout("timed out connecting to upstream") from None
        except (OSError, ssl.SSLError):
            raise UpstreamError("cannot connect to upstream") from None
        return conn

    async def request(self, method: str, target: str, headers: Headers,
                      body: bytes | AsyncIterator[bytes] | None) -> Response:
        """Send a request; returns once the response head has arrived.

        A reused connection that turns out closed before any answer is replaced once, when the
        body can be sent again (no body or bytes): the usual keep-alive race, not a failure.
        """
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                break
        else:
            conn = await self._connect()
        try:
            return await self._exchange(conn, method, target, headers, body)
        except UpstreamTimeout:
            raise
        except UpstreamError:
            if not (conn.reused and not conn.got_data and not hasattr(body, "__aiter__")):
                raise
        conn = await self._connect()
        return await self._exchange(conn, method, target, headers, body)

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _exchange(self, conn: _Connection, method: str, target: str, headers: Headers,
                        body: bytes | AsyncIterator[bytes] | None) -> Response:
        conn.head_only = method == "HEAD"
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
        streaming = body is not None and not isinstance(body, bytes)
        has_length = False
        for name, value in headers:
            if name == b"content-length":
                if not streaming:
                    continue
                has_length = True
            head += (name, b": ", value, b"\r\n")
        if isinstance(body, bytes):
            head.append(b"content-length: %d\r\n" % len(body))
        elif streaming and not has_length:
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        try:
            if body is None and conn._can_write.is_set() and not conn.closed and conn.transport is not None:
                conn.transport.write(b"".join(head))  # the usual GET: no coroutine needed
            elif isinstance(body, bytes):
                await conn.write(b"".join(head) + body)
            else:
                await conn.write(b"".join(head))
                if streaming:
                    async for chunk in body:  # type: ignore[union-attr]
                        if conn.headers_done.done():
                            break  # the upstream answered early: stop sending
                        if chunk:
                            await conn.write(chunk if has_length else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    if not has_length and not conn.closed:
                        await conn.write(b"0\r\n\r\n")
            conn.arm(self.read_timeout)
            await conn.headers_done
        except BaseException:
            conn.close()
            raise
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        return Response(conn)
