"""Migrations: plain ordered SQL files, each applied exactly once, even by instances starting
together; the gateway's tables live in their own schema."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time

import asyncpg
import pytest

from gateway.keys import answers, db
from gateway.keys.db import MIGRATION_LOCK, migrate, migration_files
from tests.helpers import REPO, gateway_cmd

VERSIONS = [v for v, _ in migration_files()]


async def applied_versions(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM gateway.schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def wait_for_lock_waiters(conn: asyncpg.Connection, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        if waiting >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} sessions waited for the migration lock")


def test_migration_files_are_plain_ordered_sql():
    files = sorted(p.name for p in (REPO / "migrations").iterdir())
    assert files and all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", f) for f in files), files
    assert VERSIONS == [f.removesuffix(".sql") for f in files]
    assert VERSIONS[0] == "0001_keys"


async def test_migrate_applies_each_file_once_and_is_idempotent(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        assert await migrate(conn) == VERSIONS
        assert await migrate(conn) == []
        assert await migrate(conn) == []
    finally:
        await conn.close()
    assert await applied_versions(dsn) == VERSIONS


async def test_gateway_tables_live_in_their_own_schema(dsn):
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        rels = await conn.fetch(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'")
        assert {r["nspname"] for r in rels} == {"gateway"}
        assert {"api_keys", "settings", "audit_log", "schema_migrations"} <= {r["relname"] for r in rels}
        funcs = await conn.fetch(
            "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')")
        assert {r["nspname"] for r in funcs} <= {"gateway"}
    finally:
        await conn.close()


async def test_two_migrations_on_two_connections_at_once_apply_once(dsn):
    holder = await asyncpg.connect(dsn)
    conns = [await asyncpg.connect(dsn) for _ in range(2)]
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        both = asyncio.gather(*(migrate(c) for c in conns))
        await wait_for_lock_waiters(holder, 2)  # both really are racing
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        results = await both
    finally:
        for c in (holder, *conns):
            await c.close()
    assert sorted(results, key=len) == [[], VERSIONS]
    assert await applied_versions(dsn) == VERSIONS


async def test_two_concurrent_migrate_commands_apply_once(dsn, tmp_path):
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        env = {**os.environ, "GATEWAY_DATABASE_URL": dsn}
        procs = [subprocess.Popen(gateway_cmd("migrate"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            await wait_for_lock_waiters(holder, 2)
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in procs]
    finally:
        await holder.close()
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdouts = sorted(out.strip() for out, _ in outputs)
    assert stdouts == sorted([f"applied {', '.join(VERSIONS)}", "migrations are up to date"])
    assert await applied_versions(dsn) == VERSIONS


async def test_a_new_file_is_applied_later_and_only_it(dsn, monkeypatch):
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        extra = [*migration_files(), ("9001_extra", "CREATE TABLE gateway.extra (id int);")]
        monkeypatch.setattr(db, "migration_files", lambda: extra)
        assert await migrate(conn) == ["9001_extra"]
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM gateway.extra") == 0
    finally:
        await conn.close()
    assert await applied_versions(dsn) == [*VERSIONS, "9001_extra"]


async def test_publishable_keys_made_before_0002_stay_masked_newer_ones_are_shown(dsn, monkeypatch):
    from gateway.keys import apikeys, shapes
    from gateway.keys.store import Store

    old_key = apikeys.generate("publishable", "supabase-self-hosted")
    monkeypatch.setattr(db, "migration_files", lambda: migration_files()[:1])  # a gateway of before
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO gateway.api_keys (type, name, prefix, hash) VALUES ('publishable', 'old_one',"
                           " $1, $2)", apikeys.display_prefix(old_key), apikeys.hash_key(old_key))
        monkeypatch.undo()
        assert await migrate(conn) == VERSIONS[1:]
    finally:
        await conn.close()
    store = await Store.open(dsn, "supabase-self-hosted")
    try:
        new = shapes.parse(shapes.CreateApiKeyBody, type="publishable", name="new_one")
        _, new_key = await store.create_key(new, actor="t")
        shown = {r["name"]: answers.key_json(r)["api_key"] for r in await store.list_keys()}
    finally:
        await store.close()
    assert shown == {"old_one": apikeys.masked("publishable"), "new_one": new_key}


async def test_a_failing_migration_applies_nothing(dsn, monkeypatch):
    monkeypatch.setattr(db, "migration_files", lambda: [*migration_files(), ("9002_broken", "CREATE TABLE (;")])
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrate(conn)
        # all or nothing: not even the good files are recorded, and the lock is free again
        assert await conn.fetchval("SELECT to_regclass('gateway.schema_migrations')") is None
        assert await conn.fetchval("SELECT to_regclass('gateway.api_keys')") is None
        monkeypatch.undo()
        assert await migrate(conn) == VERSIONS
    finally:
        await conn.close()


def test_migrations_ship_in_the_package():
    """The wheel carries migrations/ as gateway.migrations (pyproject maps it)."""
    text = (REPO / "pyproject.toml").read_text()
    assert '"gateway.migrations" = "migrations"' in text and '"gateway.migrations" = ["*.sql"]' in text
