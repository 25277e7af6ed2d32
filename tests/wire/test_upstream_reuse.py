"""An upstream connection goes back to the pool only after a complete exchange: the request sent
in full and the answer read in full, allowing keep-alive. Any other end closes it, so that no
client can make an upstream read bytes it sent as part of another client's request.

Against a Node ``http`` server (which reads and discards a body its handler left unread, keeping
the connection open) and the Python one, on both ways of serving."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import Gateway


@pytest.fixture(scope="module", params=["node", "python"])
def upstream(request, node_upstream, up):
    """``(name, base url)`` of the functions upstream under test."""
    return (request.param, node_upstream.url if request.param == "node" else up.urls["functions"])


@pytest.fixture(scope="module")
def gw(gateways, upstream, serving) -> Gateway:
    return gateways(GATEWAY_UPSTREAMS__FUNCTIONS=upstream[1], GATEWAY_UPSTREAMS__FUNCTIONS_TIMEOUT="3", **serving)


def connect(gw: Gateway) -> socket.socket:
    parts = urlsplit(gw.url)
    s = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return s


def read_answer(s: socket.socket) -> tuple[int, bytes]:
    """Status and body of one answer with Content-Length (or until the connection ends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while length is not None and len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def early_answer_with_body_cut_short(gw: Gateway, declared: int = 100_000) -> tuple[int, bytes]:
    """POST with ``Content-Length: declared``: one byte, the upstream answers without reading,
    one more byte, the answer; the rest of the body never comes (the client goes)."""
    s = connect(gw)
    try:
        s.sendall(b"POST /functions/v1/early HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\n\r\nA" % declared)
        time.sleep(0.5)  # the upstream answers meanwhile
        s.sendall(b"B")
        return read_answer(s)
    finally:
        s.close()


def test_an_early_answer_never_leaves_its_connection_in_the_pool(gw, upstream, node_upstream):
    name, _ = upstream
    if name == "node":
        node_upstream.record(clear=True)
    status, body = early_answer_with_body_cut_short(gw)
    assert status == 200 and json.loads(body)["early"] is True
    # Another client's request: with the connection pooled, the upstream would read it as the rest
    # of the first request's body (Node: swallowed whole, so this one would time out).
    r = httpx.post(gw.url + "/functions/v1/next", content=b"hello", timeout=10)
    assert r.status_code == 200, r.text
    echo = r.json()
    if name == "node":
        assert echo["url"] == "/next" and echo["bodyLength"] == 5
        record = node_upstream.record()
        early = next(q for q in record["requests"] if q["url"] == "/early")
        assert echo["socket"] != early["socket"]  # a fresh connection, not the one left owed bytes
        deadline = time.monotonic() + 5
        while early["socket"] not in record["closed"] and time.monotonic() < deadline:
            time.sleep(0.05)
            record = node_upstream.record()
        assert early["socket"] in record["closed"]  # the gateway closed it
        assert [q["url"] for q in record["requests"]] == ["/early", "/next"]
    else:
        assert echo["path"] == "/next" and echo["body_length"] == 5


def test_a_request_smuggled_in_a_body_is_never_executed(gw, upstream, node_upstream):
    """The attack of the issue: after the cut-short exchange, a request of the attacker whose
    body holds a whole request of its own. Whatever the upstream reads, it never runs ``/smuggled``."""
    name, _ = upstream
    if name == "node":
        node_upstream.record(clear=True)
    early_answer_with_body_cut_short(gw, declared=300)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Injected: 1\r\n\r\n"
    for padding in range(0, 300, 60):  # the attacker cannot know the alignment: it tries several
        r = httpx.post(gw.url + "/functions/v1/carrier", content=b"x" * padding + smuggled, timeout=10)
        assert r.status_code == 200, r.text
    if name == "node":
        urls = [q["url"] for q in node_upstream.record()["requests"]]
        assert "/smuggled" not in urls and urls.count("/carrier") == 5
