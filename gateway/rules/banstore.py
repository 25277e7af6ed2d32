"""Every statement of blocks, refusal counts and the allow list (migrations/0007_protection.sql),
for the workers (gateway.rules.guardsync), the admin API (gateway.admin.protection) and the CLI.

A change is announced on ``gateway_changes`` by the transaction that makes it, with what changed
in the payload (blocks with their end, lifted addresses), so that every worker of every instance
applies it without reading a table; the allow list's announcement says only that it changed (one
row to read). Changes made over the admin API or the CLI write an audit row in the same
transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import asyncpg

from gateway.keys.listen import CHANNEL
from gateway.keys.store import Store
from gateway.rules.blocks import Ban
from gateway.rules.limits import BUCKETS

NOTIFY_CHUNK = 100  # entries per notification: far inside Postgres's 8000-byte payload limit
BANS = "network_bans"
RESTRICTIONS = "network_restrictions"

_ADD_REFUSALS = f"""
WITH d AS (SELECT * FROM unnest($1::text[], $2::int[]) AS d(address, n)),
up AS (
    INSERT INTO gateway.refusal_counts AS c (address, span, bucket, n, expires)
    SELECT address, $3, $4, n, $5 FROM d
    ON CONFLICT (address, span, bucket) DO UPDATE SET n = c.n + excluded.n
)
SELECT d.address, d.n + coalesce(sum(c.n), 0)::int AS total
  FROM d LEFT JOIN gateway.refusal_counts c ON c.address = d.address AND c.span = $3 AND c.bucket > $4 - {BUCKETS}
 GROUP BY d.address, d.n
"""
_BAN_COLUMNS = ("address, extract(epoch FROM started_at)::float8 AS started_at,"
                " extract(epoch FROM ends_at)::float8 AS ends_at, reason, refusals")
_START_BANS = f"""
INSERT INTO gateway.network_bans AS b (address, started_at, ends_at, reason, refusals)
SELECT a, to_timestamp(s), to_timestamp(e), r, n FROM unnest($1::text[], $2::float8[], $3::float8[], $4::text[],
                                                             $5::int[]) AS u(a, s, e, r, n)
ON CONFLICT (address) DO UPDATE SET started_at = excluded.started_at, ends_at = excluded.ends_at,
                                    reason = excluded.reason, refusals = excluded.refusals
 WHERE b.ends_at <= excluded.started_at
RETURNING {_BAN_COLUMNS}
"""
_FINGERPRINT = ("SELECT (SELECT updated_at FROM gateway.network_restrictions),"
                " (SELECT count(*) FROM gateway.network_bans), (SELECT max(started_at) FROM gateway.network_bans)")
KEEP_ENDED_SECONDS = 3600  # an ended block's row is deleted this long after it ended


def _ban(row: asyncpg.Record) -> Ban:
    return Ban(row["address"], row["started_at"], row["ends_at"], row["reason"], row["refusals"])


async def _announce(conn: asyncpg.Connection, op: str, field: str, items: list[Any]) -> None:
    for i in range(0, len(items), NOTIFY_CHUNK):
        payload = json.dumps({"table": BANS, "op": op, field: items[i:i + NOTIFY_CHUNK]})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


# --- the workers ------------------------------------------------------------------------------------


async def add_refusals(pool: asyncpg.Pool, counts: dict[str, int], span_ms: int, bucket: int,
                       expires: float) -> dict[str, int]:
    """Add a worker's refusals per address to the current bucket; every address's total over the
    window (the buckets of it the store has), in one statement."""
    rows = await pool.fetch(_ADD_REFUSALS, list(counts), list(counts.values()), span_ms, bucket, expires)
    return {r["address"]: r["total"] for r in rows}


async def start_bans(pool: asyncpg.Pool, bans: list[Ban]) -> list[Ban]:
    """Store blocks a worker started and announce them; the ones that were new (an address that a
    block already holds keeps that block), which the caller logs."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_START_BANS, [b.address for b in bans], [b.started_at for b in bans],
                                [b.ends_at for b in bans], [b.reason for b in bans], [b.refusals for b in bans])
        started = [_ban(r) for r in rows]
        await _announce(conn, "ban", "bans", [[b.address, b.ends_at] for b in started])
    return started


