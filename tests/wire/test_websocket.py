"""Realtime over WebSocket: the handshake through the gateway (key in the query string, the
minted JWT replacing it and sent as x-api-key, Host for the tenant), frames both ways, close
codes both ways, and refusals answered as HTTP before the upgrade."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.factories import LEGACY_ANON
from tests.upstreams import echo_header, proxy_env, start_gateway

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_UPSTREAMS__REALTIME_HOST="tenant-a.realtime.local")


def ws(gw, query: str, **kw):
    return connect(f"{gw.ws_url}/realtime/v1/websocket?{query}", open_timeout=10, close_timeout=10, **kw)


def info(conn) -> dict:
    conn.send("info")
    return json.loads(conn.recv(timeout=10))


def test_handshake_carries_the_minted_jwt(gw, pub):
    with ws(gw, f"apikey={pub}&vsn=1.0.0", user_agent_header=CHROME) as conn:
        seen = info(conn)
    assert seen["path"] == "/socket/websocket"
    query = seen["query"].split("&")
    assert query[0] == "vsn=1.0.0"
    assert query[1].startswith("apikey=eyJ")
    assert pub not in json.dumps(seen)
    assert seen["verified"]["query_apikey"]["claims"]["role"] == "anon"
    assert seen["verified"]["x-api-key"]["claims"]["role"] == "anon"
    [x_api_key] = echo_header(seen, "x-api-key")
    assert query[1] == f"apikey={x_api_key}"
    assert echo_header(seen, "host") == ["tenant-a.realtime.local"]
    assert echo_header(seen, "x-forwarded-prefix") == ["/realtime/v1"]


def test_key_in_the_header_instead(gw, sec):
    with ws(gw, "vsn=1.0.0", additional_headers={"apikey": sec}) as conn:
        seen = info(conn)
    assert seen["query"] == "vsn=1.0.0"  # nothing to replace
    assert seen["verified"]["x-api-key"]["claims"]["role"] == "service_role"
    assert sec not in json.dumps(seen)


def test_legacy_key(gw):
    with ws(gw, f"apikey={LEGACY_ANON}&vsn=1.0.0") as conn:
        seen = info(conn)
    assert seen["verified"]["x-api-key"]["claims"]["role"] == "anon"
    assert LEGACY_ANON not in seen["query"]


def test_text_and_binary_frames_round_trip(gw, pub):
    with ws(gw, f"apikey={pub}&vsn=1.0.0") as conn:
        join = json.dumps({"topic": "realtime:room1", "event": "phx_join", "payload": {}, "ref": "1"})
        conn.send(join)
        assert conn.recv(timeout=10) == join
        conn.send(b"\x00\x01binary\xff")
        assert conn.recv(timeout=10) == b"\x00\x01binary\xff"
        big = bytes(range(256)) * 4096  # 1 MiB in one frame
        conn.send(big)
        assert conn.recv(timeout=10) == big
        for i in range(50):
            conn.send(f"m{i}")
        assert [conn.recv(timeout=10) for _ in range(50)] == [f"m{i}" for i in range(50)]


def test_subprotocol_is_negotiated_with_the_upstream(gw, pub):
    with ws(gw, f"apikey={pub}", subprotocols=["realtime-v1"]) as conn:
        assert conn.subprotocol == "realtime-v1"
        assert info(conn)["protocol"] == "realtime-v1"


@pytest.mark.parametrize("code", [1000, 1008, 4001, 4999])
def test_upstream_close_code_reaches_the_client(gw, pub, code):
    with ws(gw, f"apikey={pub}") as conn:
        conn.send(f"close:{code}")
        with pytest.raises(ConnectionClosed) as e:
            conn.recv(timeout=10)
    assert e.value.rcvd is not None
    assert e.value.rcvd.code == code
    assert e.value.rcvd.reason == "upstream says bye"


def test_upstream_vanishing_closes_the_client(gw, pub):
    with ws(gw, f"apikey={pub}") as conn:
        conn.send("drop")
        with pytest.raises(ConnectionClosed) as e:
            conn.recv(timeout=10)
    assert e.value.rcvd is not None
    assert e.value.rcvd.code in (1001, 1011)


@pytest.mark.parametrize("code", [1000, 4002])
def test_client_close_code_reaches_the_upstream(gw, pub, up, code):
    conn_id = uuid.uuid4().hex
    conn = ws(gw, f"apikey={pub}&conn={conn_id}")
    info(conn)
    conn.close(code=code, reason="client says bye")
    deadline = time.monotonic() + 10
    while up.ws_closes.get(conn_id) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert up.ws_closes.get(conn_id) == (code, "client says bye")


def refusal(gw, query: str, **kw):
    with pytest.raises(InvalidStatus) as e:
        with ws(gw, query, **kw):
            pass
    return e.value.response


@pytest.mark.parametrize("query, code", [
    ("vsn=1.0.0", "UNAUTHORIZED_MISSING_API_KEY"),
    ("apikey=&vsn=1.0.0", "UNAUTHORIZED_MISSING_API_KEY"),
    ("apikey=sb_publishable_nope&vsn=1.0.0", "UNAUTHORIZED_INVALID_API_KEY"),
    ("apikey=eyJhbGciOiJub25lIn0.e30.&vsn=1.0.0", "UNAUTHORIZED_INVALID_API_KEY"),
])
def test_bad_key_refused_before_upgrade(gw, query, code):
    resp = refusal(gw, query)
    assert resp.status_code == 401
    assert resp.headers["sb-error-code"] == code
    assert json.loads(resp.body)["message"]


def test_unknown_and_deleted_keys_refused(gw):
    made = gw.create_key("publishable", name="ws_doomed")
    with ws(gw, f"apikey={made['api_key']}") as conn:
        info(conn)
    gw.admin("DELETE", f"/api-keys/{made['id']}")
    resp = refusal(gw, f"apikey={made['api_key']}")
    assert resp.status_code == 401
    assert resp.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_API_KEY"
    assert made["api_key"].encode() not in resp.body


def test_secret_key_from_a_browser_refused(gw, sec, pub):
    resp = refusal(gw, f"apikey={sec}", user_agent_header=CHROME)
    assert resp.status_code == 401
    assert resp.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_API_KEY_TYPE"
    assert json.loads(resp.body)["message"] == "Forbidden use of secret API key in browser"
    resp = refusal(gw, f"apikey={sec}", additional_headers={"Sec-Fetch-Mode": "websocket"})
    assert resp.status_code == 401
    with ws(gw, f"apikey={pub}", user_agent_header=CHROME, additional_headers={"Sec-Fetch-Mode": "websocket"}):
        pass


def test_header_and_query_keys_differ(gw, pub, sec):
    resp = refusal(gw, f"apikey={pub}", additional_headers={"apikey": sec})
    assert resp.status_code == 401
    assert resp.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_API_KEY"


def test_forbidden_and_unknown_paths(gw, sec):
    for path, status in (("/realtime/v1/api/tenants", 403), ("/mcp", 403), ("/nowhere", 404)):
        with pytest.raises(InvalidStatus) as e:
            with connect(f"{gw.ws_url}{path}?apikey={sec}", open_timeout=10):
                pass
        assert e.value.response.status_code == status, path


def test_channels_joined_with_the_key_get_fresh_jwts_before_theirs_expire(pg_server, up):
    """End to end over a real socket: the join's key is replaced by a JWT, and before that JWT
    expires (10 s here) the relay pushes the channel a newer one that the upstream can verify."""
    import jwt as pyjwt

    from tests.upstreams import JWT_SECRET

    g = start_gateway(proxy_env(pg_server, up, GATEWAY_JWT__TTL_SECONDS="10"))
    try:
        key = g.create_key("publishable", name="ws_refresh")["api_key"]
        with ws(g, f"apikey={key}&vsn=2.0.0") as conn:
            conn.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"access_token": key}]))
            join = json.loads(conn.recv(timeout=10))  # the echo upstream sends frames back
            first = join[4]["access_token"]
            assert first.startswith("eyJ") and key not in json.dumps(join)
            deadline = time.monotonic() + 12
            pushed = None
            while time.monotonic() < deadline:
                frame = json.loads(conn.recv(timeout=12))
                if isinstance(frame, list) and frame[3] == "access_token":
                    pushed = frame
                    break
        assert pushed is not None, "no access_token pushed within the token's lifetime"
        assert pushed[:4] == ["1", None, "realtime:room", "access_token"]
        claims = pyjwt.decode(pushed[4]["access_token"], JWT_SECRET, algorithms=["HS256"],
                              options={"verify_aud": False})
        first_claims = pyjwt.decode(first, JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
        assert claims["role"] == "anon" and claims["exp"] >= first_claims["exp"] + 3  # a newer token
        assert claims["exp"] - claims["iat"] == 10
    finally:
        g.stop()


@pytest.fixture(scope="module")
def capped(gateways):
    """Public Realtime connections (no user JWT) closed after 2 s."""
    return gateways(GATEWAY_REALTIME__MAX_KEY_ONLY_SECONDS="2")


def held_until_closed(conn, seconds: float) -> tuple[int, str] | None:
    """Read frames for up to ``seconds``; the close the gateway sent, or None if still open."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            conn.recv(timeout=max(0.05, deadline - time.monotonic()))
    except TimeoutError:
        return None
    except ConnectionClosed as e:
        return e.rcvd.code, e.rcvd.reason
    return None


