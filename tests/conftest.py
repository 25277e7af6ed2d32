"""Fixtures every suite shares: one real embedded PostgreSQL per test session, a fresh
database per test that asks for one, and the baseline environment of a gateway under test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.db import EmbeddedPostgres
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, create_database


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of the ``postgres`` database on a real embedded server, stopped at the end."""
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="gw-pg-")))
    dsn = server.start()
    _run_sql(dsn, "ALTER SYSTEM SET fsync = off", "ALTER SYSTEM SET synchronous_commit = off",
             "ALTER SYSTEM SET full_page_writes = off", "SELECT pg_reload_conf()")
    yield dsn
    server.stop()


def _run_sql(dsn: str, *statements: str) -> None:
    """Throw-away test data: durability only slows the suite down."""
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def dsn(pg_server: str) -> str:
    """A fresh empty database for this test."""
    return create_database(pg_server)


@pytest.fixture
def gateway_env(dsn: str) -> dict[str, str]:
    """What a gateway under test runs with: its own database, known JWT secret and admin token."""
    return {
        "GATEWAY_DATABASE_URL": dsn,
        "GATEWAY_JWT__SECRET": JWT_SECRET,
        "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
        "GATEWAY_KEYS__LAST_USED_FLUSH_SECONDS": "0.5",
    }
