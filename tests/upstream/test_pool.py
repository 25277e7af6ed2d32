"""The pool against real local servers: keep-alive, streaming both ways, bodies without length,
HEAD/204, a connection the upstream closed, timeouts, refused connections, early answers; and
``outstanding`` counting the requests in flight."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.upstream.errors import UpstreamError, UpstreamTimeout
from gateway.upstream.pool import Pool
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


async def test_an_idle_connection_the_upstream_closed_is_dropped(server):
    p = pool(server)
    r = await p.request("GET", "/small", HOST, None)
    await r.read()
    r.release()
    assert len(p._idle) == 1
    await asyncio.sleep(0.6)  # the server's keep-alive (0.3 s) ends the idle connection
    assert p._idle == []  # noticed and forgotten: the next request makes a new one
    r = await p.request("GET", "/small", HOST, None)
    assert r.status == 200
    r.release()
    assert p.outstanding == 0


async def test_outstanding_counts_the_requests_in_flight(server):
    p = pool(server)
    first = await p.request("GET", "/small", HOST, None)
    second = await p.request("GET", "/small", HOST, None)
    assert p.outstanding == 2
    first.release()
    first.release()  # twice: counted once
    assert p.outstanding == 1
    second.release()
    with pytest.raises(UpstreamError):
        await pool(free_port()).request("GET", "/", HOST, None)
    assert p.outstanding == 0


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
