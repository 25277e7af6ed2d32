"""The public listener's fast path, byte by byte: requests fed to the protocol as bytes (the way
uvicorn tests its httptools protocol), answers read from a mock transport; the upstreams are
the real local servers, the key ring in memory. What the wire suites cannot see from outside:
which path served a request, pipelining, a client lost mid-answer, memory under a flood, a slow
client; and hostile request heads fed to the listener with and without its fast path, which
must answer alike and send the upstream the same request."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.serve.asgi import Proxy
from gateway.upstream.connection import State
from gateway.upstream.services import ReplicaSet, upstream_from
from tests.serve.harness import Client, get, parse, without_request_ids


@pytest.fixture
def fast(memory_proxy):
    return memory_proxy


async def test_a_keyed_get_is_forwarded_on_the_fast_path_and_the_connection_kept(fast):
    proxy, keys = fast
    c = Client(proxy)
    c.send(get("/rest/v1//todos?select=id", f"apikey: {keys['publishable']}"))
    [(status, headers, body)] = await c.responses(1)
    assert status == b"HTTP/1.1 200 OK"
    echo = json.loads(body)
    assert (echo["path"], echo["query"]) == ("/todos", "select=id")
    assert echo["verified"]["authorization"]["claims"]["role"] == "anon"
    assert b"connection" not in headers and not c.transport.closed
    assert c.asgi_calls == 0
    c.send(get("/rest/v1/again", f"apikey: {keys['publishable']}"))
    (_, _, body) = (await c.responses(2))[1]
    assert json.loads(body)["path"] == "/again" and c.asgi_calls == 0


async def test_refusals_carry_their_length_and_a_head_request_no_body(fast):
    proxy, _ = fast
    c = Client(proxy)
    c.send(get("/rest/v1/todos"))
    c.send(get("/rest/v1/todos", method="HEAD"))
    [(status, headers, body), (head_status, head_headers, head_body)] = await c.responses(2, heads=(1,))
    assert status.startswith(b"HTTP/1.1 401") and int(headers[b"content-length"]) == len(body) > 0
    assert json.loads(body)["message"]
    assert head_status.startswith(b"HTTP/1.1 401") and head_headers[b"content-length"] == headers[b"content-length"]
    assert head_body == b"" and c.transport.buffer.endswith(b"\r\n\r\n")  # the HEAD answer: its head only
    assert c.asgi_calls == 0


async def test_http_1_0_gets_its_answer_and_a_close(fast):
    proxy, keys = fast
    c = Client(proxy)
    c.send(get("/rest/v1/todos", f"apikey: {keys['publishable']}", version="1.0"))
    [(status, headers, _)] = await c.responses(1)
    assert status.endswith(b"200 OK") and headers[b"connection"] == b"close"
    await asyncio.sleep(0.05)
    assert c.transport.closed


async def test_requests_with_bodies_and_pipelined_ones_are_the_asgi_apps_in_order(fast):
    proxy, keys = fast
    c = Client(proxy)
    key = f"apikey: {keys['secret']}"
    post = (f"POST /rest/v1/posted HTTP/1.1\r\nHost: gateway\r\n{key}\r\nContent-Length: 5\r\n\r\nhello").encode()
    c.send(get("/rest/v1/first", key) + post + get("/rest/v1/third", key))
    answers = await c.responses(3)
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/first", "/posted", "/third"]
    assert json.loads(answers[1][2])["body"] == "hello"
    assert c.asgi_calls >= 1  # the POST at least; a request behind it waits in uvicorn's queue


async def test_a_client_lost_mid_answer_leaves_no_upstream_connection_for_reuse(fast):
    proxy, keys = fast
    c = Client(proxy)
    c.send(get("/rest/v1/stream?size=50000000&id=lost", f"apikey: {keys['publishable']}"))

    async def streaming() -> None:
        while b"\r\n\r\n" not in c.transport.buffer:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(streaming(), 10)
    pool = proxy.decider.upstreams["rest"].pool
    conn = c.protocol._fast.conn
    c.protocol.connection_lost(None)
    await asyncio.sleep(0.05)
    assert c.protocol._fast is None and pool.outstanding == 0
    assert conn not in pool._idle and conn.state is State.CLOSED  # half-read: closed, not pooled


async def test_a_flood_of_refusals_on_the_fast_path_leaves_nothing_behind(fast):
    proxy, _ = fast
    c = Client(proxy)
    bad = get("/rest/v1/todos", "apikey: sb_publishable_aaaaaaaaaaaaaaaaaaaaaa_bbbbbbbb")

    async def burst(n: int) -> None:
        for _ in range(n):
            c.transport.buffer = b""
            c.send(bad)
            await asyncio.sleep(0)
            assert c.transport.buffer.startswith(b"HTTP/1.1 401") or not c.transport.buffer

    await burst(2_000)  # warm: caches, first allocations
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        await burst(20_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 200_000, f"{grown} bytes kept after 20,000 refusals"


async def test_a_slow_client_pauses_the_upstream_without_its_deadline_and_the_pool_gets_it_reading(fast):
    proxy, keys = fast
    pool = proxy.decider.upstreams["rest"].pool
    pool.read_timeout = 0.3  # an upstream silent this long is cut off; a client this slow is not
    c = Client(proxy)
    size = 4 * 1024 * 1024
    c.send(get(f"/rest/v1/stream?size={size}&length=1", f"apikey: {keys['publishable']}"))

    async def head_came() -> None:
        while b"\r\n\r\n" not in c.transport.buffer:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(head_came(), 10)
    c.protocol.pause_writing()  # the client's socket is full
    conn = c.protocol._fast.conn
    await asyncio.sleep(0.05)
    assert conn.paused and conn.deadline is None
    await asyncio.sleep(1.0)  # far past the upstream's read timeout, sweeps included
    c.protocol.resume_writing()
    [(status, headers, body)] = await c.responses(1)
    assert status == b"HTTP/1.1 200 OK" and len(body) == size  # not cut short
    assert conn in pool._idle and not conn.paused  # back in the pool, reading again
    c.send(get("/rest/v1/next", f"apikey: {keys['publishable']}"))  # which that connection serves
    assert json.loads((await c.responses(2))[1][2])["path"] == "/next"


async def test_a_probe_whose_client_leaves_lets_the_next_read_probe_again(fast):
    proxy, keys = fast
    g = proxy.decider
    primary = g.upstreams["rest"]
    replica = upstream_from(proxy.settings, "rest_replica_1", primary.ws_origin.replace("ws://", "http://"), "rest")
    g.replicas = ReplicaSet([primary, replica], retry_seconds=0.01)
    replica.down_until = 1.0  # fell once, long ago: the next read probes it
    primary.pool.outstanding = 5  # and the probe goes to the replica
    c = Client(proxy)
    c.send(get("/rest/v1/slow?seconds=2", f"apikey: {keys['publishable']}"))
    await asyncio.sleep(0.2)
    assert replica.probing
    c.protocol.connection_lost(None)
    await asyncio.sleep(0.05)
    assert not replica.probing
    primary.pool.outstanding = 0
    await replica.close()


# --- the same bytes, both ways: the same answer and the same request upstream ------------------------

PUB, SEC = "{pub}", "{sec}"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
DIFFERENTIAL = [
    ("GET", "/rest/v1/todos?select=id", [f"apikey: {PUB}"]),
    ("GET", "/rest/v1//", [f"apikey: {PUB}"]),
    ("GET", "/rest/v1//", [f"apikey: {SEC}"]),
    ("GET", "/rest/v1/%74odos/./a/../b?x=%2F", [f"apikey: {PUB}"]),
    ("GET", "/rest/v1/a%2Fb", [f"apikey: {PUB}"]),
    ("GET", "/rest/v1/todos#x", [f"apikey: {PUB}"]),
    ("GET", "/rest/v1/todos?apikey=" + PUB + "&a=1", []),
    ("GET", "/rest/v1/todos?apikey=" + PUB, [f"apikey: {SEC}"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", f"apikey: {PUB}"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Connection: authorization, apikey, x-forwarded-for",
                               "X-Forwarded-For: 203.0.113.9"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", f"Authorization: Bearer {SEC}"]),
    ("GET", "/rest/v1/todos", [f"apikey: {SEC}", f"User-Agent: {BROWSER_UA}", "Sec-Fetch-Mode: cors"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Origin: https://app.example.com"]),
    ("GET", "/rest/v1/todos", ["apikey: sb_publishable_nope"]),
    ("GET", "/rest/v1/todos", ["apikey: "]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Authorization: Basic dXNlcjpwYXNz"]),
    ("GET", "/storage/v1/object/public/a.png", []),
    ("GET", "/auth/v1/verify?token=x", []),
    ("GET", "/functions/v1/hello", [f"apikey: {PUB}"]),
    ("GET", "/graphql/v1", [f"apikey: {PUB}"]),
    ("GET", "/pg/tables", [f"apikey: {PUB}"]),
    ("GET", "/realtime/v1/api/tenants", [f"apikey: {SEC}"]),
    ("GET", "/nowhere", []),
    ("GET", "/health", []),
    ("HEAD", "/rest/v1/todos", [f"apikey: {PUB}"]),
    ("HEAD", "/rest/v1/todos", []),
    ("DELETE", "/rest/v1/todos?id=eq.1", [f"apikey: {SEC}"]),
    ("OPTIONS", "/rest/v1/todos", ["Origin: https://app.example.com", "Access-Control-Request-Method: GET",
                                   "Access-Control-Request-Headers: apikey, authorization"]),
    ("OPTIONS", "/pg/tables", ["Origin: http://localhost:3000.evil.com", "Access-Control-Request-Method: GET"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Content-Length: 0"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Upgrade: h2c", "Connection: Upgrade"]),
    ("GET", "/rest/v1/todos", [f"apikey: {PUB}", "Host: evil.example", "X-Forwarded-Host: evil.example"]),
]
# What may differ between the two: the upstream's own Date, and how a body is framed.
VOLATILE = {b"date", b"content-length", b"transfer-encoding"}


async def _answer(proxy: Proxy, fast: bool, raw: bytes, head: bool,
                  check_way: bool = True) -> tuple[bytes, dict[bytes, bytes], object]:
    c = Client(proxy, fast=fast)
    c.send(raw)
    [(status, headers, body)] = await c.responses(1, heads=(0,) if head else ())
    c.protocol.connection_lost(None)
    assert len(headers[b"sb-request-id"]) == 36  # every answer, each its own
    [(status, headers, body)] = parse(without_request_ids(c.transport.buffer), (0,) if head else ())
    if check_way:  # the way we meant (a head httptools refuses reaches neither)
        assert c.asgi_calls == (0 if fast and b"Upgrade:" not in raw else 1)
    try:
        parsed: object = json.loads(body) if body else b""
    except ValueError:
        parsed = body
    return status, {k: v for k, v in headers.items() if k not in VOLATILE}, parsed


@pytest.mark.parametrize("method, target, headers", DIFFERENTIAL)
async def test_both_ways_of_serving_answer_alike(fast, method, target, headers):
    proxy, keys = fast
    fill = {"pub": keys["publishable"], "sec": keys["secret"]}
    target = target.format(**fill)
    lines = [h.format(**fill) for h in headers]
    if not any(h.lower().startswith("host:") for h in lines):
        lines.insert(0, "Host: gateway")
    raw = (f"{method} {target} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in lines) + "\r\n").encode()
    via_fast = await _answer(proxy, True, raw, method == "HEAD")
    via_asgi = await _answer(proxy, False, raw, method == "HEAD")
    assert via_fast == via_asgi


_PATH_PARTS = st.sampled_from(["rest", "v1", "auth", "verify", "storage", "functions", "realtime", "api", "pg",
                               "tenants", "graphql", "health", "mcp", "", ".", "..", "%2e", "%2F", "%7e", "%41",
                               "todos", "a b", "%", "%zz", ";x", "\\", "*"])
_QUERIES = st.sampled_from(["", "?", "?a=1", "?apikey={pub}", "?apikey=", "?apikey={pub}&apikey={sec}", "#f",
                            "?select=a//b#f", "?apikey=sb_secret_x"])
_HEADERS = st.lists(st.sampled_from(["apikey: {pub}", "apikey: {sec}", "apikey: sb_publishable_x", "apikey:",
                                     "Authorization: Bearer {pub}", "Authorization: Bearer {sec}",
                                     "Authorization: Bearer not.a.jwt", "Connection: apikey",
                                     "Origin: https://app.example.com", "Sec-Fetch-Mode: cors",
                                     "Sec-Fetch-Site: cross-site", "X-Forwarded-For: 198.51.100.1",
                                     "Access-Control-Request-Method: GET", "Content-Length: 0",
                                     "Referer: https://app.example.com/x"]), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS"]), parts=st.lists(_PATH_PARTS, max_size=5),
       slashes=st.lists(st.sampled_from(["/", "//"]), min_size=5, max_size=5), query=_QUERIES, headers=_HEADERS)
async def test_any_bodiless_request_is_answered_alike_both_ways(fast, method, parts, slashes, query, headers):
    proxy, keys = fast
    fill = {"pub": keys["publishable"], "sec": keys["secret"]}
    target = "".join(s + p for s, p in zip(slashes, parts)) or "/"
    if not target.startswith("/"):
        target = "/" + target
    lines = ["Host: gateway", *(h.format(**fill) for h in headers)]
    raw = (f"{method} {target}{query.format(**fill)} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in lines) + "\r\n")
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:
        return
    via_fast = await _answer(proxy, True, data, method == "HEAD", check_way=False)
    via_asgi = await _answer(proxy, False, data, method == "HEAD", check_way=False)
    assert via_fast == via_asgi


@pytest.mark.parametrize("fast", [True, False])
async def test_the_request_id_is_on_the_answer_and_upstream(memory_proxy, fast):
    proxy, keys = memory_proxy
    c = Client(proxy, fast=fast)
    c.send(get("/rest/v1/todos", f"apikey: {keys['publishable']}", "X-Request-Id: client-chosen"))
    [(status, headers, body)] = await c.responses(1)
    rid = headers[b"sb-request-id"].decode()
    echo = json.loads(body)
    sent = {name: value for name, value in echo["headers"] if name.lower() in ("sb-request-id", "x-request-id")}
    assert sent == {"sb-request-id": rid, "x-request-id": rid}  # a client's own is replaced (no trusted proxy)
    c.send(get("/nowhere"))
    (_, refused, _) = (await c.responses(2))[1]
    assert refused[b"sb-request-id"] != headers[b"sb-request-id"]
