"""Usage per key (docs/api-keys-page.md): requests per hour over the last 7 days, counted in memory by
every worker and written by the batched flush of last use (never a write per request), served by
``GET /v1/projects/{ref}/api-keys/{id}/usage`` for keys and legacy keys alike."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.factories import LEGACY_ANON
from tests.upstreams import db_query, within

REQUESTS = 80


@pytest.fixture(scope="module")
def gw(gateways):
    """Two workers, each with its own counts."""
    return gateways(workers=2)


def usage(gw, key_id: str) -> dict:
    r = gw.admin("GET", f"/api-keys/{key_id}/usage")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    return r.json()


def count_usage_writes(dsn: str) -> None:
    """A statement-level trigger: one row per statement that writes gateway.key_usage."""
    db_query(dsn, """
        CREATE TABLE IF NOT EXISTS public.usage_writes (n int);
        CREATE OR REPLACE FUNCTION public.count_usage_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.usage_writes VALUES (1); RETURN NULL; END $$;
        DROP TRIGGER IF EXISTS count_usage_write ON gateway.key_usage;
        CREATE TRIGGER count_usage_write AFTER INSERT ON gateway.key_usage
            FOR EACH STATEMENT EXECUTE FUNCTION public.count_usage_write();
    """)


def test_counts_of_two_workers_add_up_without_a_write_per_request(gw):
    dsn = gw.env["GATEWAY_DATABASE_URL"]
    made = gw.create_key("secret")
    assert usage(gw, made["id"])["total"] == 0
    count_usage_writes(dsn)
    started = time.monotonic()

    def hammer() -> None:  # a new connection per request: the two workers share them out
        for _ in range(REQUESTS // 4):
            r = httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": made["api_key"]})
            assert r.status_code == 200

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    within(5, lambda: usage(gw, made["id"])["total"] == REQUESTS)
    answer = usage(gw, made["id"])
    writes = len(db_query(dsn, "SELECT 1 FROM public.usage_writes"))
    # One statement per worker per flush (0.5 s) at most, however many requests there were.
    assert 1 <= writes <= 2 * (elapsed / 0.5 + 2) < REQUESTS
    db_query(dsn, "DROP TRIGGER count_usage_write ON gateway.key_usage")

    assert answer["id"] == made["id"] and answer["last_used_at"] is not None
    hours = answer["hours"]
    assert len(hours) == 7 * 24
    starts = [datetime.fromisoformat(h["start"]) for h in hours]
    assert all(b - a == (starts[1] - starts[0]) for a, b in zip(starts, starts[1:]))
    assert (starts[1] - starts[0]).total_seconds() == 3600
    now = datetime.now(timezone.utc)
    assert starts[-1] <= now < starts[-1].replace(minute=59, second=59, microsecond=999999)
    assert sum(h["requests"] for h in hours) == REQUESTS
    assert hours[-1]["requests"] + hours[-2]["requests"] == REQUESTS  # now (or the hour just ended)


def test_legacy_keys_have_usage_enabled_or_not(gw):
    r = httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": LEGACY_ANON})
    assert r.status_code == 200
    within(5, lambda: usage(gw, "anon")["total"] >= 1)
    assert usage(gw, "anon")["last_used_at"] is not None
    assert usage(gw, "service_role")["id"] == "service_role"
    assert gw.admin("PUT", "/api-keys/legacy", params={"enabled": "false"}).status_code == 200
    try:
        disabled = usage(gw, "anon")  # the page shows their last use while disabled too
        assert disabled["total"] >= 1 and disabled["last_used_at"] is not None
    finally:
        assert gw.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).status_code == 200


@pytest.mark.parametrize("key_id", ["00000000-0000-0000-0000-000000000000", "not-a-key", "legacy"])
def test_unknown_key_is_404(gw, key_id):
    r = gw.admin("GET", f"/api-keys/{key_id}/usage")
    assert r.status_code == 404 and r.json() == {"message": "API key not found"}


def test_usage_needs_the_token(gw):
    made = gw.create_key("publishable")
    r = httpx.get(f"{gw.admin_url}/v1/projects/default/api-keys/{made['id']}/usage")
    assert r.status_code == 401


def test_deleted_key_has_no_usage(gw):
    made = gw.create_key("publishable")
    assert httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": made["api_key"]}).status_code == 200
    within(5, lambda: usage(gw, made["id"])["total"] == 1)
    assert gw.admin("DELETE", f"/api-keys/{made['id']}").status_code == 200
    assert gw.admin("GET", f"/api-keys/{made['id']}/usage").status_code == 404
    rows = db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT 1 FROM gateway.key_usage WHERE key_id = $1", made["id"])
    assert rows == []
