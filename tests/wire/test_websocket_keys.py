"""Realtime sockets never outlive their key (docs/protection.md): every change that refuses a key over HTTP
(deletion, expiry passing, restrictions changed, the legacy switch) closes the sockets opened
with it within 1 s, on every instance, with close code 1008 and the refusal's message as the
reason, to the client and to Realtime alike; and a ``phx_join`` sent as the change lands gets
no minted JWT (the Realtime stand-in keeps every text frame it received)."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.factories import LEGACY_ANON, hs256, user_claims
from tests.upstreams import within

ORIGIN = "https://app.example.com"


def ws(gw, key: str, conn_id: str, **kw):
    return connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=2.0.0&conn={conn_id}", open_timeout=10,
                   close_timeout=10, **kw)


def join(token: str, ref: str) -> str:
    return json.dumps([ref, ref, "realtime:room", "phx_join", {"access_token": token}])


def opened(gw, key: str, **kw):
    """A socket opened with ``key`` and a channel joined with it (its JWT minted): (socket, conn id)."""
    conn_id = uuid.uuid4().hex
    conn = ws(gw, key, conn_id, **kw)
    conn.send(join(key, "1"))
    echoed = json.loads(conn.recv(timeout=10))
    assert echoed[4]["access_token"].startswith("eyJ")
    return conn, conn_id


def close_seen(conn, seconds: float = 5) -> tuple[int, str]:
    """Read until the gateway closes the socket: its close code and reason."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            conn.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as e:
        assert e.rcvd is not None, "closed without a close frame"
        return e.rcvd.code, e.rcvd.reason


def late_join(conn, token: str) -> None:
    """A join sent as the change lands (the socket may be closing already)."""
    try:
        conn.send(join(token, "late"))
    except ConnectionClosed:
        pass


def assert_closed_everywhere(up, conn, conn_id: str, reason: str, since: float, sent: str) -> None:
    """Closed within 1 s of ``since`` with 1008 and ``reason`` on both sides; the late join (if it
    reached Realtime at all) carried no JWT the gateway minted."""
    code_reason = close_seen(conn)
    assert time.monotonic() - since < 1.0
    assert code_reason == (1008, reason)
    within(2, lambda: up.ws_closes.get(conn_id) is not None)
    assert up.ws_closes[conn_id] == (1008, reason)
    tokens = [json.loads(f)[4].get("access_token") for f in up.ws_frames[conn_id] if '"late"' in f]
    assert all(t is None or t == sent for t in tokens), "a JWT was minted for a refused key"
    assert not any(t and t.startswith("sb_") for t in tokens)


def soon(seconds: float) -> tuple[str, float]:
    """An RFC 3339 time a whole second at least ``seconds`` ahead, and its epoch seconds."""
    at = math.ceil(time.time()) + seconds
    return datetime.fromtimestamp(at, timezone.utc).isoformat(), at


@pytest.mark.parametrize("case", ["deleted", "expiry_in_the_past", "origin", "ip", "service"])
def test_a_change_that_refuses_the_key_closes_its_socket(gw, up, case: str) -> None:
    body: dict[str, object] = {"allowed_origins": [ORIGIN], "allowed_ips": ["127.0.0.0/8"],
                               "allowed_services": ["realtime", "rest"]}
    made = gw.create_key("publishable", **body)
    key = made["api_key"]
    conn, conn_id = opened(gw, key, origin=ORIGIN)
    changes: dict[str, tuple[Callable[[], object], str]] = {
        "deleted": (lambda: gw.admin("DELETE", f"/api-keys/{made['id']}"), "Invalid API key"),
        "expiry_in_the_past": (lambda: gw.admin("PATCH", f"/api-keys/{made['id']}",
                                                json={"expires_at": "2020-01-01T00:00:00Z"}), "API key expired"),
        "origin": (lambda: gw.admin("PATCH", f"/api-keys/{made['id']}",
                                    json={"allowed_origins": ["https://other.example.com"]}),
                   "Origin not allowed for this API key"),
        "ip": (lambda: gw.admin("PATCH", f"/api-keys/{made['id']}", json={"allowed_ips": ["10.0.0.0/8"]}),
               "Client IP not allowed for this API key"),
        "service": (lambda: gw.admin("PATCH", f"/api-keys/{made['id']}", json={"allowed_services": ["rest"]}),
                    "Service not allowed for this API key"),
    }
    change, reason = changes[case]
    with conn:
        r = change()
        assert r.status_code == 200, r.text
        since = time.monotonic()
        late_join(conn, key)
        assert_closed_everywhere(up, conn, conn_id, reason, since, key)


