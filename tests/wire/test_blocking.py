"""Blocking abusive clients on the wire (docs/protection.md): a scanner sending random
keys is blocked after the threshold, on every route, while a well-behaved client on another address
is never refused; a block answers from memory (no upstream, no access line, a counter and one log
line); two instances of two workers share counts and blocks, and a lift over the admin API holds
everywhere within a second. Real gateway processes, real upstreams; clients bound to 127.0.0.x."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.keys import apikeys
from tests.factories import store_ban
from tests.helpers import assert_refused, create_database
from tests.upstreams import within

THRESHOLD = 10
BLOCKED = ("CLIENT_BLOCKED", "Client blocked")


def bound(url: str, ip: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=ip))


def scan(client: httpx.Client, path: str = "/rest/v1/todos") -> httpx.Response:
    """A scanner's request: a made-up key, half of them with a valid checksum (a database lookup
    each until the lookup budget is spent), half garbage."""
    key = apikeys.generate("publishable", "supabase-self-hosted") if uuid.uuid4().int % 2 else "sb_publishable_x"
    return client.get(path, headers={"apikey": key})


def fresh(url: str, ip: str, path: str = "/rest/v1/todos", **headers: str) -> httpx.Response:
    """One request on a connection of its own (so that requests spread over the workers)."""
    with bound(url, ip) as c:
        return c.get(path, headers=headers)


def blocked_total(gw) -> int:
    found = re.findall(r"^gateway_blocked_requests_total ([0-9.e+]+)$", gw.metrics(), re.MULTILINE)
    return round(sum(float(n) for n in found))


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_PROTECTION__BLOCK_AFTER=f"{THRESHOLD}/m", **serving)


def test_a_scanner_is_blocked_after_the_threshold_and_a_neighbour_never_is(gw, pub, up):
    name = f"after-block-{uuid.uuid4().hex}"
    marker = f"/rest/v1/{name}"
    with bound(gw.url, "127.0.0.5") as scanner, bound(gw.url, "127.0.0.6") as neighbour:
        statuses = []
        for _ in range(THRESHOLD + 20):
            statuses.append(scan(scanner).status_code)
            assert neighbour.get("/rest/v1/todos", headers={"apikey": pub}).status_code == 200
        # One worker, one connection: exactly the threshold, then the block.
        assert statuses == [401] * THRESHOLD + [429] * 20
        r = scan(scanner)
        assert_refused(r, 429, *BLOCKED)
        assert 590 <= int(r.headers["retry-after"]) <= 600 and r.headers["sb-request-id"]
        # Every route, whatever the request carries: a valid key, a preflight, a body, a WebSocket.
        assert_refused(scanner.get(marker, headers={"apikey": pub}), 429, *BLOCKED)
        assert_refused(scanner.post(marker, headers={"apikey": pub}, content=b"{}"), 429, *BLOCKED)
        assert_refused(scanner.options(marker, headers={"Origin": "https://x.example", "Access-Control-Request-Method":
                                                        "GET"}), 429, *BLOCKED)
        assert scanner.get("/health").status_code == 200  # probes are answered
        with pytest.raises(InvalidStatus) as ws:
            connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10,
                    source_address=("127.0.0.5", 0))
        assert ws.value.response.status_code == 429
        assert neighbour.get(marker, headers={"apikey": pub}).status_code == 200
    assert sum(name.encode() in r for r in up.received) == 1  # the neighbour's only
    # No access line for a blocked request: the refused ones before the block, then silence.
    within(3, lambda: blocked_total(gw) >= 25)
    lines = [line for line in gw.access_log() if line.get("status") in (401, 429)]
    assert [line["status"] for line in lines].count(429) == 0
    assert gw.logs().count("client 127.0.0.5 blocked for 600 s") == 1
    assert "10 refused requests (block_after 10/m); the last: UNAUTHORIZED_INVALID_API_KEY" in gw.logs()


def test_refusals_that_do_not_count_never_block(gw, pub):
    with bound(gw.url, "127.0.0.7") as c:
        for _ in range(THRESHOLD * 3):
            assert c.get("/no/such/route", headers={"apikey": pub}).status_code == 404
        assert c.get("/rest/v1/todos", headers={"apikey": pub}).status_code == 200


def test_every_counted_refusal_counts(gw, pub):
    """Missing keys, bad JWTs, forbidden routes and a key's restrictions add up to one count."""
    origin_key = gw.create_key("publishable", allowed_origins=["https://app.example.com"])["api_key"]
    with bound(gw.url, "127.0.0.8") as c:
        got = [c.get("/rest/v1/todos").status_code,
               c.get("/rest/v1/todos", headers={"apikey": pub, "Authorization": "Bearer not.a.jwt"}).status_code,
               c.get("/realtime/v1/api/tenants", headers={"apikey": pub}).status_code,
               c.get("/rest/v1/todos", headers={"apikey": origin_key, "Origin": "https://evil.example"}).status_code,
               c.get("/rest/v1/%2e%2e/x", headers={"apikey": pub}).status_code]
        assert got == [401, 401, 403, 403, 400]
        for _ in range(THRESHOLD - len(got)):
            assert c.get("/rest/v1/todos").status_code == 401
        assert_refused(c.get("/rest/v1/todos", headers={"apikey": pub}), 429, *BLOCKED)


def test_an_open_realtime_socket_is_closed_when_its_address_is_blocked(gw, pub):
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10,
                 source_address=("127.0.0.10", 0)) as ws:
        ws.send("info")
        ws.recv(timeout=10)
        started = time.monotonic()
        store_ban(gw.env["GATEWAY_DATABASE_URL"], "127.0.0.10")
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert time.monotonic() - started < 1
    assert (e.value.rcvd.code, e.value.rcvd.reason) == (1008, "Client blocked")
    assert gw.admin("DELETE", "/network-bans", json={"ipv4_addresses": ["127.0.0.10"]}).status_code == 200


