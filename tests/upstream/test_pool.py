"""The hot-path HTTP client against real local servers: keep-alive, streaming both ways,
bodies without length, HEAD/204, the keep-alive race, timeouts, refused connections."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.upstream.pool import Pool, UpstreamError, UpstreamTimeout
from tests.helpers import free_port

HOST = [(b"host", b"upstream.test")]


@pytest.fixture(scope="module")
async def server():
    async def small(req: web.Request) -> web.Response:
        return web.json_response({"q": req.query_string, "host": req.headers.get("host")})

    async def big(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(req)
        for _ in range(160):
            await resp.write(b"x" * 65536)
        await resp.write_eof()
        return resp

    async def echo(req: web.Request) -> web.Response:
        data = await req.read()
        return web.Response(body=data, headers={
            "x-len": str(len(data)), "x-te": req.headers.get("transfer-encoding", "-"),
            "x-cl": req.headers.get("content-length", "-")})

    async def slow(req: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def empty(req: web.Request) -> web.Response:
        return web.Response(status=204)

    async def early(req: web.Request) -> web.Response:
        return web.Response(text="early")  # the body left unread

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/small", small)
    app.router.add_get("/big", big)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/empty", empty)
    app.router.add_post("/early", early)
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


def pool(port: int, read_timeout: float = 2.0) -> Pool:
    return Pool("127.0.0.1", port, connect_timeout=1.0, read_timeout=read_timeout)


async def test_small_response_and_connection_reuse(server):
    p = pool(server)
    r = await p.request("GET", "/small?a=1&b=%20", HOST, None)
    assert r.status == 200 and r.content_length == len(await r.read())
    r.release()
    assert len(p._idle) == 1
    first = p._idle[0]
    r = await p.request("GET", "/small?a=2", HOST, None)
    assert (await r.read()).startswith(b'{"q": "a=2"')
    r.release()
    assert p._idle == [first]  # the same connection served both


async def test_streamed_chunked_response_then_reuse(server):
    p = pool(server)
    r = await p.request("GET", "/big", HOST, None)
    assert r.content_length is None
    total = 0
    async for chunk in r.stream():
        total += len(chunk)
    r.release()
    assert total == 160 * 65536
    assert len(p._idle) == 1


async def test_request_bodies_bytes_chunked_and_with_length(server):
    p = pool(server)
    r = await p.request("POST", "/echo", HOST, b"abc" * 1000)
    assert dict(r.headers)[b"x-cl"] == b"3000" and await r.read() == b"abc" * 1000
    r.release()

    async def gen():
        for _ in range(50):
            yield b"y" * 100_000

    r = await p.request("POST", "/echo", HOST, gen())
    assert dict(r.headers)[b"x-te"] == b"chunked" and dict(r.headers)[b"x-len"] == b"5000000"
    await r.read()
    r.release()
    r = await p.request("POST", "/echo", HOST + [(b"content-length", b"5000000")], gen())
    assert dict(r.headers)[b"x-cl"] == b"5000000" and dict(r.headers)[b"x-len"] == b"5000000"
    await r.read()
    r.release()


async def test_head_and_204_have_no_body(server):
    p = pool(server)
    r = await p.request("HEAD", "/small", HOST, None)
    assert r.status == 200 and await r.read() == b""
    r.release()
    r = await p.request("GET", "/empty", HOST, None)
    assert r.status == 204 and await r.read() == b""
    r.release()
    r = await p.request("GET", "/small", HOST, None)  # the connection is still in step
    assert r.status == 200
    r.release()


async def test_idle_connection_closed_by_upstream_is_replaced(server):
    p = pool(server)
    r = await p.request("GET", "/small", HOST, None)
    await r.read()
    r.release()
    await asyncio.sleep(0.6)  # the server's keep-alive (0.3 s) ends the idle connection
    r = await p.request("GET", "/small", HOST, None)
    assert r.status == 200
    r.release()


async def test_timeout_and_refused():
    with pytest.raises(UpstreamError):
        await pool(free_port()).request("GET", "/", HOST, None)


async def test_read_timeout(server):
    with pytest.raises(UpstreamTimeout):
        await pool(server, read_timeout=0.3).request("GET", "/slow", HOST, None)


async def test_body_delimited_by_connection_close():
    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    port = free_port()
    srv = await asyncio.start_server(raw, "127.0.0.1", port)
    try:
        p = pool(port)
        r = await p.request("GET", "/", HOST, None)
        assert r.content_length is None and await r.read() == b"until the end"
        r.release()
        assert p._idle == []
    finally:
        srv.close()


# --- the request head, a pure function ------------------------------------------------------------

from gateway.upstream.connection import Connection, Framing, State, request_head  # noqa: E402


async def _gen():
    yield b"x"


def test_request_head_for_each_kind_of_body():
    head, framing = request_head("GET", "/t?a=1", HOST + [(b"content-length", b"9")], None)
    assert head == b"GET /t?a=1 HTTP/1.1\r\nhost: upstream.test\r\n\r\n" and framing is Framing.NONE
    head, framing = request_head("POST", "/t", HOST + [(b"content-length", b"9")], b"abc")
    assert head == b"POST /t HTTP/1.1\r\nhost: upstream.test\r\ncontent-length: 3\r\n\r\n"
    assert framing is Framing.LENGTH
    head, framing = request_head("PUT", "/t", HOST + [(b"content-length", b"9")], _gen())
    assert head.endswith(b"content-length: 9\r\n\r\n") and framing is Framing.STREAM
    head, framing = request_head("PUT", "/t", HOST, _gen())
    assert head.endswith(b"transfer-encoding: chunked\r\n\r\n") and framing is Framing.CHUNKED


# --- the connection's states, fed bytes on a mock transport ------------------------------------------


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


def fed_connection() -> tuple[Connection, MockTransport]:
    conn = Connection(pool(1))
    transport = MockTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def test_states_of_an_exchange_fed_byte_by_byte():
    conn, _ = fed_connection()
    assert conn.state is State.IDLE
    conn.begin("GET")
    assert conn.state is State.WAITING
    conn.request_done()
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    states = []
    for i in range(len(answer)):
        conn.data_received(answer[i:i + 1])
        states.append(conn.state)
    assert states[0] is State.HEAD and State.BODY in states and states[-1] is State.DONE
    assert conn.status == 200 and conn.take_body() == b"hello" and conn.reusable


async def test_an_informational_answer_is_skipped():
    conn, _ = fed_connection()
    conn.begin("POST")
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert conn.state is State.WAITING  # the body may still go out
    conn.data_received(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
    assert (conn.status, conn.state) == (201, State.DONE)


async def test_a_complete_answer_to_a_request_not_sent_whole_is_never_reused():
    """The rule against request smuggling: the upstream may still expect body bytes, which the next
    request on the connection would supply."""
    conn, _ = fed_connection()
    conn.begin("POST")  # the head and part of a body went out; the rest never will
    conn.data_received(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
    assert conn.state is State.DONE and conn.keep_alive and not conn.reusable
    conn.request_done()
    assert conn.reusable


async def test_bytes_beyond_the_answer_make_the_connection_unusable():
    """An upstream that answers more than it was asked (a body longer than its Content-Length, a
    second response) never gets to answer the next request with it."""
    conn, transport = fed_connection()
    conn.begin("GET")
    conn.request_done()
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                       b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert conn.take_body() == b"ok" and not conn.reusable
    conn, transport = fed_connection()  # and on an idle connection
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert transport.closed and conn.state is State.CLOSED


async def test_bytes_beyond_the_answer_close_a_connection_its_sink_already_released():
    """The fast path's way: the answer is pushed to a sink, which releases the connection as soon as
    it is complete, before the parser has seen what follows."""
    conn, transport = fed_connection()

    class Sink:
        def upstream_head(self, conn): pass
        def upstream_body(self, chunk): pass
        def upstream_failed(self, conn, exc): raise AssertionError("the answer was good")
        def upstream_done(self, conn): conn.pool.release(conn)

    conn.pool.outstanding += 1
    conn.begin("GET", Sink())
    conn.request_done()
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                       b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged")
    assert transport.closed and conn.state is State.CLOSED and conn.pool.take_idle() is None


async def test_an_early_answer_closes_the_connection_instead_of_pooling_it(server):
    """A streamed body the upstream answers before reading: sending stops, the connection is closed."""
    p = pool(server)
    answered = asyncio.Event()

    async def body():
        yield b"first"
        await answered.wait()
        yield b"second"
        yield b"third"

    task = asyncio.ensure_future(p.request("POST", "/early", HOST + [(b"content-length", b"1000")], body()))
    await asyncio.sleep(0.3)  # the upstream has answered meanwhile
    answered.set()
    r = await task
    assert r.status == 200 and await r.read() == b"early"
    r.release()
    assert p._idle == []  # closed, not pooled


async def test_a_body_until_close_ends_with_the_connection():
    conn, _ = fed_connection()
    conn.begin("GET")
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    conn.data_received(b"part two")
    assert conn.state is State.BODY and conn.until_close
    conn.connection_lost(None)
    assert conn.state is State.DONE and not conn.reusable
    assert conn.take_body() == b"part one, part two"


async def test_lost_before_any_byte_is_the_keep_alive_race_not_an_answer():
    conn, _ = fed_connection()
    conn.begin("GET")
    conn.connection_lost(None)
    assert (conn.state, conn.lost_in) == (State.CLOSED, State.WAITING)
    with pytest.raises(UpstreamError):
        await conn.headers_done


async def test_garbage_from_upstream_fails_the_exchange():
    conn, transport = fed_connection()
    conn.begin("GET")
    conn.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.closed and conn.state is State.CLOSED
    with pytest.raises(UpstreamError):
        await conn.headers_done


async def test_reading_pauses_above_the_high_water_mark():
    from gateway.upstream.connection import HIGH_WATER

    conn, transport = fed_connection()
    conn.begin("GET")
    conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    conn.data_received(b"%x\r\n%s\r\n" % (HIGH_WATER, b"z" * HIGH_WATER))
    assert transport.paused
    assert len(await conn.next_chunk(1.0)) > 0
    while conn.buffered:
        await conn.next_chunk(1.0)
    assert not transport.paused