def test_expiry_set_ahead_on_an_open_socket_closes_it_when_it_passes(gw, up) -> None:
    made = gw.create_key("publishable")
    key = made["api_key"]
    conn, conn_id = opened(gw, key)
    expires_at, at = soon(2)
    with conn:
        assert gw.admin("PATCH", f"/api-keys/{made['id']}", json={"expires_at": expires_at}).status_code == 200
        time.sleep(max(0.0, at - time.time()) + 0.02)
        since = time.monotonic() - 0.02
        late_join(conn, key)
        assert_closed_everywhere(up, conn, conn_id, "API key expired", since, key)


def test_legacy_keys_disabled_close_a_socket_opened_with_the_legacy_anon_key(gw, up) -> None:
    conn, conn_id = opened(gw, LEGACY_ANON)
    try:
        with conn:
            assert gw.admin("PUT", "/api-keys/legacy", params={"enabled": "false"}).status_code == 200
            since = time.monotonic()
            late_join(conn, LEGACY_ANON)
            assert_closed_everywhere(up, conn, conn_id, "Legacy API keys are disabled", since, LEGACY_ANON)
    finally:
        assert gw.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).status_code == 200


def test_a_signed_in_socket_is_closed_too_when_its_key_is_deleted(gw, up) -> None:
    """The key admitted the socket: a user JWT on it does not keep it open once the key is refused."""
    made = gw.create_key("publishable")
    user = hs256(user_claims(sub="u-" + uuid.uuid4().hex))
    conn, conn_id = opened(gw, made["api_key"], additional_headers={"Authorization": f"Bearer {user}"})
    with conn:
        assert gw.admin("DELETE", f"/api-keys/{made['id']}").status_code == 200
        since = time.monotonic()
        assert_closed_everywhere(up, conn, conn_id, "Invalid API key", since, made["api_key"])


def test_a_change_that_still_admits_the_key_leaves_its_socket_open(gw) -> None:
    made = gw.create_key("publishable", allowed_origins=[ORIGIN])
    conn, _ = opened(gw, made["api_key"], origin=ORIGIN)
    with conn:
        r = gw.admin("PATCH", f"/api-keys/{made['id']}", json={"allowed_origins": [ORIGIN, "https://b.example"]})
        assert r.status_code == 200
        time.sleep(1.0)
        conn.send(join(made["api_key"], "2"))
        assert json.loads(conn.recv(timeout=5))[4]["access_token"].startswith("eyJ")  # still minted


def test_a_key_deleted_on_one_instance_closes_its_socket_on_another(gateways, up) -> None:
    a = gateways()
    b = gateways(dsn=a.env["GATEWAY_DATABASE_URL"])
    made = a.create_key("publishable")
    within(2, lambda: b.admin("GET", f"/api-keys/{made['id']}").status_code == 200)
    conn, conn_id = opened(b, made["api_key"])
    with conn:
        assert a.admin("DELETE", f"/api-keys/{made['id']}").status_code == 200
        since = time.monotonic()
        late_join(conn, made["api_key"])
        assert_closed_everywhere(up, conn, conn_id, "Invalid API key", since, made["api_key"])
