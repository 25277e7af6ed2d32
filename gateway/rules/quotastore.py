"""Where quota counts are kept: ``gateway.quota_usage`` in the key database, a
logged table (a crash of Postgres loses nothing it acknowledged), and the loop of each worker
that writes its counts and reads everyone's.

Every ``keys.quota_flush_seconds`` (default 1) a worker adds what it counted since the last
exchange and reads back every row changed since the one before (by any worker or instance), in
one statement: the cost follows what changed, never the number of keys. No request waits for it.
A worker that stops writes its counts first; one that crashes, or cannot reach the store, keeps
its counts in memory and loses at most what it counted since its last successful write (one
flush interval, unless the store was away). A write whose answer is lost may be counted twice:
never a request admitted that should not be.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.clock import cancelled
from gateway.rules.quota import Quotas, day_of, period

log = logging.getLogger("gateway")

OVERLAP_SECONDS = 5.0  # rows changed this long before the last read are read again (late commits)
CLEANUP_EVERY = 600  # exchanges
KEEP_DAYS = 62  # rows older than this are deleted (no period reaches back so far)

EXCHANGE_SQL = """
WITH d AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS d(key_id, day, n)),
up AS (
    INSERT INTO gateway.quota_usage AS q (key_id, day, n, at)
    SELECT d.key_id, date '1970-01-01' + d.day, d.n, clock_timestamp()
      FROM d JOIN gateway.api_keys k ON k.id = d.key_id
    ON CONFLICT (key_id, day) DO UPDATE SET n = q.n + excluded.n, at = excluded.at
    RETURNING q.key_id, q.day, q.n
)
SELECT key_id::text, day - date '1970-01-01', n FROM up
UNION ALL
SELECT key_id::text, day - date '1970-01-01', n FROM gateway.quota_usage
 WHERE at > to_timestamp($4) AND day >= date '1970-01-01' + $5::int
UNION ALL
SELECT NULL, NULL, (extract(epoch FROM statement_timestamp()) * 1000)::bigint
"""
CLEANUP_SQL = "DELETE FROM gateway.quota_usage WHERE day < date '1970-01-01' + $1::int"


class QuotaFlusher:
    """The loop of one worker. ``load`` reads the current month of every key before the worker
    serves, so that a restart forgets no spent quota."""

    def __init__(self, quotas: Quotas, pool, interval: float) -> None:  # type: ignore[no-untyped-def]
        self.quotas = quotas
        self.pool = pool  # the key store's asyncpg pool
        self.interval = interval
        self.timeout = max(5.0, 5 * interval)
        self.since = 0.0  # epoch seconds (the database's clock): rows changed after it are read
        self.exchanges = 0
        self.failing = False
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        await self.once()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="quota-flush")

    async def stop(self) -> None:
        await cancelled(self._task)
        await self.once()  # what this worker counted, before it goes

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.once()

    async def once(self, now: float | None = None) -> bool:
        """One exchange; False if the store could not be reached (the counts wait for the next)."""
        quotas = self.quotas
        now = time.time() if now is None else now
        pushes = [(key_id, day, n) for key_id in quotas.dirty if key_id in quotas.usage
                  for day, n in quotas.usage[key_id].unsent.items() if n > 0]
        quotas.dirty = set()
        month_start, _ = period("month", day_of(now))
        try:
            rows = await asyncio.wait_for(self.pool.fetch(
                EXCHANGE_SQL, [p[0] for p in pushes], [p[1] for p in pushes], [p[2] for p in pushes],
                self.since - OVERLAP_SECONDS if self.since else 0.0, month_start - 1), self.timeout)
        except Exception as e:
            quotas.dirty.update(p[0] for p in pushes)  # written next time
            if not self.failing:
                log.warning("quota store unreachable (%s): counts are kept until it is back", type(e).__name__)
            self.failing = True
            return False
        if self.failing:
            log.warning("quota store reachable again")
        self.failing = False
        touched = set()
        for key_id, day, n in rows:
            if key_id is None:
                self.since = n / 1000
            else:
                quotas.read(key_id, day, n)
                touched.add(key_id)
        for key_id, day, n in pushes:
            quotas.written(key_id, day, n)
            touched.add(key_id)
        for key_id in touched:
            u = quotas.usage.get(key_id)
            if u is not None and u.kind:
                u.recount()
        self.exchanges += 1
        if self.exchanges % CLEANUP_EVERY == 0:
            await self.cleanup(now)
        return True

    async def cleanup(self, now: float) -> None:
        oldest = period("month", day_of(now))[0] - 1
        self.quotas.forget_before(oldest)
        try:
            await self.pool.execute(CLEANUP_SQL, day_of(now) - KEEP_DAYS)
        except Exception as e:
            log.warning("could not delete old quota counts: %s", type(e).__name__)
