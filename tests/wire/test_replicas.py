"""docs/routing.md, read replicas, on the wire: three real upstreams (a primary and two replicas,
each counting what it served) behind a real gateway. Reads spread over all three, writes and
RPC go to the primary only, a replica that stops or answers 503 causes no failed request and is
used again once back, and the access log and metrics name the upstream that served."""

from __future__ import annotations

import json
import time

import pytest

from tests.upstreams import RecordingServer, within

RETRY = 1.0


@pytest.fixture(scope="module")
def servers():
    started = [RecordingServer(name).start() for name in ("primary", "replica_1", "replica_2")]
    yield started
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def gw(gateways, servers, serving):
    primary, *replicas = servers
    return gateways(GATEWAY_UPSTREAMS__REST=primary.url,
                    GATEWAY_UPSTREAMS__REST_REPLICAS=json.dumps([r.url for r in replicas]),
                    GATEWAY_UPSTREAMS__REPLICA_RETRY_SECONDS=str(RETRY), **serving)


@pytest.fixture(autouse=True)
def fresh(servers):
    for s in servers:
        s.seen.clear()
        s.status = 200


def served_by(client, pub, n: int, method: str = "GET", path: str = "/rest/v1/todos") -> list[str]:
    out = []
    for _ in range(n):
        r = client.request(method, path, headers={"apikey": pub})
        assert r.status_code == 200, r.text
        out.append(r.json()["served_by"] if method != "HEAD" else "")
    return out


def test_reads_spread_over_the_primary_and_the_replicas(client, pub, servers):
    names = served_by(client, pub, 60)
    assert {n: names.count(n) for n in set(names)}.keys() == {"primary", "replica_1", "replica_2"}
    assert min(names.count(n) for n in ("primary", "replica_1", "replica_2")) >= 10
    served_by(client, pub, 30, "HEAD")
    assert all(s.count("HEAD") >= 3 for s in servers)
    for _ in range(12):
        assert client.get("/graphql/v1", params={"query": "{x}"}, headers={"apikey": pub}).status_code == 200
    assert sum(1 for s in servers[1:] for m, p in s.seen if p.startswith("/rpc/graphql")) >= 4


def test_writes_and_rpc_go_to_the_primary_only(client, pub, servers):
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        assert set(served_by(client, pub, 6, method)) == {"primary"}
    assert set(served_by(client, pub, 6, "POST", "/rest/v1/rpc/do_something")) == {"primary"}
    r = client.post("/graphql/v1", headers={"apikey": pub}, json={"query": "mutation {x}"})
    assert r.json()["served_by"] == "primary"
    assert servers[1].count() == servers[2].count() == 0


def test_a_stopped_replica_causes_no_failed_request_and_is_used_again(client, pub, servers):
    replica = servers[1]
    replica.stop()
    try:
        names = served_by(client, pub, 40)  # every one answered
        assert "replica_1" not in names and {"primary", "replica_2"} <= set(names)
    finally:
        replica.start()
    time.sleep(RETRY + 0.2)
    within(5, lambda: "replica_1" in served_by(client, pub, 6))


def test_a_replica_answering_503_is_skipped_without_a_failed_request(client, pub, servers):
    servers[2].status = 503
    names = served_by(client, pub, 30)
    assert "replica_2" not in names  # its 503s were retried elsewhere, the client never saw one
    assert servers[2].count() <= 2  # and it was left alone after failing
    servers[2].status = 200
    time.sleep(RETRY + 0.2)
    within(5, lambda: "replica_2" in served_by(client, pub, 6))


def test_a_write_is_never_retried(client, pub, servers):
    servers[0].status = 503
    r = client.post("/rest/v1/todos", headers={"apikey": pub}, json={})
    assert r.status_code == 503 and r.json()["served_by"] == "primary"
    assert servers[0].count("POST") == 1


def test_the_access_log_and_metrics_name_the_upstream(gw, client, pub):
    served_by(client, pub, 12)
    within(3, lambda: {line.get("upstream") for line in gw.access_log() if line.get("status") == 200}
           >= {"rest", "rest_replica_1", "rest_replica_2"})
    within(3, lambda: 'upstream="rest_replica_2"' in gw.metrics())
