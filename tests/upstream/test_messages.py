"""gateway.upstream.messages as a pure function: the request head for each kind of body."""

from __future__ import annotations

from gateway.upstream.messages import Framing, chunk, request_head

HOST = [(b"host", b"upstream.test")]


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


def test_a_chunk():
    assert chunk(b"hello") == b"5\r\nhello\r\n" and chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