async def active_bans(pool: asyncpg.Pool, now: float) -> list[Ban]:
    rows = await pool.fetch(f"SELECT {_BAN_COLUMNS} FROM gateway.network_bans WHERE ends_at > to_timestamp($1)"
                            " ORDER BY started_at, address", now)
    return [_ban(r) for r in rows]


async def fingerprint(pool: asyncpg.Pool) -> tuple[Any, ...]:
    """Changes whenever the allow list or the blocks change."""
    return tuple(await pool.fetchrow(_FINGERPRINT))


async def cleanup(pool: asyncpg.Pool, now: float) -> None:
    await pool.execute("DELETE FROM gateway.refusal_counts WHERE expires < $1", now)
    await pool.execute("DELETE FROM gateway.network_bans WHERE ends_at < to_timestamp($1)", now - KEEP_ENDED_SECONDS)


# --- the admin API and the CLI ----------------------------------------------------------------------


async def lift_bans(pool: asyncpg.Pool, addresses: list[str], actor: str) -> list[str]:
    """Lift the blocks on ``addresses`` (block keys), and forget their refusals; the addresses
    that were blocked. Every worker drops them, blocks not yet stored included."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch("DELETE FROM gateway.network_bans WHERE address = ANY($1::text[])"
                                " RETURNING address, ends_at > now() AS running", addresses)
        await conn.execute("DELETE FROM gateway.refusal_counts WHERE address = ANY($1::text[])", addresses)
        lifted = sorted(r["address"] for r in rows if r["running"])
        await Store._audit(conn, actor, "network_ban.lift", None, {"addresses": addresses, "lifted": lifted})
        await _announce(conn, "lift", "addresses", addresses)
    return lifted


@dataclass(frozen=True)
class AllowList:
    """The networks the public listener answers; ``updated_at`` None: never set (the default)."""

    v4: list[str]
    v6: list[str]
    updated_at: datetime | None

    @property
    def texts(self) -> list[str]:
        return [*self.v4, *self.v6]


DEFAULT_ALLOW = AllowList(["0.0.0.0/0"], ["::/0"], None)


async def allow_list(conn: asyncpg.Pool | asyncpg.Connection) -> AllowList:
    row = await conn.fetchrow("SELECT allowed_v4, allowed_v6, updated_at FROM gateway.network_restrictions")
    return DEFAULT_ALLOW if row is None else AllowList(list(row[0]), list(row[1]), row[2])


Change = Callable[[AllowList], tuple[list[str], list[str]]]


async def set_allow_list(pool: asyncpg.Pool, change: Change, actor: str) -> tuple[AllowList, AllowList]:
    """Change the allow list: ``change`` gets the list as it is and gives the new IPv4 and IPv6
    CIDRs (canonical: gateway.rules.network.canonical_cidrs), under a lock, so that two changes
    never lose one another. Returns the old list and the new one."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE gateway.network_restrictions IN SHARE ROW EXCLUSIVE MODE")
        old = await allow_list(conn)
        v4, v6 = change(old)
        row = await conn.fetchrow(
            "INSERT INTO gateway.network_restrictions (id, allowed_v4, allowed_v6) VALUES (true, $1, $2)"
            " ON CONFLICT (id) DO UPDATE SET allowed_v4 = excluded.allowed_v4, allowed_v6 = excluded.allowed_v6,"
            " updated_at = now() RETURNING updated_at", v4, v6)
        await Store._audit(conn, actor, "network_restrictions.apply", None,
                           {"dbAllowedCidrs": v4, "dbAllowedCidrsV6": v6, "old": old.texts})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps({"table": RESTRICTIONS}))
    return old, AllowList(v4, v6, row["updated_at"])
