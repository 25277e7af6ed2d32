"""Requests with bodies fed to the listener as bytes, with and without its fast path: the same
answer to the client, the same bytes at the upstream, and the same fate for the upstream
connection (back in the pool after a complete exchange, closed after any other end). Bodies sent
whole, in pieces, cut short, with the client gone mid-body, behind ``Expect: 100-continue``,
chunked with trailers, and answered early by the upstream."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.harness import Client, parse, without_request_ids

LOSE = object()  # the client goes away here
VOLATILE = {b"date", b"content-length", b"transfer-encoding"}


def head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "apikey: {sec}", "Content-Type: text/plain", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


CASES = {
    "length, whole": [head("/rest/v1/bodies", "Content-Length: 11") + b"hello world"],
    "length, in pieces": [head("/rest/v1/bodies", "Content-Length: 11"), b"hel", b"lo wo", b"rld"],
    "length, cut short": [head("/rest/v1/bodies", "Content-Length: 100"), b"only part", LOSE],
    "length, client gone before the body": [head("/rest/v1/bodies", "Content-Length: 100"), LOSE],
    "expect 100-continue": [head("/rest/v1/bodies", "Content-Length: 5", "Expect: 100-continue"), b"hello"],
    "chunked with trailers": [head("/rest/v1/bodies", "Transfer-Encoding: chunked"), b"5\r\nhello\r\n",
                              b"6\r\n world\r\n", b"0\r\nX-Trailer: t\r\n\r\n"],
    "chunked, cut short": [head("/rest/v1/bodies", "Transfer-Encoding: chunked"), b"5\r\nhello\r\n", LOSE],
    "early answer, body in pieces": [head("/functions/v1/early", "Content-Length: 100"), b"a", b"b", b"c"],
    "early answer, then gone": [head("/functions/v1/early", "Content-Length: 100"), b"a", b"b", LOSE],
    "empty body": [head("/rest/v1/bodies", "Content-Length: 0")],
}


async def until(condition, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)


async def run(proxy, keys, up, pieces: list, fast: bool) -> dict[str, object]:
    """What the client got, what reached the upstream, and whether its connection was kept."""
    service = "functions" if b"/functions/" in pieces[0] else "rest"
    pool = proxy.decider.upstreams[service].pool
    await pool.close()  # no idle connection: this exchange makes the only one
    up.received.clear()
    c = Client(proxy, fast=fast)
    lost = False
    for i, piece in enumerate(pieces):
        if piece is LOSE:
            c.protocol.connection_lost(None)
            lost = True
            break
        c.send(piece.replace(b"{sec}", keys["secret"].encode()))
        await asyncio.sleep(0.05)  # each piece in its own read, the upstream meanwhile answering
        if service == "functions" and i > 0:  # the request went up with its first body bytes: the
            await until(lambda: any(b"/early" in r for r in list(up.received)))  # answer comes before more
    if lost:
        await asyncio.sleep(0.3)
        answers = parse(without_request_ids(c.transport.buffer.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"")))
    else:
        await c.responses(1)
        answers = parse(without_request_ids(c.transport.buffer.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"")))
        c.protocol.connection_lost(None)
    await asyncio.sleep(0.05)
    return {
        "answers": [(status, {k: v for k, v in h.items() if k not in VOLATILE}, body) for status, h, body in answers],
        "upstream": [r.split(b"\n", 1)[0] + b" " + r.rpartition(b"\n")[2] for r in list(up.received)],
        "kept": len([conn for conn in pool._idle if conn.reusable or conn.state.name == "IDLE"]),
        "outstanding": pool.outstanding,
    }


@pytest.mark.parametrize("case", list(CASES))
async def test_a_request_with_a_body_is_handled_alike_both_ways(memory_proxy, up, case):
    proxy, keys = memory_proxy
    via_fast = await run(proxy, keys, up, CASES[case], fast=True)
    via_asgi = await run(proxy, keys, up, CASES[case], fast=False)
    assert via_fast == via_asgi
    assert via_fast["outstanding"] == 0
    complete = LOSE not in CASES[case] and "early" not in case
    assert via_fast["kept"] == (1 if complete else 0)  # reused only after a complete exchange
    if complete:
        assert via_fast["answers"][0][0] == b"HTTP/1.1 200 OK"


def framed(body: bytes, chunked: bool, splits: list[int]) -> list[bytes]:
    """The body's bytes on the wire, cut at ``splits`` (offsets into the framed bytes)."""
    if chunked:
        wire = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]) if part) + b"0\r\n\r\n"
    else:
        wire = body
    cuts = sorted({s % (len(wire) + 1) for s in splits} | {0, len(wire)})
    return [wire[a:b] for a, b in zip(cuts, cuts[1:])]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=3000), chunked=st.booleans(), splits=st.lists(st.integers(0, 4000), max_size=3),
       cut=st.none() | st.integers(0, 3), early=st.booleans())
async def test_any_body_is_handled_alike_both_ways(memory_proxy, up, body, chunked, splits, cut, early):
    proxy, keys = memory_proxy
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    pieces: list = [head("/functions/v1/early" if early else "/rest/v1/bodies", framing),
                    *framed(body, chunked, splits)]
    if cut is not None and cut < len(pieces) - 1:
        pieces = [*pieces[:cut + 1], LOSE]
    assert await run(proxy, keys, up, pieces, fast=True) == await run(proxy, keys, up, pieces, fast=False)