def test_a_public_connection_is_closed_at_the_cap(capped):
    key = capped.create_key("publishable")["api_key"]
    with ws(capped, f"apikey={key}&vsn=2.0.0") as conn:
        conn.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"access_token": key}]))
        code, reason = held_until_closed(conn, 6)
    assert code == 1008 and reason.startswith("Public connection limit of 2 s reached")


def test_the_legacy_anon_key_as_a_channel_token_does_not_lift_the_cap(capped):
    with ws(capped, f"apikey={LEGACY_ANON}&vsn=2.0.0") as conn:
        conn.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"access_token": LEGACY_ANON}]))
        assert held_until_closed(conn, 6)[0] == 1008


@pytest.mark.parametrize("where", ["phx_join", "access_token", "handshake", "forged"])
def test_a_user_jwt_lifts_the_cap(capped, where):
    from tests.factories import hs256, user_claims

    key = capped.create_key("publishable")["api_key"]
    user = hs256(user_claims(sub="u-" + uuid.uuid4().hex))
    headers = {"additional_headers": {"Authorization": f"Bearer {user}"}} if where == "handshake" else {}
    with ws(capped, f"apikey={key}&vsn=2.0.0", **headers) as conn:
        token = {"phx_join": user, "forged": user[:-4] + "AAAA"}.get(where, key)
        conn.send(json.dumps(["1", "1", "realtime:room", "phx_join", {"access_token": token}]))
        if where == "access_token":
            conn.send(json.dumps(["1", "2", "realtime:room", "access_token", {"access_token": user}]))
        closed = held_until_closed(conn, 4)
    if where == "forged":
        assert closed is not None and closed[0] == 1008  # a JWT that does not verify lifts nothing
    else:
        assert closed is None
