"""Quota counts in Postgres (gateway.rules.quotastore) with two workers' flushers on one real
database: one statement per exchange, everyone's counts read back, nothing lost when the store is
away, a restart's load seeing the month, a deleted key's counts gone, old rows deleted."""

from __future__ import annotations

import time
from types import SimpleNamespace

import asyncpg
import pytest

from gateway.keys import answers, shapes
from gateway.keys.db import connect, migrate
from gateway.keys.shapes import CreateApiKeyBody
from gateway.keys.store import Store, _init_conn
from gateway.rules import quotastore
from gateway.rules.quota import Quotas, day_of, parse_quota
from gateway.rules.quotastore import QuotaFlusher


async def open_store(dsn: str, statements: list[str] | None = None) -> Store:
    conn = await connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()

    async def init(c):
        await _init_conn(c)
        if statements is not None:
            c.add_query_logger(lambda record: "gateway." in record.query and statements.append(record.query))

    return Store(await asyncpg.create_pool(dsn, min_size=0, max_size=2, init=init), dsn, "supabase-self-hosted")


async def make_key(store: Store, quota: str) -> SimpleNamespace:
    row, _ = await store.create_key(shapes.parse(CreateApiKeyBody, type="publishable", name=f"q_{time.time_ns()}",
                                                 quota=quota), actor="t")
    return SimpleNamespace(id=str(row["id"]), quota=parse_quota(quota))


def admit(q: Quotas, entry, n: int = 1, now: float | None = None) -> list[bool]:
    out = []
    for _ in range(n):
        try:
            q.admit(SimpleNamespace(limited=None), entry, now)
            out.append(True)
        except Exception:
            out.append(False)
    return out


async def test_two_workers_share_counts_in_one_statement_each(dsn):
    statements: list[str] = []
    store = await open_store(dsn, statements)
    try:
        key = await make_key(store, "10/day")
        one, two = Quotas(), Quotas()
        f1, f2 = QuotaFlusher(one, store.pool, 1.0), QuotaFlusher(two, store.pool, 1.0)
        assert admit(one, key, 4) == [True] * 4
        assert admit(two, key, 3) == [True] * 3
        statements.clear()
        assert await f1.once() and await f2.once()
        assert len(statements) == 2
        assert await f1.once()  # reads what the second wrote
        assert one.usage[key.id].used == 7 and not one.usage[key.id].unsent
        assert admit(one, key, 4) == [True, True, True, False]  # 10, then spent
        await f1.once()
        await f2.once()
        assert admit(two, key) == [False]
        shown = await store.get_key(key.id)
        assert shown["quota_used"] == 10
    finally:
        await store.close()


async def test_counts_wait_while_the_store_is_away_and_are_written_once_it_is_back(dsn):
    store = await open_store(dsn)
    try:
        key = await make_key(store, "100/day")
        q = Quotas()

        class Down:
            async def fetch(self, *args):
                raise OSError("down")

        flusher = QuotaFlusher(q, Down(), 1.0)
        admit(q, key, 5)
        assert not await flusher.once()
        admit(q, key, 2)
        assert not await flusher.once()
        assert q.dirty == {key.id} and q.usage[key.id].unsent == {day_of(time.time()): 7}
        flusher.pool = store.pool
        assert await flusher.once()
        assert (await store.get_key(key.id))["quota_used"] == 7 and not q.usage[key.id].unsent
    finally:
        await store.close()


async def test_a_fresh_worker_loads_the_month(dsn):
    store = await open_store(dsn)
    try:
        key = await make_key(store, "6/month")
        first = Quotas()
        admit(first, key, 6)
        await QuotaFlusher(first, store.pool, 1.0).once()
        fresh = Quotas()
        await QuotaFlusher(fresh, store.pool, 1.0).load()
        assert admit(fresh, key) == [False]  # spent before its first request
    finally:
        await store.close()


async def test_a_deleted_key_leaves_no_counts(dsn):
    store = await open_store(dsn)
    try:
        key = await make_key(store, "6/day")
        q = Quotas()
        admit(q, key, 2)
        await QuotaFlusher(q, store.pool, 1.0).once()
        await store.delete_key(key.id, actor="t")
        admit(q, key, 1)  # counted by a worker that has not heard of the deletion yet
        await QuotaFlusher(q, store.pool, 1.0).once()
        assert await store.pool.fetchval("SELECT count(*) FROM gateway.quota_usage") == 0
    finally:
        await store.close()


async def test_old_rows_are_deleted(dsn, monkeypatch):
    store = await open_store(dsn)
    try:
        key = await make_key(store, "6/day")
        await store.pool.execute("INSERT INTO gateway.quota_usage (key_id, day, n) VALUES"
                                 " ($1::uuid, current_date - 100, 5), ($1::uuid, current_date, 1)", key.id)
        q = Quotas()
        flusher = QuotaFlusher(q, store.pool, 1.0)
        monkeypatch.setattr(quotastore, "CLEANUP_EVERY", 1)
        await flusher.once()
        assert await store.pool.fetchval("SELECT count(*) FROM gateway.quota_usage") == 1
    finally:
        await store.close()


@pytest.mark.parametrize("quota", ["3/day", "3/month"])
async def test_the_admin_answer_counts_the_period(dsn, quota):
    store = await open_store(dsn)
    try:
        key = await make_key(store, quota)
        await store.pool.execute(
            "INSERT INTO gateway.quota_usage (key_id, day, n) VALUES ($1::uuid, (now() AT TIME ZONE 'UTC')::date, 2),"
            " ($1::uuid, date_trunc('month', now() AT TIME ZONE 'UTC')::date - 1, 50)", key.id)
        yesterday_in_month = await store.pool.fetchval(
            "SELECT (now() AT TIME ZONE 'UTC')::date - 1 >= date_trunc('month', now() AT TIME ZONE 'UTC')::date")
        await store.pool.execute("INSERT INTO gateway.quota_usage (key_id, day, n) VALUES"
                                 " ($1::uuid, (now() AT TIME ZONE 'UTC')::date - 1, 4) ON CONFLICT DO NOTHING", key.id)
        row = await store.get_key(key.id)
        expected = 2 if quota.endswith("day") else 2 + (4 if yesterday_in_month else 0)
        assert row["quota_used"] == expected
        assert answers.key_json(row)["quota"]["left"] == max(0, 3 - expected)
    finally:
        await store.close()
