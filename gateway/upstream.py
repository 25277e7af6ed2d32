"""A small HTTP/1.1 client for the proxy's hot path: keep-alive pools over asyncio protocols,
responses parsed by httptools, bodies streamed both ways with back-pressure.

Why not httpx or aiohttp here: measured on this kind of machine, httpx's pool polls every
pooled connection per request and aiohttp's client costs ~3x the CPU of this one per request
(see PERF-NOTES). Both stay where they cost nothing: admin, JWKS fetches, WebSockets, tests.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import ssl
from typing import AsyncIterator, Union

import httptools

Headers = list[tuple[bytes, bytes]]
Body = Union[bytes, AsyncIterator[bytes], None]

HIGH_WATER = 256 * 1024
NO_BODY_STATUS = frozenset({204, 304})


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange (no detail that could hold data)."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamConnectError(UpstreamError):
    """No connection could be made: nothing of the request was sent (safe to try elsewhere)."""


class UpstreamConnectTimeout(UpstreamConnectError, UpstreamTimeout):
    pass


class State(enum.Enum):
    IDLE = "idle"  # open, between exchanges
    WAITING = "waiting"  # a request went out; not a byte of the answer yet
    HEAD = "head"  # the answer's head is arriving
    BODY = "body"  # the head is in, the body is arriving
    DONE = "done"  # the answer is complete
    CLOSED = "closed"


class Framing(enum.Enum):
    NONE = "none"  # no body
    LENGTH = "length"  # a body in one piece, its length known
    STREAM = "stream"  # a body streamed with the client's Content-Length
    CHUNKED = "chunked"  # a body streamed without a length


def request_head(method: str, target: str, headers: Headers, body: Body) -> tuple[bytes, Framing]:
    """The request line and headers to send, and how the body follows them. ``Content-Length``
    is ours for a body in one piece and the client's for a streamed one (else chunked)."""
    streaming = body is not None and not isinstance(body, bytes)
    head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    has_length = False
    for name, value in headers:
        if name == b"content-length":
            if not streaming:
                continue
            has_length = True
        head += (name, b": ", value, b"\r\n")
    if isinstance(body, bytes):
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        return b"".join(head), Framing.LENGTH
    if not streaming:
        head.append(b"\r\n")
        return b"".join(head), Framing.NONE
    if has_length:
        head.append(b"\r\n")
        return b"".join(head), Framing.STREAM
    head.append(b"transfer-encoding: chunked\r\n\r\n")
    return b"".join(head), Framing.CHUNKED


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time, its progress in ``state``."""

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.state = State.IDLE
        self.lost_in: State | None = None  # the state the connection was lost in
        self.exchanges = 0  # begun on this connection; more than one: it came from the pool
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.status = 0
        self.headers: Headers = []
        self.head_only = False
        self.until_close = False  # the body ends with the connection
        self.keep_alive = False
        self.headers_done: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def begin(self, method: str) -> None:
        """A new exchange: forget the last one."""
        if self.head_only:  # the parser still expects the body a HEAD answer announced
            self.parser = httptools.HttpResponseParser(self)
        self.exchanges += 1
        self.state = State.WAITING
        self.head_only = method == "HEAD"
        self.status = 0
        self.headers = []
        self.until_close = self.keep_alive = False
        self.headers_done = self.loop.create_future()
        self.chunks.clear()
        self.buffered = 0
        self.error = None

    @property
    def reusable(self) -> bool:
        return self.state is State.DONE and self.keep_alive and not self.chunks and not self.until_close

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._disarm()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(UpstreamError("invalid response from upstream"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.lost_in = self.state
        self.pool._forget(self)
        if was is State.BODY and self.until_close:  # a body delimited by the end of the connection
            self.state = State.DONE
            self._wake()
        else:
            self.state = State.CLOSED
            if was is not State.DONE:
                self._fail(UpstreamError("upstream closed the connection"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- httptools callbacks ---
    def on_message_begin(self) -> None:
        if self.state is State.WAITING:
            self.state = State.HEAD

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # informational: wait for the final answer
            self.headers = []
            return
        if self.state is State.HEAD:
            names = {n for n, _ in self.headers}
            self.until_close = (b"content-length" not in names and b"transfer-encoding" not in names
                                and self.status not in NO_BODY_STATUS and not self.head_only)
            self.state = State.BODY
            if self.headers_done is not None and not self.headers_done.done():
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
        if self.state is State.BODY:
            self.keep_alive = self.parser.should_keep_alive()  # only meaningful in this callback
            self.state = State.DONE
            self._wake()

    # --- the exchange, as the pool and the response use it ---
    async def send(self, data: bytes) -> None:
        if self.state is State.CLOSED or self.transport is None:
            raise UpstreamError("upstream closed the connection")
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    def send_now(self, data: bytes) -> bool:
        """Write without waiting, when nothing holds writes back (the usual bodiless request)."""
        if self.state is State.CLOSED or self.transport is None or not self._can_write.is_set():
            return False
        self.transport.write(data)
        return True

    async def answer_head(self, timeout: float) -> None:
        assert self.headers_done is not None
        self._arm(timeout)
        try:
            await self.headers_done
        finally:
            self._disarm()

    def take_body(self) -> bytes | None:
        """The whole body if it has all arrived, else None."""
        if not self._ended:
            return None
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        return data

    async def next_chunk(self, timeout: float) -> bytes | None:
        """The next piece of the body; None at its end."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.buffered < HIGH_WATER // 2 and self.transport is not None and self.state is not State.CLOSED:
                    self.transport.resume_reading()
                return chunk
            if self._ended:
                return None
            if self.error is not None:
                raise self.error
            self.wakeup = self.loop.create_future()
            self._arm(timeout)
            try:
                await self.wakeup
            finally:
                self.wakeup = None

    def close(self) -> None:
        self._disarm()
        if self.transport is not None and self.state is not State.CLOSED:
            self.transport.close()
        self.state = State.CLOSED

    # --- helpers ---
    @property
    def _ended(self) -> bool:
        """The whole answer is in (the connection may have gone since)."""
        return self.state is State.DONE or (self.state is State.CLOSED and self.lost_in is State.DONE)

    def _wake(self) -> None:
        w = self.wakeup
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        done = self.headers_done
        if done is not None and not done.done():
            done.set_exception(exc)
            done.exception()  # mark retrieved: the caller may be gone already
        self._wake()

    def _on_timeout(self) -> None:
        self.timer = None
        self._fail(UpstreamTimeout("upstream timed out"))
        self.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, self._on_timeout)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


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
        self._idle: list[_Connection] = []

    def _forget(self, conn: _Connection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def release(self, conn: _Connection) -> None:
        self.outstanding -= 1
        conn._disarm()
        if conn.reusable and len(self._idle) < self.max_idle:
            conn.state = State.IDLE
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamConnectTimeout("timed out connecting to upstream") from None
        except (OSError, ssl.SSLError):
            raise UpstreamConnectError("cannot connect to upstream") from None
        return conn

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.state is State.IDLE:
                return conn
        return await self._connect()

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
            return await self._exchange(await self._connect(), method, target, headers, body)
        except BaseException:
            self.outstanding -= 1
            raise

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _exchange(self, conn: _Connection, method: str, target: str, headers: Headers,
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
                        break  # the upstream answered early (or went): stop sending
                    if chunk:
                        await conn.send(chunk if framing is Framing.STREAM else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if framing is Framing.CHUNKED and conn.state is not State.CLOSED:
                    await conn.send(b"0\r\n\r\n")
            await conn.answer_head(self.read_timeout)
        except BaseException:
            conn.close()
            raise
        return Response(conn)
