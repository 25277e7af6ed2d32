"""docs/requests.md and docs/operations.md on the request path: two gateway instances on one database (changes on
A take effect on B within 1 s, also after B's notification connection dropped), last_used_at
batched rather than written per request, the JSON access log, and that no key, JWT or admin
token ever lands in a log line or a metric."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gateway.keys import apikeys
from tests.factories import AUTH_USER_JWK, LEGACY_ANON, LEGACY_SERVICE_ROLE, es256, hs256, user_claims
from tests.helpers import ADMIN_TOKEN, create_database, run_cli
from tests.upstreams import db_query, echo_header, random_part, within

PROPAGATION = 1.0  # docs/requests.md and docs/operations.md: within 1 second


@pytest.fixture(scope="module")
def shared_dsn(pg_server) -> str:
    return create_database(pg_server)


@pytest.fixture(scope="module")
def a(gateways, shared_dsn):
    return gateways(dsn=shared_dsn)


@pytest.fixture(scope="module")
def b(gateways, shared_dsn, a):
    """The other instance, with two workers: each has its own key ring to keep in step."""
    return gateways(dsn=shared_dsn, workers=2)


@pytest.fixture(scope="module")
def secrets_seen() -> set[str]:
    """Every key, JWT and token this module handled: none may appear in any log line."""
    return {ADMIN_TOKEN, LEGACY_ANON, LEGACY_SERVICE_ROLE}


def status(gw, key: str, path: str = "/rest/v1/todos", **headers: str) -> int:
    return httpx.get(gw.url + path, headers={"apikey": key, **headers}, timeout=10).status_code


def all_refused(gw, key: str, times: int = 10) -> bool:
    """Refused by every worker (requests spread over them), not just by one."""
    return all(status(gw, key) == 401 for _ in range(times))


def make(gw, secrets_seen, key_type: str, name: str, **body) -> dict:
    made = gw.create_key(key_type, name=name, **body)
    secrets_seen.add(made["api_key"])
    return made


# --- propagation ---------------------------------------------------------------------------------


def test_key_created_on_a_works_on_b_at_once(a, b, secrets_seen):
    made = make(a, secrets_seen, "publishable", "made_on_a")
    assert status(b, made["api_key"]) == 200
    assert all(status(b, made["api_key"]) == 200 for _ in range(6))


def test_key_deleted_on_a_refused_by_b_within_1s(a, b, secrets_seen):
    made = make(a, secrets_seen, "secret", "deleted_on_a")
    key = made["api_key"]
    assert all(status(b, key) == 200 for _ in range(6))  # every worker of B has it in memory now
    assert a.admin("DELETE", f"/api-keys/{made['id']}", params={"was_compromised": "true"}).status_code == 200
    within(PROPAGATION, lambda: all_refused(b, key, 4))
    assert all_refused(b, key)
    assert status(a, key) == 401


def test_imported_key_accepted_by_b_within_1s_despite_a_recent_refusal(a, b, shared_dsn, secrets_seen):
    """B remembers unknown keys briefly; the notification of an insert must clear that."""
    key = apikeys.generate("publishable", "supabase-self-hosted")
    secrets_seen.add(key)
    assert all_refused(b, key, 4)
    r = run_cli("keys", "import", "--type", "publishable", "--name", "imported_key", "--key", key,
                env={"GATEWAY_DATABASE_URL": shared_dsn})
    assert r.returncode == 0, r.stderr
    within(PROPAGATION, lambda: all(status(b, key) == 200 for _ in range(4)))


def test_legacy_switch_on_a_reaches_b_within_1s(a, b):
    assert status(b, LEGACY_ANON) == 200
    assert a.admin("PUT", "/api-keys/legacy", params={"enabled": "false"}).status_code == 200
    try:
        within(PROPAGATION, lambda: all_refused(b, LEGACY_ANON, 4) and all_refused(b, LEGACY_SERVICE_ROLE, 4))
        r = httpx.get(b.url + "/rest/v1/todos", headers={"apikey": LEGACY_ANON})
        assert r.json()["message"] == "Legacy API keys are disabled"
    finally:
        assert a.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).status_code == 200
    within(PROPAGATION, lambda: all(status(b, LEGACY_ANON) == 200 for _ in range(4)))


def test_template_change_on_a_reaches_b_within_1s(a, b, secrets_seen):
    made = make(a, secrets_seen, "secret", "templated_on_a")

    def role_on_b() -> set[str]:
        roles = set()
        for _ in range(4):
            r = httpx.get(b.url + "/rest/v1/todos", headers={"apikey": made["api_key"]})
            roles.add(r.json()["verified"]["authorization"]["claims"]["role"])
        return roles

    assert role_on_b() == {"service_role"}
    r = a.admin("PATCH", f"/api-keys/{made['id']}", json={"secret_jwt_template": {"role": "authenticated"}})
    assert r.status_code == 200, r.text
    within(PROPAGATION, lambda: role_on_b() == {"authenticated"})


def test_b_keeps_in_step_after_its_notification_connection_drops(a, b, shared_dsn, secrets_seen):
    made = make(a, secrets_seen, "publishable", "survives_reconnect")
    key = made["api_key"]
    assert all(status(b, key) == 200 for _ in range(6))
    listeners = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
    before = len(db_query(shared_dsn, listeners))
    assert before == 3  # A's worker and B's two
    db_query(shared_dsn, f"SELECT pg_terminate_backend(pid) FROM ({listeners}) l")
    # Deleted while nobody listens: B catches up when it reconnects (and reloads).
    assert a.admin("DELETE", f"/api-keys/{made['id']}").status_code == 200
    within(3 * PROPAGATION, lambda: all_refused(b, key, 4))
    within(5, lambda: len(db_query(shared_dsn, listeners)) == before)
    # And notifications flow again.
    other = make(a, secrets_seen, "publishable", "after_reconnect")
    assert all(status(b, other["api_key"]) == 200 for _ in range(6))
    assert a.admin("DELETE", f"/api-keys/{other['id']}").status_code == 200
    within(PROPAGATION, lambda: all_refused(b, other["api_key"], 4))


# --- last use ---------------------------------------------------------------------------------------


def test_last_used_at_is_batched(a, b, shared_dsn, secrets_seen):
    db_query(shared_dsn, """
        CREATE TABLE IF NOT EXISTS public.key_updates (n int);
        CREATE OR REPLACE FUNCTION public.count_key_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.key_updates VALUES (1); RETURN NULL; END $$;
        DROP TRIGGER IF EXISTS count_key_update ON gateway.api_keys;
        CREATE TRIGGER count_key_update AFTER UPDATE ON gateway.api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION public.count_key_update();
    """)
    made = make(a, secrets_seen, "secret", "used_a_lot")
    assert made["last_used_at"] is None
    time.sleep(0.6)  # let earlier uses flush
    db_query(shared_dsn, "TRUNCATE public.key_updates")
    requests = 60
    started = time.monotonic()

    def hammer() -> None:
        with httpx.Client(base_url=b.url) as c:
            for _ in range(requests // 6):
                assert c.get("/rest/v1/todos", headers={"apikey": made["api_key"]}).status_code == 200

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    within(5, lambda: a.admin("GET", f"/api-keys/{made['id']}").json()["last_used_at"] is not None)
    writes = len(db_query(shared_dsn, "SELECT 1 FROM public.key_updates"))
    # One UPDATE per worker per flush interval (0.5 s) at most, however many requests there were.
    assert 1 <= writes <= 2 * (elapsed / 0.5 + 2) < requests
    db_query(shared_dsn, "DROP TRIGGER count_key_update ON gateway.api_keys")


def test_legacy_last_use_is_kept(b, shared_dsn):
    assert status(b, LEGACY_SERVICE_ROLE) == 200

    def recorded() -> bool:
        rows = db_query(shared_dsn, "SELECT value FROM gateway.settings WHERE key = 'legacy_last_used'")
        return bool(rows) and "service_role" in json.loads(rows[0]["value"])

    within(5, recorded)


# --- access log, metrics, and nothing secret in either -------------------------------------------------


def test_access_log_line(a, secrets_seen):
    made = make(a, secrets_seen, "secret", "logged_key")
    r = httpx.get(a.url + "/rest/v1/logcheck", params={"apikey": made["api_key"], "select": "*"},
                  headers={"X-Request-Id": "spoofed"})
    assert r.status_code == 200
    rid = r.headers["sb-request-id"]
    assert uuid.UUID(rid).version == 7
    assert echo_header(r.json(), "sb-request-id") == echo_header(r.json(), "x-request-id") == [rid]

    def line():
        return [e for e in a.access_log() if e["path"] == "/rest/v1/logcheck"]

    within(5, lambda: bool(line()))
    [entry] = line()
    assert entry["method"] == "GET"
    assert entry["status"] == 200
    assert entry["role"] == "service_role"
    assert entry["key_id"] == made["id"]
    assert entry["key_prefix"] == made["prefix"]
    assert entry["service"] == "rest"
    assert isinstance(entry["duration_ms"], (int, float)) and entry["duration_ms"] >= 0
    assert entry["time"].endswith("Z")
    assert entry["request_id"] == rid  # one request followed from the client into the service's logs
    httpx.get(a.url + "/rest/v1/logcheck2")
    within(5, lambda: any(e["path"] == "/rest/v1/logcheck2" and e["status"] == 401 and e["key_id"] is None
                          for e in a.access_log()))


def mixed_run(gw, secrets_seen) -> None:
    """Successes and failures of every kind, keys in headers, query strings and bearers."""
    pub = make(gw, secrets_seen, "publishable", f"mixed_pub_{gw.port}")["api_key"]
    sec = make(gw, secrets_seen, "secret", f"mixed_sec_{gw.port}")["api_key"]
    user = hs256(user_claims())
    user_es = es256(user_claims(), AUTH_USER_JWK)
    expired = hs256(user_claims(ttl=-5))
    secrets_seen.update({user, user_es, expired, "wrong-admin-token-do-not-log"})
    forged = sec[:-1] + ("A" if sec[-1] != "A" else "B")
    secrets_seen.add(forged)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        calls = [
            ("GET", "/rest/v1/todos", {"apikey": pub}, {}),
            ("GET", "/rest/v1/todos", {}, {"apikey": sec}),
            ("GET", "/rest/v1/", {"apikey": pub}, {}),
            ("GET", "/rest/v1/todos", {"apikey": forged}, {}),
            ("GET", "/rest/v1/todos", {"apikey": sec, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) "
                                                                     "Gecko/20100101 Firefox/133.0"}, {}),
            ("GET", "/rest/v1/todos", {"apikey": pub, "Authorization": f"Bearer {sec}"}, {}),
            ("GET", "/rest/v1/todos", {"apikey": pub, "Authorization": f"Bearer {user}"}, {}),
            ("GET", "/rest/v1/todos", {"apikey": pub, "Authorization": f"Bearer {user_es}"}, {}),
            ("GET", "/rest/v1/todos", {"apikey": pub, "Authorization": f"Bearer {expired}"}, {}),
            ("GET", "/rest/v1/todos", {"apikey": LEGACY_SERVICE_ROLE}, {}),
            ("GET", "/functions/v1/f", {"Authorization": f"Bearer {sec}"}, {}),
            ("GET", "/storage/v1/object/a", {}, {"apikey": pub, "token": "signed"}),
            ("GET", "/realtime/v1/api/x", {}, {"apikey": pub}),
            ("GET", "/rest/v1/slow", {"apikey": pub}, {"seconds": "0"}),
            ("GET", "/rest/v1/todos", {"apikey": "sb_secret_short"}, {}),
            ("GET", "/rest/v1/a%2Fb", {"apikey": sec}, {}),
            ("GET", "/mcp", {"apikey": sec}, {}),
        ]
        for method, path, headers, params in calls:
            r = c.request(method, path, headers=headers, params=params)
            if r.status_code == 200 and "verified" in r.text:  # the minted JWTs that reached upstream
                for name in ("authorization", "apikey"):
                    for value in echo_header(r.json(), name):
                        secrets_seen.add(value.removeprefix("Bearer "))
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&vsn=1.0.0", open_timeout=10) as conn:
        conn.send("info")
        seen = json.loads(conn.recv(timeout=10))
        secrets_seen.update(echo_header(seen, "x-api-key"))
    with pytest.raises(InvalidStatus):
        with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={forged}", open_timeout=10):
            pass
    assert httpx.get(gw.admin_url + "/metrics",
                     headers={"Authorization": "Bearer wrong-admin-token-do-not-log"}).status_code == 401
    assert httpx.get(gw.admin_url + "/metrics").status_code == 401
    gw.admin("GET", "/api-keys", params={"reveal": "true"})


def test_metrics(a, secrets_seen):
    mixed_run(a, secrets_seen)
    r = httpx.get(a.admin_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    text = r.text
    for series in ('gateway_requests_total{role="service_role",service="rest",status="200",upstream="rest"}',
                   'gateway_requests_total{role="anon",service="rest",status="200",upstream="rest"}',
                   'gateway_requests_total{role="authenticated",service="rest",status="200",upstream="rest"}',
                   'gateway_requests_total{role="none",service="rest",status="401",upstream="none"}',
                   'gateway_requests_total{role="service_role",service="functions",status="200",upstream="functions"}',
                   'gateway_requests_total{role="none",service="gateway",status="400",upstream="none"}',
                   'gateway_requests_total{role="none",service="gateway",status="403",upstream="none"}',
                   ):
        assert series in text, series
    # latency by service, upstream and status class only: a bounded label set
    buckets = [line for line in text.splitlines() if line.startswith("gateway_request_duration_seconds_bucket{")]
    assert all(set(re.findall(r'(\w+)="', line)) == {"service", "upstream", "status_class", "le"} for line in buckets)
    assert 'gateway_request_duration_seconds_bucket{le="+Inf",service="rest",status_class="2xx",upstream="rest"}' \
        in text
    assert 'gateway_request_duration_seconds_count{service="rest",status_class="4xx",upstream="none"}' in text
    ok = [line for line in buckets if 'le="+Inf"' in line and 'status_class="2xx"' in line and 'service="rest"' in line]
    assert float(ok[0].rsplit(" ", 1)[1]) >= 4
    count = [line for line in text.splitlines()
             if line.startswith('gateway_requests_total{role="anon",service="rest",status="200",upstream="rest"}')]
    assert float(count[0].rsplit(" ", 1)[1]) >= 2
    for secret in secrets_seen:
        assert secret not in text
    assert "sb_secret_" not in text and "sb_publishable_" not in text and "eyJ" not in text


def test_metrics_of_a_multi_worker_instance(b, secrets_seen):
    mixed_run(b, secrets_seen)
    r = httpx.get(b.admin_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    assert 'gateway_requests_total{role="service_role",service="rest",status="200",upstream="rest"}' in r.text
    for secret in secrets_seen:
        assert secret not in r.text
    # the key ring's gauges, one series for the instance (livemax, livemin), no pid label
    samples = dict(line.rsplit(" ", 1) for line in r.text.splitlines() if line.startswith("gateway_key_ring_"))
    assert set(samples) == {"gateway_key_ring_keys", "gateway_key_ring_last_reload_timestamp_seconds",
                            "gateway_key_ring_last_check_timestamp_seconds"}
    assert float(samples["gateway_key_ring_keys"]) >= 2
    assert time.time() - 600 < float(samples["gateway_key_ring_last_reload_timestamp_seconds"]) <= time.time()


def test_a_dead_workers_key_ring_gauges_are_forgotten(tmp_path, monkeypatch):
    """The supervisor drops a dead worker's live gauges (prometheus_client's mark_process_dead),
    so that its last reload time does not stay the instance's oldest for ever."""
    from gateway.process.supervisor import forget_metrics

    names = ["gauge_livemin_41.db", "gauge_livemax_41.db", "gauge_livemin_410.db", "counter_41.db",
             "histogram_41.db", "gauge_livemax_7.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    forget_metrics(41, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {"gauge_livemin_41.db",
                                                                              "gauge_livemax_41.db"})
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    forget_metrics(7)  # a single worker: no metrics directory, nothing to do
    assert (tmp_path / "gauge_livemax_7.db").exists()


def test_no_secret_in_any_log_line(a, b, secrets_seen):
    """Runs last: everything this module did has been logged by now."""
    time.sleep(0.6)  # a last flush of last_used, and its log lines if any
    assert len(secrets_seen) > 20
    for gw in (a, b):
        logs = gw.logs()
        assert gw.access_log(), "no access log at all"
        for secret in secrets_seen:
            assert secret not in logs, "a secret value appears in the gateway's output"
            if secret.startswith("sb_"):
                assert random_part(secret) not in logs  # not even the random part
            if secret.count(".") == 2:
                assert secret.split(".")[2] not in logs  # nor a JWT's signature
        assert "sb_secret_" not in logs.replace("\"key_prefix\":\"sb_secret_", "")
        assert "eyJ" not in logs
