"""One upstream connection fed bytes on a mock transport (the way uvicorn tests its protocols):
the states of an exchange, the answer queued or pushed to a sink, and the rule that it serves
another exchange only after a complete one: the request sent in full, the answer read in full
and nothing beyond it, keep-alive allowed."""

from __future__ import annotations

import asyncio

import pytest

from gateway.upstream.connection import HIGH_WATER, Connection, State
from gateway.upstream.errors import UpstreamClosedIdle, UpstreamError
from gateway.upstream.messages import Framing

GET = b"GET / HTTP/1.1\r\nhost: u\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


class MockTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class Sink:
    """Records what a connection pushes to it (as the fast path receives it)."""

    def __init__(self, release_on_done: bool = False) -> None:
        self.events: list[tuple] = []
        self.release_on_done = release_on_done

    def upstream_head(self, conn):
        self.events.append(("head", conn.status))

    def upstream_body(self, piece):
        self.events.append(("body", piece))

    def upstream_done(self, conn):
        self.events.append(("done",))
        if self.release_on_done:
            conn.finish()

    def upstream_failed(self, conn, e):
        self.events.append(("failed", type(e).__name__))


def fed() -> tuple[Connection, MockTransport, list[Connection]]:
    lost: list[Connection] = []
    conn = Connection(2.0, lost.append)
    transport = MockTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, lost


async def sending(conn: Connection, method: str = "GET", head: bytes = GET, framing: Framing = Framing.NONE,
                  body=None) -> asyncio.Future:
    task = asyncio.ensure_future(conn.send(method, head, framing, body))
    await asyncio.sleep(0)
    return task


async def test_states_of_an_exchange_fed_byte_by_byte():
    conn, transport, _ = fed()
    assert conn.state is State.IDLE
    task = await sending(conn)
    assert conn.state is State.WAITING and transport.written == GET
    states = []
    for i in range(len(OK)):
        conn.data_received(OK[i:i + 1])
        states.append(conn.state)
    await task
    assert states[0] is State.HEAD and State.BODY in states and states[-1] is State.DONE
    assert conn.status == 200 and conn.take_body() == b"hello" and conn.reusable
    assert conn.finish() and conn.state is State.IDLE  # ready for the next exchange


async def test_an_answer_pushed_to_a_sink():
    conn, transport, _ = fed()
    sink = Sink()
    conn.start("GET", GET, sink)
    assert transport.written == GET and conn.deadline is not None  # the upstream must answer in time
    conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
    conn.data_received(b"0\r\n\r\n")
    assert sink.events == [("head", 200), ("body", b"abc"), ("done",)]
    assert conn.finish() and conn.deadline is None


async def test_an_informational_answer_is_skipped():
    conn, _, _ = fed()
    task = await sending(conn, "POST", b"POST / HTTP/1.1\r\n\r\n", Framing.LENGTH, b"")
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert conn.state is State.WAITING  # the body may still go out
    conn.data_received(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
    await task
    assert (conn.status, conn.state) == (201, State.DONE)


async def test_a_complete_answer_to_a_request_not_sent_whole_is_never_reused():
    """The rule against request smuggling: the upstream may still expect body bytes, which the next
    request on the connection would supply. An early answer stops the sending."""
    conn, transport, _ = fed()
    more = asyncio.Event()

    async def body():
        yield b"part"
        await more.wait()
        yield b"never sent"

    task = await sending(conn, "POST", b"POST / HTTP/1.1\r\ncontent-length: 100\r\n\r\n", Framing.STREAM, body())
    await asyncio.sleep(0)
    conn.data_received(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
    more.set()
    await task
    assert conn.state is State.DONE and conn.keep_alive and not conn.reusable
    assert b"never sent" not in transport.written
    assert not conn.finish() and transport.closed and conn.state is State.CLOSED


async def test_bytes_beyond_the_answer_make_the_connection_unusable():
    """An upstream that answers more than it was asked (a body longer than its Content-Length, a
    second response) never gets to answer the next request with it."""
    conn, transport, _ = fed()
    task = await sending(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                       b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    await task
    assert conn.take_body() == b"ok" and not conn.reusable
    conn, transport, _ = fed()  # and on an idle connection
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert transport.closed and conn.state is State.CLOSED


async def test_bytes_beyond_the_answer_close_a_connection_its_sink_already_finished():
    """The fast path's way: the sink finishes the exchange as soon as the answer is complete,
    before the parser has seen what follows."""
    conn, transport, _ = fed()
    sink = Sink(release_on_done=True)
    conn.start("GET", GET, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                       b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert sink.events == [("head", 200), ("body", b"ok"), ("done",)]
    assert transport.closed and conn.state is State.CLOSED


async def test_a_body_until_close_ends_with_the_connection():
    conn, _, lost = fed()
    task = await sending(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    await task
    conn.data_received(b"part two")
    assert conn.state is State.BODY and conn.until_close
    conn.connection_lost(None)
    assert conn.state is State.DONE and not conn.reusable and lost == [conn]
    assert conn.take_body() == b"part one, part two"


async def test_a_kept_alive_connection_lost_before_any_byte_is_the_keep_alive_race():
    conn, _, lost = fed()
    task = await sending(conn)
    conn.data_received(OK)
    await task
    conn.take_body()
    assert conn.finish()
    task = await sending(conn)  # its second exchange: the upstream had just closed it
    conn.connection_lost(None)
    with pytest.raises(UpstreamClosedIdle):
        await task
    fresh, _, _ = fed()
    task = await sending(fresh)  # on a first exchange it is the upstream's failure
    fresh.connection_lost(None)
    with pytest.raises(UpstreamError) as e:
        await task
    assert not isinstance(e.value, UpstreamClosedIdle)


async def test_garbage_from_upstream_fails_the_exchange():
    conn, transport, _ = fed()
    task = await sending(conn)
    conn.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.closed and conn.state is State.CLOSED
    with pytest.raises(UpstreamError):
        await task


async def test_a_silent_upstream_times_out():
    conn, transport, _ = fed()
    sink = Sink()
    conn.start("GET", GET, sink)
    conn.deadline_passed()  # the sweep of gateway.clock, once the deadline is past
    assert sink.events == [("failed", "UpstreamTimeout")] and transport.closed


async def test_reading_pauses_above_the_high_water_mark():
    conn, transport, _ = fed()
    task = await sending(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await task
    conn.data_received(b"%x\r\n%s\r\n" % (HIGH_WATER, b"z" * HIGH_WATER))
    assert transport.paused
    assert len(await conn.next_chunk()) > 0
    while conn.buffered:
        await conn.next_chunk()
    assert not transport.paused
