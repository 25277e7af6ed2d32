"""Bytes on the wire: large bodies streamed both ways (and provably not buffered), upstream
failures (502, 503, 504), header limits (431)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import httpx
import pytest

from tests.factories import AUTH_USER_JWK, es256, user_claims
from tests.helpers import assert_refused
from tests.upstreams import pattern_bytes, raw_request, within

MB = 1024 * 1024


@pytest.fixture(scope="module")
def gw(gateways, up, serving):
    """rest answers slowly past a 1 s timeout; storage and realtime point at a closed port;
    meta and auth are not configured."""
    closed = f"http://127.0.0.1:{up.closed_port}"
    return gateways(
        GATEWAY_UPSTREAMS__TIMEOUT="1",
        GATEWAY_UPSTREAMS__FUNCTIONS_TIMEOUT="4",
        GATEWAY_UPSTREAMS__STORAGE=closed,
        GATEWAY_UPSTREAMS__REALTIME=closed,
        GATEWAY_UPSTREAMS__META=None,
        GATEWAY_UPSTREAMS__AUTH=None,
        **serving,
    )


# --- upstream failures ------------------------------------------------------------------------------


def test_502_when_the_upstream_is_unreachable(client, pub, up):
    r = client.get("/storage/v1/object/a", headers={"apikey": pub})
    assert_refused(r, 502, "UPSTREAM_UNAVAILABLE")
    assert r.json()["message"] == "Upstream unreachable"
    assert str(up.closed_port) not in r.text  # no internal address in the answer
    assert_refused(client.get("/realtime/v1/api/ping", headers={"apikey": pub}), 502, "UPSTREAM_UNAVAILABLE")
    assert_refused(client.get("/storage/v1/object/public/a"), 502, "UPSTREAM_UNAVAILABLE")  # no key needed to fail


def test_websocket_502_and_503(gw, pub, sec):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for path, key, status, code in (("/realtime/v1/websocket", pub, 502, "UPSTREAM_UNAVAILABLE"),
                                    ("/pg/socket", sec, 503, "UPSTREAM_NOT_CONFIGURED")):
        with pytest.raises(InvalidStatus) as e:
            with connect(f"{gw.ws_url}{path}?apikey={key}&vsn=1.0.0", open_timeout=10):
                pass
        assert e.value.response.status_code == status
        assert e.value.response.headers["sb-error-code"] == code


def test_503_when_the_upstream_is_not_configured(client, sec):
    r = client.get("/pg/tables", headers={"apikey": sec})
    assert_refused(r, 503, "UPSTREAM_NOT_CONFIGURED")
    assert r.json()["hint"] == "Set upstreams.meta (GATEWAY_UPSTREAMS__META) to enable /pg."
    assert_refused(client.get("/auth/v1/verify"), 503, "UPSTREAM_NOT_CONFIGURED")


def test_user_jwt_es256_refused_when_no_auth_jwks(client, pub):
    r = client.get("/rest/v1/todos", headers={"apikey": pub,
                                              "Authorization": f"Bearer {es256(user_claims(), AUTH_USER_JWK)}"})
    assert r.status_code == 401
    assert r.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_JWT"


def test_504_when_the_upstream_is_too_slow(client, pub):
    r = client.get("/rest/v1/slow", params={"seconds": "4"}, headers={"apikey": pub})
    assert_refused(r, 504, "UPSTREAM_TIMEOUT")
    assert r.json()["message"] == "Upstream timed out"
    # The gateway is fine afterwards.
    assert client.get("/rest/v1/todos", headers={"apikey": pub}).status_code == 200


def test_timeouts_are_per_service(client, pub):
    """Edge Functions get their own (longer) timeout: what is too slow for rest is fine there."""
    r = client.get("/rest/v1/slow", params={"seconds": "1.6"}, headers={"apikey": pub})
    assert r.status_code == 504
    r = client.get("/functions/v1/slow", params={"seconds": "1.6"}, headers={"apikey": pub})
    assert r.status_code == 200, r.text


def test_upstream_errors_pass_through_as_they_are(client):
    """A function without a key gets the client's bearer untouched; the runtime's own 401 (not
    the gateway's) comes back unchanged."""
    r = client.get("/functions/v1/f", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    assert "sb-error-code" not in r.headers
    assert r.json()["code"] == "PGRST301"


# --- large bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [False, True], ids=["chunked", "content-length"])
def test_large_streamed_response(client, pub, length):
    size = 20 * MB + 123
    params = {"size": str(size), **({"length": "1"} if length else {})}
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", "/functions/v1/stream", params=params, headers={"apikey": pub}) as r:
        assert r.status_code == 200
        if length:
            assert r.headers["content-length"] == str(size)
        else:
            assert r.headers.get("transfer-encoding") == "chunked"
        for chunk in r.iter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(pattern_bytes(size)).hexdigest()


def test_large_response_through_a_short_timeout_service(client, pub):
    """The timeout is for silence, not for the whole transfer."""
    with client.stream("GET", "/rest/v1/stream", params={"size": str(8 * MB)}, headers={"apikey": pub}) as r:
        assert sum(len(c) for c in r.iter_raw()) == 8 * MB


def test_response_is_streamed_not_buffered(client, pub, up):
    """The first bytes reach the client while the upstream is still holding back the rest."""
    hold = uuid.uuid4().hex
    with client.stream("GET", "/functions/v1/stream-hold", params={"id": hold}, headers={"apikey": pub}) as r:
        assert r.status_code == 200
        chunks = r.iter_raw()
        first = next(chunks)
        assert first == b"first;"
        up.release(hold)
        assert first + b"".join(chunks) == b"first;last"


def test_client_going_away_stops_the_upstream_stream(gw, pub, up):
    """An endless response (think server-sent events) must not be read on after the client left."""
    stream_id = uuid.uuid4().hex
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        with c.stream("GET", "/functions/v1/stream", params={"id": stream_id}, headers={"apikey": pub}) as r:
            got = 0
            for chunk in r.iter_raw():
                got += len(chunk)
                if got > 4 * MB:
                    break
    within(10, lambda: stream_id in up.streams_cut)


def test_clients_that_stop_reading_hold_the_upstream_back_not_the_gateways_memory(gw, pub):
    """Endless answers to clients that read nothing: what the gateway holds for them is bounded
    by flow control (the kernel's socket buffers aside), not by how fast the upstream sends."""
    import socket

    import psutil

    worker = psutil.Process(gw.proc.pid)
    before = worker.memory_info().rss
    streams = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.sendall(f"GET /functions/v1/stream?id={uuid.uuid4().hex} HTTP/1.1\r\nHost: x\r\n"
                      f"apikey: {pub}\r\n\r\n".encode())
            assert s.recv(1024).startswith(b"HTTP/1.1 200")
            streams.append(s)
        time.sleep(2)  # the upstreams send as fast as they are let
        grown = (worker.memory_info().rss - before) / MB
    finally:
        for s in streams:
            s.close()
    assert grown < 45, f"the gateway grew {grown:.0f} MB for 20 streams nobody reads"


def test_large_streamed_upload(client, pub):
    size = 10 * MB + 7
    body = pattern_bytes(size)

    def gen():
        for i in range(0, size, 256 * 1024):
            yield body[i:i + 256 * 1024]

    r = client.post("/functions/v1/upload", content=gen(), headers={"apikey": pub})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["body_length"] == size
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["chunked"] is True

    r = client.put("/functions/v1/upload", content=body, headers={"apikey": pub})
    echo = r.json()
    assert echo["body_length"] == size
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["chunked"] is False
    assert [v for k, v in echo["headers"] if k.lower() == "content-length"] == [str(size)]


def test_upload_is_streamed_not_buffered(client, pub, up):
    """The upstream gets the first bytes of a body before the client has sent the rest."""
    upload = uuid.uuid4().hex
    arrived = up.first_chunk_arrived(upload)
    waited: list[bool] = []

    def gen():
        yield b"a" * 65536
        waited.append(arrived.wait(30))
        yield b"b" * 65536

    r = client.post("/functions/v1/upload-hold", params={"id": upload}, content=gen(), headers={"apikey": pub})
    assert r.status_code == 200, r.text
    assert waited == [True]
    assert r.json()["body_length"] == 2 * 65536


# --- limits -------------------------------------------------------------------------------------------


def test_431_more_than_100_headers(gw, pub):
    base = [("apikey", pub)]  # http.client adds Host: two headers so far
    ok = raw_request(gw.url, "GET", "/rest/v1/todos", base + [(f"x-h{i}", "v") for i in range(98)])
    assert ok.status == 200, ok.body
    r = raw_request(gw.url, "GET", "/rest/v1/todos", base + [(f"x-h{i}", "v") for i in range(99)])
    assert r.status == 431
    assert r.header("sb-error-code") == "REQUEST_HEADERS_TOO_LARGE"
    assert r.json()["message"] == "Request header fields too large"


def test_431_more_than_32_kib_of_headers(gw, pub):
    r = raw_request(gw.url, "GET", "/rest/v1/todos", [("apikey", pub), ("x-big", "a" * 33 * 1024)])
    assert r.status == 431
    assert r.header("sb-error-code") == "REQUEST_HEADERS_TOO_LARGE"
    r = raw_request(gw.url, "GET", "/rest/v1/todos", [("apikey", pub), ("x-big", "a" * 30 * 1024)])
    assert r.status == 200
    # no key needed to be refused, and the limit holds for preflights too
    r = raw_request(gw.url, "OPTIONS", "/rest/v1/todos", [("Origin", "http://x"), ("Access-Control-Request-Method",
                                                                                     "GET"), ("x-big", "a" * 40000)])
    assert r.status == 431


def test_many_concurrent_requests(gw, pub):
    """Keep-alive pooling does not mix up answers between concurrent requests."""
    results: dict[int, int] = {}

    def worker(n: int) -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as c:
            for i in range(10):
                r = c.get(f"/functions/v1/n{n}_{i}", headers={"apikey": pub})
                assert r.json()["path"] == f"/n{n}_{i}"
                results[n] = i

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: 9 for n in range(8)}
