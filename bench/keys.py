"""Keys straight into the database: many at once by COPY (start-up), or without the change
notification so that running gateways do not know them yet (first use); a user JWT."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import jwt

from gateway.config import Settings
from gateway.keys import apikeys
from tests.helpers import JWT_SECRET

CHECKSUM_REF = Settings.model_fields["key_checksum_ref"].default  # what the gateways run with


def key_rows(n: int, secret_every: int = 10, name: str = "bench_key_{:06d}",
             checksum_ref: str = CHECKSUM_REF) -> tuple[list[tuple[Any, ...]], list[str]]:
    """``n`` valid key rows for gateway.api_keys and their plaintexts (every ``secret_every``-th a
    secret key; 0: none)."""
    rows, plain = [], []
    for i in range(n):
        kind = "secret" if secret_every and i % secret_every == secret_every - 1 else "publishable"
        key = apikeys.generate(kind, checksum_ref)  # type: ignore[arg-type]
        rows.append((uuid.uuid4(), kind, name.format(i), None, apikeys.display_prefix(key),
                     apikeys.hash_key(key), '{"role": "service_role"}' if kind == "secret" else None))
        plain.append(key)
    return rows, plain


async def insert_keys(dsn: str, rows: list[tuple[Any, ...]], notify: bool = True) -> None:
    """COPY the rows in; with ``notify=False`` the change trigger is skipped, so running gateways
    do not learn of the keys until their next full reload (a key "not yet in memory")."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",  # COPY is binary: version 1 + text
                                  encoder=lambda v: b"\x01" + v.encode(), decoder=lambda v: v[1:].decode())
        async with conn.transaction():
            if not notify:
                await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.copy_records_to_table(
                "api_keys", schema_name="gateway", records=rows,
                columns=["id", "type", "name", "description", "prefix", "hash", "secret_jwt_template"])
    finally:
        await conn.close()


def user_jwt() -> str:
    """An HS256 user session token the gateway verifies and passes through."""
    now = int(time.time())
    return jwt.encode({"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated",
                       "iat": now, "exp": now + 24 * 3600, "email": "bench@example.com"}, JWT_SECRET, algorithm="HS256")
