"""One keep-alive HTTP/1.1 connection to an upstream, as an asyncio protocol: the request head
built by a pure function, the answer parsed by httptools, the exchange's progress a ``State``."""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import TYPE_CHECKING, Any, AsyncIterator, Union

import httptools

from gateway.clock import DEADLINES

if TYPE_CHECKING:
    from gateway.upstream.pool import Pool

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


class _Unsolicited(Exception):
    """Stops the parser at an answer nobody asked for."""


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


class Connection(asyncio.Protocol):
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
        self.framed = False  # the answer has Content-Length or Transfer-Encoding
        self.keep_alive = False
        self.headers_done: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.deadline: float | None = None  # loop time by which the upstream must send (gateway.clock)
        self.sink: Any = None  # set: the answer is pushed to it as it comes (serve.fastpath), not queued
        self.paused = False  # by the sink, whose reader cannot keep up
        self.request_sent = False  # the whole request, body included, went out (else: never reused)

    def begin(self, method: str, sink: Any = None) -> None:
        """A new exchange: forget the last one. With ``sink``, the answer is pushed to it."""
        if self.head_only:  # the parser still expects the body a HEAD answer announced
            self.parser = httptools.HttpResponseParser(self)
        self.exchanges += 1
        self.state = State.WAITING
        self.head_only = method == "HEAD"
        self.status = 0
        self.headers = []
        self.until_close = self.keep_alive = self.framed = False
        self.headers_done = None if sink is not None else self.loop.create_future()
        self.chunks.clear()
        self.buffered = 0
        self.error = None
        self.sink = sink
        self.request_sent = False

    def request_done(self) -> None:
        """The whole request, body included, was written (queued on the transport in order)."""
        self.request_sent = True

    @property
    def reusable(self) -> bool:
        """A complete exchange: the request sent in full, its answer read in full, allowing
        keep-alive. Anything less (an early answer to a body not sent whole, a client gone
        mid-body) would leave the upstream expecting bytes that the next request would supply."""
        return (self.request_sent and self.state is State.DONE and self.keep_alive and not self.chunks
                and not self.until_close)

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        DEADLINES.watch(self)

    def data_received(self, data: bytes) -> None:
        self._disarm()
        if self.state is State.IDLE:  # bytes nobody asked for: they would pass for the next answer
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.state is State.DONE:  # the answer is whole; the reader releases (and closes) it
                return
            if self.state is not State.IDLE:  # IDLE: already released by the sink, nothing to fail
                self._fail(UpstreamError("invalid response from upstream"))
            self.close()
            return
        if self.sink is not None and not self.paused and self.state is not State.DONE \
                and self.state is not State.CLOSED:
            self._arm(self.pool.read_timeout)  # the next bytes must come in time too

    def pause(self) -> None:
        """The sink's reader cannot keep up: stop reading, and the upstream's deadline with it
        (a slow client is not a slow upstream)."""
        if self.transport is not None and self.state is not State.CLOSED:
            self.paused = True
            self._disarm()
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if self.transport is not None and self.state is not State.CLOSED:
                self.transport.resume_reading()
                if self.state is not State.DONE:
                    self._arm(self.pool.read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        DEADLINES.unwatch(self)
        self.deadline = None
        was = self.lost_in = self.state
        self.pool._forget(self)
        if was is State.BODY and self.until_close:  # a body delimited by the end of the connection
            self.state = State.DONE
            self._wake()
            if self.sink is not None:
                self.sink.upstream_done(self)
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
            return
        # A second answer to one request (bytes beyond the first one's end): never read as the
        # answer to anything, and the connection never trusted with another request.
        self.keep_alive = False
        raise _Unsolicited()

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # informational: wait for the final answer
            self.headers = []
            self.framed = False
            if self.state is State.HEAD:
                self.state = State.WAITING  # the body may still be sent
            return
        if self.state is State.HEAD:
            self.until_close = not self.framed and self.status not in NO_BODY_STATUS and not self.head_only
            self.state = State.BODY
            if self.sink is not None:
                self.sink.upstream_head(self)
            elif self.headers_done is not None and not self.headers_done.done():
                self.headers_done.set_result(None)
        if self.head_only:
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.upstream_body(body)
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.state is State.BODY:
            self.keep_alive = self.parser.should_keep_alive()  # only meaningful in this callback
            self.state = State.DONE
            if self.sink is not None:
                self.sink.upstream_done(self)
            else:
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
        if self.sink is not None:
            self.sink.upstream_failed(self, exc)
            return
        done = self.headers_done
        if done is not None and not done.done():
            done.set_exception(exc)
            done.exception()  # mark retrieved: the caller may be gone already
        self._wake()

    def deadline_passed(self) -> None:
        self._fail(UpstreamTimeout("upstream timed out"))
        self.close()

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds

    def _disarm(self) -> None:
        self.deadline = None
