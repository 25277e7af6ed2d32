"""One keep-alive HTTP/1.1 connection to an upstream, as an asyncio protocol: one exchange at a
time, its progress a ``State`` that only the connection changes; the answer parsed by httptools,
queued for a reader or pushed to a sink as it comes. Whether it may serve another exchange is
its own rule (``reusable``): only after a complete one."""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Any, Callable, cast

import httptools

from gateway.clock import DEADLINES
from gateway.upstream.errors import UpstreamClosedIdle, UpstreamError, UpstreamTimeout
from gateway.upstream.messages import LAST_CHUNK, NO_BODY_STATUS, Body, Framing, Headers, chunk

HIGH_WATER = 256 * 1024


class _Unsolicited(Exception):
    """Stops the parser at an answer nobody asked for."""


class State(enum.Enum):
    IDLE = "idle"  # open, between exchanges
    WAITING = "waiting"  # a request is going or went out; not a byte of the answer yet
    HEAD = "head"  # the answer's head is arriving
    BODY = "body"  # the head is in, the body is arriving
    DONE = "done"  # the answer is complete
    CLOSED = "closed"


class Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream. An exchange is ``start`` (a bodiless request, its
    answer pushed to a sink) or ``send`` (a request with any body, its answer queued for
    ``take_body``/``next_chunk``), and ends with ``finish``, which keeps the connection for the
    next exchange only if this one was complete."""

    def __init__(self, read_timeout: float, on_lost: Callable[["Connection"], None]) -> None:
        self.read_timeout = read_timeout  # seconds the upstream may stay silent while it owes bytes
        self.on_lost = on_lost
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.state = State.IDLE
        self.lost_in: State | None = None  # the state the connection was lost in
        self.uses = 0  # exchanges begun on it; more than one: it came from the pool
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
        self.error: UpstreamError | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.deadline: float | None = None  # loop time by which the upstream must send (gateway.clock)
        self.sink: Any = None  # set: the answer is pushed to it as it comes (serve.fastpath), not queued
        self.paused = False  # by the sink, whose reader cannot keep up
        self.request_sent = False  # the whole request, body included, went out (else: never reused)

    # --- an exchange ---------------------------------------------------------------------------

    def start(self, method: str, head: bytes, sink: Any) -> None:
        """A bodiless request (``head`` is all of it); the answer is pushed to ``sink``
        (``upstream_head``, ``upstream_body``, ``upstream_done``, ``upstream_failed``)."""
        self._begin(method, sink)
        if self.transport is None or self.state is State.CLOSED:
            self._fail(UpstreamError("upstream closed the connection"))
            return
        self.transport.write(head)  # a few hundred bytes: never worth waiting for
        self.request_sent = True
        self._arm()

    async def send(self, method: str, head: bytes, framing: Framing, body: Body) -> None:
        """Send a request and its body (streamed as it comes); returns once the answer's head is
        in. An answer before the whole body went out stops the sending: such an exchange is
        never complete, and the connection is closed when it finishes."""
        self._begin(method, None)
        try:
            if isinstance(body, bytes):
                await self._write(head + body)
                self.request_sent = True
            elif body is None:
                await self._write(head)
                self.request_sent = True
            else:
                await self._write(head)
                async for piece in body:
                    if self.state is not State.WAITING:
                        break  # the upstream answered early (or went): stop sending
                    if piece:
                        await self._write(piece if framing is Framing.STREAM else chunk(piece))
                else:
                    if framing is Framing.CHUNKED:
                        await self._write(LAST_CHUNK)
                    self.request_sent = True
            self._arm()
            assert self.headers_done is not None  # made by _begin without a sink
            await self.headers_done
        except BaseException:
            self.close()
            raise
        finally:
            self._disarm()

    def finish(self) -> bool:
        """The exchange is over for its reader: ready for the next one (True) if it was complete,
        else closed (False)."""
        self.sink = None
        self._disarm()
        if self.paused:
            self.resume()  # a kept connection must be read (an answer, or the upstream closing)
        if self.reusable:
            self.state = State.IDLE
            return True
        self.close()
        return False

    @property
    def reusable(self) -> bool:
        """A complete exchange: the request sent in full, its answer read in full, allowing
        keep-alive. Anything less (an early answer to a body not sent whole, a client gone
        mid-body) would leave the upstream expecting bytes that the next request would supply."""
        return (self.request_sent and self.state is State.DONE and self.keep_alive and not self.chunks
                and not self.until_close)

    def _begin(self, method: str, sink: Any) -> None:
        if self.head_only:  # the parser still expects the body a HEAD answer announced
            self.parser = httptools.HttpResponseParser(self)
        self.uses += 1
        self.state = State.WAITING
        self.head_only = method == "HEAD"
        self.status = 0
        self.headers = []
        self.until_close = self.keep_alive = self.framed = self.request_sent = False
        self.headers_done = None if sink is not None else self.loop.create_future()
        self.chunks.clear()
        self.buffered = 0
        self.error = None
        self.sink = sink

    async def _write(self, data: bytes) -> None:
        if self.state is State.CLOSED or self.transport is None:
            raise self.error or UpstreamError("upstream closed the connection")
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    # --- reading the answer --------------------------------------------------------------------

    def take_body(self) -> bytes | None:
        """The whole body if it has all arrived, else None."""
        if not self._ended:
            return None
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        return data

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body; None at its end."""
        while True:
            if self.chunks:
                piece = self.chunks.popleft()
                self.buffered -= len(piece)
                if self.buffered < HIGH_WATER // 2 and self.transport is not None and self.state is not State.CLOSED:
                    self.transport.resume_reading()
                return piece
            if self._ended:
                return None
            if self.error is not None:
                raise self.error
            self.wakeup = self.loop.create_future()
            self._arm()
            try:
                await self.wakeup
            finally:
                self.wakeup = None

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
                if self.state is not State.DONE and self.state is not State.IDLE:
                    self._arm()

    def close(self) -> None:
        self._disarm()
        if self.transport is not None and self.state is not State.CLOSED:
            self.transport.close()
        self.state = State.CLOSED

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        DEADLINES.watch(self)

    def data_received(self, data: bytes) -> None:
        self._disarm()
        if self.state is State.IDLE:  # bytes nobody asked for: they would pass for the next answer
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.state is State.DONE:  # the answer is whole; its reader finishes (and closes) it
                return
            if self.state is not State.IDLE:  # IDLE: already finished by the sink, nothing to fail
                self._fail(UpstreamError("invalid response from upstream"))
            self.close()
            return
        if self.sink is not None and not self.paused and self.state is not State.DONE \
                and self.state is not State.CLOSED and self.state is not State.IDLE:
            self._arm()  # the next bytes must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        DEADLINES.unwatch(self)
        self.deadline = None
        was = self.lost_in = self.state
        self.on_lost(self)
        if was is State.BODY and self.until_close:  # a body delimited by the end of the connection
            self.state = State.DONE
            self._wake()
            if self.sink is not None:
                self.sink.upstream_done(self)
        else:
            self.state = State.CLOSED
            if was is State.WAITING and self.uses > 1:
                self._fail(UpstreamClosedIdle("upstream closed a kept-alive connection"))
            elif was is not State.DONE and was is not State.IDLE:
                self._fail(UpstreamError("upstream closed the connection"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- httptools callbacks ---------------------------------------------------------------------

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

    # --- helpers ---------------------------------------------------------------------------------

    @property
    def _ended(self) -> bool:
        """The whole answer is in (the connection may have gone since)."""
        return self.state is State.DONE or (self.state is State.CLOSED and self.lost_in is State.DONE)

    def _wake(self) -> None:
        w = self.wakeup
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: UpstreamError) -> None:
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

    def _arm(self) -> None:
        self.deadline = self.loop.time() + self.read_timeout

    def _disarm(self) -> None:
        self.deadline = None
