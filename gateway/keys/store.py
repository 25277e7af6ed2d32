"""The key store in Postgres: every statement for keys, settings and the audit log.

Keys arrive as validated request models (``gateway.keys.shapes``); only hashes are stored, and each
change writes its audit row in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, AsyncIterator

import asyncpg

from gateway.keys import apikeys
from gateway.keys.answers import audit_changes
from gateway.keys.checks import InvalidInput, check_import, check_text
from gateway.keys.ruleshapes import QUOTA_USED_SQL
from gateway.keys.shapes import CreateApiKeyBody, UpdateApiKeyBody

RING_BATCH = 5000  # rows a round trip in a full reload of the key ring
# A key with nothing but the defaults, as the database can tell it (a key it does not call plain
# is read whole and may still be packed by gateway.keys.keytable); its packed record: the SHA256,
# the id, 0 (publishable) or 1 (secret), the display prefix's 6 characters after the type's.
_RING_PLAIN = ("hash !~ '[^-_0-9A-Za-z]' AND limits IS NULL AND expires_at IS NULL AND allowed_origins IS NULL"
               " AND allowed_ips IS NULL AND allowed_services IS NULL AND allowed_resources IS NULL"
               " AND allowed_methods IS NULL AND quota IS NULL AND right(prefix, 6) !~ '[^-_0-9A-Za-z]'"
               " AND ((type = 'publishable' AND length(prefix) = 21 AND left(prefix, 15) = 'sb_publishable_')"
               " OR (type = 'secret' AND length(prefix) = 16 AND left(prefix, 10) = 'sb_secret_' AND"
               """ (secret_jwt_template IS NULL OR secret_jwt_template = '{"role": "service_role"}'::jsonb)))""")
RING_PACKED_SQL = ("SELECT decode(translate(hash, '-_', '+/') || '=', 'base64') || uuid_send(id)"
                   " || CASE WHEN type = 'publishable' THEN '\\x00'::bytea ELSE '\\x01'::bytea END"
                   " || convert_to(right(prefix, 6), 'UTF8') AS packed"
                   f" FROM gateway.api_keys WHERE {_RING_PLAIN} ORDER BY 1")
RING_OTHERS_SQL = ("SELECT id, type, prefix, hash, secret_jwt_template, limits, expires_at, allowed_origins, allowed_ips,"
                   " allowed_services, allowed_resources, allowed_methods, quota"
                   f" FROM gateway.api_keys WHERE NOT ({_RING_PLAIN})")
FINGERPRINT_SQL = "SELECT count(*), max(updated_at) FROM gateway.api_keys"
KEY_COLUMNS = ("id, type, name, description, prefix, hash, secret_jwt_template, inserted_at, updated_at, last_used_at,"
               " publishable_key, limits, expires_at, allowed_origins, allowed_ips, allowed_services,"
               f" allowed_resources, allowed_methods, quota, {QUOTA_USED_SQL}")
BOOTSTRAP_LOCK = 7_221_530_002
USAGE_KEEP_HOURS = 8 * 24  # the page shows 7 days
# One statement for a whole flush: data-modifying CTEs run once each, read or not.
TOUCH_SQL = """
WITH keys AS (
    UPDATE gateway.api_keys k SET last_used_at = greatest(k.last_used_at, to_timestamp(u.t))
    FROM unnest($1::uuid[], $2::float8[]) AS u(id, t) WHERE k.id = u.id
), legacy AS (
    INSERT INTO gateway.settings (key, value) SELECT 'legacy_last_used', $3::jsonb WHERE $3::jsonb <> '{}'
    ON CONFLICT (key) DO UPDATE SET value = gateway.settings.value || excluded.value, updated_at = now()
), counted AS (
    INSERT INTO gateway.key_usage (key_id, hour, n)
    SELECT u.id, to_timestamp(u.h), u.n FROM unnest($4::text[], $5::float8[], $6::bigint[]) AS u(id, h, n)
    ON CONFLICT (key_id, hour) DO UPDATE SET n = gateway.key_usage.n + excluded.n
), pruned AS (
    DELETE FROM gateway.key_usage WHERE hour < to_timestamp($7)
)
SELECT 1
"""


class NotFound(LookupError):
    pass


def parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(value) from None


@dataclass(frozen=True)
class Legacy:
    enabled: bool
    changed_at: datetime | None


async def _init_conn(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Store:
    """Every statement the gateway runs. Mutations write an audit row in the same transaction."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, checksum_ref: str) -> None:
        self.pool = pool
        self.dsn = dsn  # for the LISTEN connection, which lives outside the pool
        self.checksum_ref = checksum_ref

    @classmethod
    async def open(cls, dsn: str, checksum_ref: str, max_size: int = 4) -> "Store":
        from gateway.keys.db import DatabaseError, safe_reason

        try:
            # min_size=0: connections open on demand, so a database outage leaves no pool task
            # retrying (and logging tracebacks) in the background; idle ones are kept for reuse.
            pool = await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, timeout=10, init=_init_conn)
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            raise DatabaseError(f"database unavailable: cannot connect: {safe_reason(e)}") from None
        return cls(pool, dsn, checksum_ref)

    async def close(self) -> None:
        await self.pool.close()

    # --- keys ---------------------------------------------------------------------------

    async def list_keys(self) -> list[asyncpg.Record]:
        """Publishable keys first, then secret ones (as the Management API lists them), oldest first."""
        return await self.pool.fetch(
            f"SELECT {KEY_COLUMNS} FROM gateway.api_keys ORDER BY type = 'secret', inserted_at, id")

    async def get_key(self, key_id: str | uuid.UUID) -> asyncpg.Record:
        kid = key_id if isinstance(key_id, uuid.UUID) else parse_id(key_id)
        row = await self.pool.fetchrow(f"SELECT {KEY_COLUMNS} FROM gateway.api_keys WHERE id = $1", kid)
        if row is None:
            raise NotFound(str(key_id))
        return row

    async def key_fingerprint(self) -> tuple[int, Any]:
        """Changes whenever a key is created, changed or deleted (count and last update)."""
        row = await self.pool.fetchrow(FINGERPRINT_SQL)
        return row[0], row[1]

    @contextlib.asynccontextmanager
    async def ring_rows(self) -> AsyncIterator[tuple[tuple[int, Any], AsyncIterator[list[bytes]], AsyncIterator[asyncpg.Record]]]:
        """What the key ring needs of every key, with the fingerprint of the same snapshot: keys
        with nothing but the defaults as packed records of ``gateway.keys.keytable``, in order (made
        by the database), then the other keys' rows; both read in batches by a cursor."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(FINGERPRINT_SQL)

            async def packed() -> AsyncIterator[list[bytes]]:
                cursor = await conn.cursor(RING_PACKED_SQL)
                while batch := await cursor.fetch(RING_BATCH):
                    yield [r[0] for r in batch]

            yield (row[0], row[1]), packed(), conn.cursor(RING_OTHERS_SQL, prefetch=RING_BATCH)

    async def lookup_hash(self, key_hash: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(f"SELECT {KEY_COLUMNS} FROM gateway.api_keys WHERE hash = $1", key_hash)

    async def create_key(
        self, new: CreateApiKeyBody, *, actor: str, api_key: str | None = None
    ) -> tuple[asyncpg.Record, str]:
        """Create (or, with ``api_key``, adopt) a key; returns the row and the plaintext key."""
        if api_key is not None:
            check_import(api_key, new.type, self.checksum_ref)
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._insert_key(conn, new, actor, api_key)

    async def _insert_key(
        self, conn: asyncpg.Connection, new: CreateApiKeyBody, actor: str, api_key: str | None
    ) -> tuple[asyncpg.Record, str]:
        if api_key is None:
            api_key = apikeys.generate(new.type, self.checksum_ref)
        prefix = apikeys.display_prefix(api_key)
        columns = {**new.columns(), "prefix": prefix, "hash": apikeys.hash_key(api_key)}
        if new.type == "publishable":  # public by design, shown in every listing; never a secret key
            columns["publishable_key"] = api_key
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"INSERT INTO gateway.api_keys ({', '.join(columns)})"
                    f" VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) RETURNING {KEY_COLUMNS}",
                    *columns.values(),
                )
        except asyncpg.UniqueViolationError:
            raise InvalidInput("key", "this key is already in the store") from None
        await self._audit(conn, actor, "api_key.create", str(row["id"]), {"type": new.type, "name": new.name,
                                                                          "prefix": prefix})
        return row, api_key

    async def update_key(self, key_id: str, changes: UpdateApiKeyBody, *, actor: str) -> asyncpg.Record:
        """Change the fields ``changes`` holds; nothing to change, nothing written."""
        row = await self.get_key(key_id)
        changes.check_for(row["type"])
        sets = changes.columns_for(row)
        if not sets:
            return row
        assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(sets, start=2))
        async with self.pool.acquire() as conn, conn.transaction():
            new = await conn.fetchrow(
                f"UPDATE gateway.api_keys SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {KEY_COLUMNS}",
                row["id"], *sets.values(),
            )
            if new is None:
                raise NotFound(key_id)
            await self._audit(conn, actor, "api_key.update", str(row["id"]),
                              {"fields": sorted(sets), **audit_changes(row, sets)})
        return new

    async def delete_key(
        self, key_id: str, *, actor: str, was_compromised: bool = False, reason: str | None = None
    ) -> asyncpg.Record:
        """Delete for good: the hash is gone, so the key can never match again."""
        kid = parse_id(key_id)
        check_text("reason", reason)  # the audit row must be writable, or the key would stay
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"DELETE FROM gateway.api_keys WHERE id = $1 RETURNING {KEY_COLUMNS}", kid)
            if row is None:
                raise NotFound(key_id)
            await conn.execute("DELETE FROM gateway.key_usage WHERE key_id = $1", str(kid))
            await conn.execute("DELETE FROM gateway.quota_usage WHERE key_id = $1", kid)
            await self._audit(
                conn, actor, "api_key.delete", str(kid),
                {"type": row["type"], "name": row["name"], "prefix": row["prefix"],
                 "was_compromised": was_compromised, "reason": reason},
            )
        return row

    async def count_keys(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM gateway.api_keys")

    async def touch(self, used: dict[uuid.UUID, float], legacy_used: dict[str, float],
                    counts: dict[tuple[str, int], int] | None = None) -> None:
        """Record a batch of use in one statement (never one per request): last use of keys and
        legacy keys, requests per key and hour (``counts``: (key id, hour since the epoch) -> n),
        and the hours past ``USAGE_KEEP_HOURS`` pruned."""
        counts = counts or {}
        await self.pool.execute(TOUCH_SQL, list(used), list(used.values()),
                                {name: datetime.fromtimestamp(t).astimezone().isoformat()
                                 for name, t in legacy_used.items()},
                                [k for k, _ in counts], [h * 3600.0 for _, h in counts], list(counts.values()),
                                time.time() - USAGE_KEEP_HOURS * 3600)

    async def usage(self, key_id: str, since_hour: int) -> dict[int, int]:
        """Requests of a key (uuid or legacy name) per hour since the epoch, from ``since_hour`` on."""
        rows = await self.pool.fetch(
            "SELECT extract(epoch FROM hour)::bigint / 3600 AS h, n FROM gateway.key_usage"
            " WHERE key_id = $1 AND hour >= to_timestamp($2)", key_id, since_hour * 3600.0)
        return {r["h"]: r["n"] for r in rows}

    # --- settings -------------------------------------------------------------------------

    async def get_setting(self, key: str) -> Any:
        return await self.pool.fetchval("SELECT value FROM gateway.settings WHERE key = $1", key)

    async def legacy(self) -> Legacy:
        value = await self.get_setting("legacy")
        if value is None:
            return Legacy(True, None)
        changed = value.get("changed_at")
        return Legacy(bool(value.get("enabled", True)), datetime.fromisoformat(changed) if changed else None)

    async def set_legacy(self, enabled: bool, *, actor: str) -> Legacy:
        async with self.pool.acquire() as conn, conn.transaction():
            changed_at = await conn.fetchval("SELECT now()")
            await conn.execute(
                "INSERT INTO gateway.settings (key, value) VALUES ('legacy', $1::jsonb)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
                {"enabled": enabled, "changed_at": changed_at.isoformat()},
            )
            await self._audit(conn, actor, "legacy.enable" if enabled else "legacy.disable", None, {})
        return Legacy(enabled, changed_at)

    async def admin_token_hash(self) -> str | None:
        value = await self.get_setting("admin_token")
        return None if value is None else value.get("hash")

    async def bootstrap(
        self, *, need_admin_token: bool, imports: dict[str, str] | None = None,
    ) -> tuple[list[tuple[asyncpg.Record, str | None]], str | None]:
        """First start: default keys when the table is empty, an admin token when none is set.

        ``imports`` (key type -> plaintext key, e.g. a self-hosted ``.env``'s
        ``SUPABASE_PUBLISHABLE_KEY``) become the ``default`` keys of their type instead of new
        ones; a key whose checksum does not match raises InvalidInput (field: its type) and
        nothing is written. Runs once per database, under a lock, so instances starting together
        agree. Returns ``([(row, api_key), ...], admin_token or None)``: the plaintexts to show
        once, ``api_key`` None for an imported key (its owner has it already).
        """
        imports = imports or {}
        created: list[tuple[asyncpg.Record, str | None]] = []
        token: str | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK)
            done = await conn.fetchval("SELECT value FROM gateway.settings WHERE key = 'bootstrapped'")
            if done is None and not await conn.fetchval("SELECT exists(SELECT 1 FROM gateway.api_keys)"):
                for key_type in ("publishable", "secret"):
                    api_key = imports.get(key_type)
                    if api_key is not None and apikeys.parse(api_key, self.checksum_ref) != key_type:
                        raise InvalidInput(key_type, f"not a valid {key_type} key for checksum ref {self.checksum_ref!r}")
                    description = "Created on first start" if api_key is None else "Imported on first start"
                    new = CreateApiKeyBody(type=key_type, name="default", description=description)
                    row, plaintext = await self._insert_key(conn, new, "system", api_key)
                    created.append((row, plaintext if api_key is None else None))
            if done is None:
                await conn.execute("INSERT INTO gateway.settings (key, value) VALUES ('bootstrapped', 'true')")
            if need_admin_token and await conn.fetchval(
                "SELECT value FROM gateway.settings WHERE key = 'admin_token'"
            ) is None:
                token = "sbp_" + secrets.token_hex(20)  # the form the Supabase CLI insists on
                await conn.execute(
                    "INSERT INTO gateway.settings (key, value) VALUES ('admin_token', $1::jsonb)",
                    {"hash": apikeys.hash_key(token)},
                )
                await self._audit(conn, "system", "admin_token.generate", None, {})
        return created, token

    async def project_facts(self) -> tuple[str, datetime | None]:
        """The server's version, and when the gateway's schema was created (the project's birth)."""
        row = await self.pool.fetchrow("SELECT current_setting('server_version'),"
                                       " (SELECT min(applied_at) FROM gateway.schema_migrations)")
        return row[0], row[1]

    # --- audit ----------------------------------------------------------------------------

    async def audit_log(self, limit: int = 100) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT id, at, actor, action, target, details FROM gateway.audit_log ORDER BY id DESC LIMIT $1", limit
        )

    @staticmethod
    async def _audit(conn: asyncpg.Connection, actor: str, action: str, target: str | None, details: dict[str, Any]) -> None:
        await conn.execute(
            "INSERT INTO gateway.audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4::jsonb)",
            actor, action, target, details,
        )
