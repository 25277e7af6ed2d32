"""docs/protection.md on the wire, on both ways of serving: a key reaches only its resources (hostile
spellings included), rest.denied_resources holds for every public request, a read-only key cannot
write (on every route, over GraphQL, over Realtime), rules change live, a quota is spent and
answered 429 until its period ends. Requests with a body go through the ASGI app even with the
fast path on: every rule is checked with and without one. Real gateway processes and upstreams."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import pytest
from websockets.sync.client import connect

from tests.factories import LEGACY_ANON, LEGACY_SERVICE_ROLE
from tests.helpers import assert_refused
from tests.upstreams import raw_request, within

DENIED = ["secrets", "rpc/admin_*", "storage.objects"]
RESOURCE = ("FORBIDDEN_RESOURCE", "Resource not allowed for this API key")
METHOD = ("FORBIDDEN_METHOD", "Method not allowed for this API key")


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_REST__DENIED_RESOURCES=json.dumps(DENIED), GATEWAY_KEYS__QUOTA_FLUSH_SECONDS="0.2",
                    **serving)


def send(gw, key: str | None, method: str, target: str, *headers: tuple[str, str]):
    """Exactly as written (no client normalises the path); a body for the methods that carry one."""
    body = b'{"a": 1}' if method in ("POST", "PATCH", "PUT") else None
    sent = [("apikey", key)] if key else []
    return raw_request(gw.url, method, target, [*sent, *headers, ("Content-Type", "application/json")], body)


def refused(r, code: str, message: str | None = None, method: str = "GET") -> None:
    assert r.status == 403 and r.header("sb-error-code") == code, (r.status, r.body)
    if method != "HEAD":
        assert_refused(r, 403, code, message)
        for secret in ("todos", "search", "secrets", "admin", "GET"):
            assert secret.encode() not in r.body  # the lists are never echoed


@pytest.fixture(scope="module")
def scoped(gw) -> str:
    return gw.create_key("publishable", allowed_resources=["todos", "public_profiles", "rpc/search_*"])["api_key"]


READS, WRITES = ["GET", "HEAD"], ["POST", "PATCH", "PUT", "DELETE"]


@pytest.mark.parametrize("method", READS + WRITES)
@pytest.mark.parametrize(("target", "headers", "upstream"), [
    ("/rest/v1/todos?select=*", [], "/todos"),
    ("/rest/v1/public_profiles", [], "/public_profiles"),
    ("/rest/v1/rpc/search_items", [], "/rpc/search_items"),
    ("/rest/v1//todos", [], "/todos"),
    ("/rest/v1/./x/../todos", [], "/todos"),
    ("/rest/v1/tod%6Fs", [], "/todos"),
    ("/rest/v1/rpc//search_x", [], "/rpc/search_x"),
    ("/rest/v1/todos", [("Accept-Profile", "public"), ("Content-Profile", "public")], "/todos"),
])
def test_a_key_reaches_its_resources(gw, scoped, method, target, headers, upstream):
    r = send(gw, scoped, method, target, *headers)
    assert r.status == 200, r.body
    if method != "HEAD":
        assert r.json()["path"] == upstream


@pytest.mark.parametrize("method", READS + WRITES)
@pytest.mark.parametrize(("target", "headers"), [
    ("/rest/v1/secrets", []),
    ("/rest/v1/other", []),
    ("/rest/v1/Todos", []),
    ("/rest/v1/todos/", []),
    ("/rest/v1/todos;", []),
    ("/rest/v1/todos%20", []),
    ("/rest/v1/todos.csv", []),
    ("/rest/v1/todos/1", []),
    ("/rest/v1/todo%73x", []),
    ("/rest/v1/rpc/search", []),
    ("/rest/v1/rpc/search_x/y", []),
    ("/rest/v1/RPC/search_x", []),
    ("/rest/v1/rpc/todos", []),
    ("/rest/v1/todos", [("Accept-Profile", "private"), ("Content-Profile", "private")]),
    ("/rest/v1/todos", [("Accept-Profile", "public"), ("Accept-Profile", "private"),
                        ("Content-Profile", "public"), ("Content-Profile", "private")]),
    ("/rest/v1/rpc/graphql", [("Accept-Profile", "graphql_public"), ("Content-Profile", "graphql_public")]),
    ("/graphql/v1", []),
])
def test_a_key_reaches_nothing_else(gw, scoped, method, target, headers):
    refused(send(gw, scoped, method, target, *headers), *RESOURCE, method=method)


def test_graphql_and_the_root_need_graphql_in_the_list(gw):
    plain = gw.create_key("secret", allowed_resources=["todos"])["api_key"]
    with_graphql = gw.create_key("secret", allowed_resources=["todos", "graphql"])["api_key"]
    starred = gw.create_key("secret", allowed_resources=["*", "rpc/*"])["api_key"]
    for key, status in ((plain, 403), (with_graphql, 200), (starred, 403)):  # never a pattern
        for method, target in (("POST", "/graphql/v1"), ("GET", "/rest/v1/"), ("GET", "/rest/v1")):
            assert send(gw, key, method, target).status == status, (method, target)
    assert send(gw, starred, "GET", "/rest/v1/anything").status == 200
    assert send(gw, starred, "POST", "/rest/v1/rpc/anything").status == 200
    refused(send(gw, starred, "GET", "/rest/v1/objects", ("Accept-Profile", "storage")), *RESOURCE)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_resources_are_postgrest_s_only(gw, scoped, method):
    for target in ("/storage/v1/object/x", "/functions/v1/hello", "/auth/v1/user"):
        assert send(gw, scoped, method, target).status == 200, target


DENIED_MESSAGE = "Resource not allowed"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize(("target", "headers"), [
    ("/rest/v1/secrets", []),
    ("/rest/v1//secrets", []),
    ("/rest/v1/secr%65ts", []),
    ("/rest/v1/x/../secrets", []),
    ("/rest/v1/secrets#x", []),  # the fragment is cut off before routing
    ("/rest/v1/secrets/", []),
    ("/rest/v1/rpc/admin_reset", []),
    ("/rest/v1/objects", [("Accept-Profile", "storage"), ("Content-Profile", "storage")]),
    ("/rest/v1/todos", [("Accept-Profile", "public"), ("Accept-Profile", "public"),
                        ("Content-Profile", "public"), ("Content-Profile", "public")]),
    ("/rest/v1/rpc/graphql", [("Accept-Profile", "graphql_public"), ("Content-Profile", "graphql_public")]),
    ("/graphql/v1", []),
])
def test_denied_resources_are_refused_to_every_public_request(gw, pub, method, target, headers):
    for key in (pub, LEGACY_ANON):
        refused(send(gw, key, method, target, *headers), "FORBIDDEN_RESOURCE", DENIED_MESSAGE)
    user = send(gw, pub, method, target, *headers, ("Authorization", "Bearer " + user_jwt()))
    refused(user, "FORBIDDEN_RESOURCE", DENIED_MESSAGE)  # whatever the role
    for key in (gw_secret(gw), LEGACY_SERVICE_ROLE):
        assert send(gw, key, method, target, *headers).status == 200


@pytest.mark.parametrize("target", ["/rest/v1/Secrets", "/rest/v1/secrets_v2", "/rest/v1/todos",
                                    "/rest/v1/rpc/public_fn", "/rest/v1/objects"])
def test_what_is_not_denied_passes(gw, pub, target):
    assert send(gw, pub, "GET", target).status == 200


_SECRET: dict[str, str] = {}


def gw_secret(gw) -> str:
    if gw.url not in _SECRET:
        _SECRET[gw.url] = gw.create_key("secret")["api_key"]
    return _SECRET[gw.url]


def user_jwt() -> str:
    import jwt

    from tests.helpers import JWT_SECRET

    now = int(time.time())
    return jwt.encode({"sub": "u1", "role": "authenticated", "iat": now, "exp": now + 600}, JWT_SECRET,
                      algorithm="HS256")


@pytest.fixture(scope="module")
def reader(gw) -> str:
    return gw.create_key("publishable", allowed_methods=["GET", "HEAD"])["api_key"]


@pytest.mark.parametrize("target", ["/rest/v1/todos", "/rest/v1/rpc/fn", "/storage/v1/object/a", "/functions/v1/hello",
                                    "/auth/v1/user", "/realtime/v1/api/broadcast"])
def test_a_read_only_key_reads_and_cannot_write(gw, reader, target):
    for method in READS:
        assert send(gw, reader, method, target).status == 200, (method, target)
    for method in WRITES + ["OPTIONS"]:
        refused(send(gw, reader, method, target), *METHOD)


def test_a_read_only_key_s_preflights_are_answered(gw, reader):
    r = send(gw, reader, "OPTIONS", "/rest/v1/todos", ("Origin", "https://app.example.com"),
             ("Access-Control-Request-Method", "POST"))
    assert r.status == 200 and r.header("access-control-allow-origin")


def test_a_read_only_key_cannot_post_graphql(gw):
    # (a secret key: with rest.denied_resources set, GraphQL is refused to publishable keys anyway)
    key = gw.create_key("secret", allowed_methods=["GET"], allowed_resources=["graphql"])["api_key"]
    refused(send(gw, key, "POST", "/graphql/v1"), *METHOD)
    assert send(gw, key, "GET", "/graphql/v1?query=%7Btodos%7D").status == 200  # PostgREST: a read-only transaction


def test_a_read_only_key_listens_on_realtime_and_cannot_send(gw, reader):
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={reader}&vsn=2.0.0", open_timeout=10) as ws:
        join = '["1","1","realtime:room","phx_join",{"config":{"broadcast":{"ack":true}}}]'
        ws.send(join)
        assert ws.recv(timeout=10) == join  # forwarded (the test upstream echoes)
        for frame, ref in (('["1","2","realtime:room","broadcast",{"type":"broadcast","event":"e","payload":{}}]', "2"),
                           ('["1","3","realtime:room","presence",{"type":"presence","event":"track"}]', "3"),
                           (bytes([3, 1, 1, 13, 1, 0, 1]) + b"14realtime:roome{}", "4")):
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=10))
            assert reply[1:4] == [ref, "realtime:room", "phx_reply"] and reply[4]["status"] == "error"
        ws.send('["1","5","phoenix","heartbeat",{}]')
        assert json.loads(ws.recv(timeout=10))[3] == "heartbeat"  # echoed: nothing was held back
    writer = gw.create_key("publishable", allowed_methods=["GET", "POST"])["api_key"]
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={writer}&vsn=2.0.0", open_timeout=10) as ws:
        frame = '["1","2","realtime:room","broadcast",{"type":"broadcast","event":"e","payload":{}}]'
        ws.send(frame)
        assert ws.recv(timeout=10) == frame
    poster = gw.create_key("publishable", allowed_methods=["POST"])["api_key"]
    with pytest.raises(Exception) as e:  # the handshake is a GET
        connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={poster}&vsn=2.0.0", open_timeout=10)
    assert getattr(getattr(e.value, "response", None), "status_code", None) == 403


def test_rules_change_live(gw):
    made = gw.create_key("publishable")
    key, path = made["api_key"], f"/api-keys/{made['id']}"
    assert send(gw, key, "POST", "/rest/v1/other").status == 200
    assert gw.admin("PATCH", path, json={"allowed_resources": ["todos"], "allowed_methods": ["GET"]}).status_code == 200
    within(1, lambda: send(gw, key, "GET", "/rest/v1/other").status == 403)
    refused(send(gw, key, "POST", "/rest/v1/todos"), *METHOD)
    assert send(gw, key, "GET", "/rest/v1/todos").status == 200
    assert gw.admin("PATCH", path, json={"allowed_resources": None, "allowed_methods": []}).status_code == 200
    within(1, lambda: send(gw, key, "POST", "/rest/v1/other").status == 200)


def seconds_to_midnight() -> float:
    now = datetime.now(timezone.utc)
    return 86400 - (now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_spent_quota_is_429_until_the_period_ends(gw, method):
    made = gw.create_key("publishable", quota="4/day")
    key = made["api_key"]
    assert made["quota"] == {"limit": "4/day", "used": 0, "left": 4, "resets_at": made["quota"]["resets_at"]}
    got = [send(gw, key, method, "/rest/v1/todos").status for _ in range(4)]
    assert got == [200] * 4
    r = send(gw, key, method, "/rest/v1/todos")
    assert_refused(r, 429, "OVER_QUOTA", "Quota exceeded")
    assert abs(int(r.header("retry-after")) - seconds_to_midnight()) < 5
    assert "4/day" in r.json()["hint"] and key not in r.body.decode()
    assert send(gw, key, "GET", "/storage/v1/object/x").status == 429  # every route
    assert send(gw, gw_secret(gw), method, "/rest/v1/todos").status == 200  # other keys are untouched

    def shown() -> dict:
        return gw.admin("GET", f"/api-keys/{made['id']}").json()["quota"]

    within(3, lambda: shown()["used"] == 4)
    assert shown()["left"] == 0 and shown()["resets_at"] == made["quota"]["resets_at"]
    assert any(line.get("rate_limited") == "quota" for line in gw.access_log())
    # Raised: open again at once; removed: no quota at all.
    assert gw.admin("PATCH", f"/api-keys/{made['id']}", json={"quota": "6/day"}).json()["quota"]["left"] == 2
    within(1, lambda: send(gw, key, method, "/rest/v1/todos").status == 200)
    assert gw.admin("PATCH", f"/api-keys/{made['id']}", json={"quota": None}).json()["quota"] is None
    within(1, lambda: all(send(gw, key, method, "/rest/v1/todos").status == 200 for _ in range(5)))


def test_a_realtime_socket_counts_once_against_a_quota(gw):
    key = gw.create_key("publishable", quota="1/day")["api_key"]
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0", open_timeout=10) as ws:
        for _ in range(3):
            ws.send("x")
            assert ws.recv(timeout=10) == "x"
    assert send(gw, key, "GET", "/rest/v1/todos").status == 429


def test_keys_without_rules_are_untouched(gw, pub):
    for method in READS + WRITES:
        assert send(gw, pub, method, "/rest/v1/todos", ("Accept-Profile", "x")).status == 200
    assert httpx.get(gw.url + "/rest/v1/todos/", headers={"apikey": gw_secret(gw)}).status_code == 200
