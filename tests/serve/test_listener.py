"""docs/requests.md, slow and idle clients, on the wire: a request head dribbled byte by byte is
cut off with 408, idle keep-alive connections are closed, and past the connection cap a new
connection is answered 503 while the ones held keep working. A real gateway, real sockets."""

from __future__ import annotations

import json
import socket
import time

import pytest

HEAD_TIMEOUT = 1.0
KEEPALIVE = 1.5
CAP = 5


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_SERVER__HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
                    GATEWAY_SERVER__KEEPALIVE_SECONDS=str(KEEPALIVE), GATEWAY_SERVER__MAX_CONNECTIONS=str(CAP))


def connect(gw) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    return s


def read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def read_response(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_dribbled_head_is_cut_off_with_408(gw):
    s = connect(gw)
    sent = 0
    started = time.monotonic()
    try:
        for byte in HEALTH[:-2]:  # never finishes the head
            s.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.1)
            if time.monotonic() - started > HEAD_TIMEOUT * 6:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"sb-error-code: REQUEST_TIMEOUT" in answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["message"] == "Request header timeout"
    assert sent < len(HEALTH) - 2  # cut off before the client was done


def test_a_connection_that_sends_nothing_is_closed(gw):
    s = connect(gw)
    assert read_all(s) == b""  # closed without an answer: there was no request
    s.close()


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(gw):
    s = connect(gw)
    for _ in range(3):  # requests less than the keep-alive apart keep it open
        s.sendall(HEALTH)
        assert read_response(s).startswith(b"HTTP/1.1 200")
        time.sleep(KEEPALIVE / 3)
    assert read_all(s) == b""  # then idle: closed by the gateway
    s.close()


def test_past_the_connection_cap_new_connections_get_503(gw):
    held = [connect(gw) for _ in range(CAP)]
    try:
        for s in held:  # each is a real, working connection
            s.sendall(HEALTH)
            assert read_response(s).startswith(b"HTTP/1.1 200")
        extra = connect(gw)
        answer = read_all(extra)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"sb-error-code: TOO_MANY_CONNECTIONS" in answer
        held[0].sendall(HEALTH)  # the ones held still work
        assert read_response(held[0]).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)  # the gateway sees them go
    s = connect(gw)
    s.sendall(HEALTH)
    assert read_response(s).startswith(b"HTTP/1.1 200")  # room again
    s.close()
    assert gw.proc.poll() is None  # never a crash