def test_two_instances_of_two_workers_share_counts_blocks_and_lifts(gateways, pg_server):
    dsn = create_database(pg_server)
    env = {"GATEWAY_PROTECTION__BLOCK_AFTER": f"{THRESHOLD}/m", "GATEWAY_LIMITS__SYNC_MS": "100"}
    a, b = gateways(workers=2, dsn=dsn, **env), gateways(workers=2, dsn=dsn, **env)
    pub = a.create_key("publishable")["api_key"]
    within(2, lambda: fresh(b.url, "127.0.0.6", apikey=pub).status_code == 200)
    # The scanner spreads its requests over both instances and all four workers, a new
    # connection each: the threshold holds across them (plus what one sync interval lets by).
    statuses = []
    for i in range(4 * THRESHOLD):
        statuses.append(fresh((a, b)[i % 2].url, "127.0.0.5", apikey="sb_publishable_x").status_code)
        time.sleep(0.02)
        assert fresh((a, b)[i % 2].url, "127.0.0.6", apikey=pub).status_code == 200  # the neighbour
    first = statuses.index(429)
    assert first >= THRESHOLD and statuses.count(401) <= THRESHOLD + 4, statuses  # a few more while counts travel
    assert all(s == 429 for s in statuses[first + 4:]), statuses  # then every worker of both has the block
    # Blocked on every worker of both instances: the block was stored and announced.
    for g in (a, b):
        assert all(fresh(g.url, "127.0.0.5", apikey=pub).status_code == 429 for _ in range(6))
    listed = a.admin("POST", "/network-bans/retrieve")
    assert listed.status_code == 201
    body = listed.json()
    assert body["banned_ipv4_addresses"] == ["127.0.0.5"]
    [ban] = body["bans"]
    assert ban["address"] == "127.0.0.5" and ban["family"] == "ipv4" and ban["refusals"] >= THRESHOLD
    assert ban["reason"].endswith("the last: UNAUTHORIZED_INVALID_API_KEY")
    assert sum(g.logs().count("client 127.0.0.5 blocked") for g in (a, b)) == 1  # one line, where it was stored

    # Lifted over one instance's admin API: every worker of both answers it again within a second.
    lifted = b.admin("DELETE", "/network-bans", json={"ipv4_addresses": ["127.0.0.5"]})
    assert (lifted.status_code, lifted.json()) == (200, {"lifted": ["127.0.0.5"]})
    waited = within(1, lambda: all(fresh(g.url, "127.0.0.5", apikey=pub).status_code == 200
                                   for g in (a, b, a, b, a, b)))
    assert waited < 1
    assert a.admin("POST", "/network-bans/retrieve").json() == {"banned_ipv4_addresses": [], "bans": []}
    # Its refusals were forgotten with it: it starts again from nothing.
    assert fresh(a.url, "127.0.0.5", apikey="sb_publishable_x").status_code == 401
    assert fresh(b.url, "127.0.0.5", apikey=pub).status_code == 200


def test_a_block_started_on_one_instance_holds_on_the_other_within_a_second(gateways, pg_server):
    dsn = create_database(pg_server)
    env = {"GATEWAY_PROTECTION__BLOCK_AFTER": f"{THRESHOLD}/m"}
    a, b = gateways(workers=2, dsn=dsn, **env), gateways(workers=2, dsn=dsn, **env)
    pub = a.create_key("publishable")["api_key"]
    within(2, lambda: fresh(b.url, "127.0.0.6", apikey=pub).status_code == 200)
    with bound(a.url, "127.0.0.9") as scanner:  # one connection: one worker of a
        while scan(scanner).status_code != 429:
            pass
    assert within(1, lambda: all(fresh(b.url, "127.0.0.9", apikey=pub).status_code == 429 for _ in range(4))) < 1
    assert fresh(b.url, "127.0.0.6", apikey=pub).status_code == 200
    # The block list is in Postgres: a restart of both instances keeps it.
    a.stop(), b.stop()
    c = gateways(workers=2, dsn=dsn, **env)
    assert all(fresh(c.url, "127.0.0.9", apikey=pub).status_code == 429 for _ in range(4))
    assert fresh(c.url, "127.0.0.6", apikey=pub).status_code == 200


def test_with_the_database_away_a_worker_blocks_on_its_own_and_stores_it_later(gateways, tmp_path):
    from gateway.keys.db import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg")
    dsn = pg.start()
    try:
        g = gateways(dsn=dsn, GATEWAY_PROTECTION__BLOCK_AFTER=f"{THRESHOLD}/m", GATEWAY_KEYS__REFRESH_SECONDS="600")
        pub = g.create_key("publishable")["api_key"]
        pg.stop()
        with bound(g.url, "127.0.0.11") as scanner:
            statuses = [scanner.get("/rest/v1/todos", headers={"apikey": "sb_publishable_x"}).status_code
                        for _ in range(THRESHOLD + 5)]
        assert statuses == [401] * THRESHOLD + [429] * 5  # counted and blocked in memory
        within(5, lambda: "database unreachable for client blocks" in g.logs())
        assert fresh(g.url, "127.0.0.12", apikey=pub).status_code == 200  # known keys, other clients: as before
        assert g.logs().count("database unreachable for client blocks") == 1  # said once, not per request
        pg.start()
        within(10, lambda: "database reachable again for client blocks" in g.logs())
        within(5, lambda: g.admin("POST", "/network-bans/retrieve").json()["banned_ipv4_addresses"] == ["127.0.0.11"])
        assert "client 127.0.0.11 blocked for 600 s" in g.logs()
    finally:
        pg.stop()
