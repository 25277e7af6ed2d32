"""Where workers and instances share their rate-limit counts: Postgres (an UNLOGGED table on the
key database) or Redis, behind one interface, and the loop that exchanges them.

Every ``limits.sync_ms`` a worker sends what it counted since the last exchange and reads back
the totals of the buckets it is using, in one statement (Postgres) or one pipeline (Redis); it
also says it is alive, so that each knows how many share a limit while the store is away. A
request never waits for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Protocol

from gateway.rules.limits import BUCKETS, Limiter

log = logging.getLogger("gateway")

Push = tuple[str, int, int, float]  # scope, bucket, increment, expires (epoch seconds)
Read = tuple[str, int]  # scope, bucket
HEARTBEAT_SECONDS = 5
CLEANUP_EVERY = 100  # exchanges


class CounterStore(Protocol):
    async def exchange(self, pushes: list[Push], reads: list[Read], worker: str,
                       now: float) -> tuple[dict[Read, int], int]:
        """Add the pushes, return the totals of every pushed and read bucket and how many workers
        are alive."""
        ...

    async def cleanup(self, now: float) -> None: ...

    async def close(self) -> None: ...


_PG_EXCHANGE = """
WITH d AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[]) AS d(scope, bucket, n, expires)),
up AS (
    INSERT INTO gateway.rate_counts AS c (scope, bucket, n, expires)
    SELECT scope, bucket, n, expires FROM d WHERE n > 0
    ON CONFLICT (scope, bucket) DO UPDATE SET n = c.n + excluded.n
    RETURNING c.scope, c.bucket, c.n
)
SELECT scope, bucket, n FROM up
UNION ALL
SELECT c.scope, c.bucket, c.n FROM gateway.rate_counts c JOIN d ON c.scope = d.scope AND c.bucket = d.bucket
 WHERE d.n = 0
UNION ALL
SELECT NULL, NULL, count(*) FROM gateway.rate_counts WHERE scope >= 'w:' AND scope < 'w;' AND bucket >= $5
"""


class PostgresCounters:
    """One connection of its own, so that admin queries never hold an exchange up."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = None

    async def _connection(self):  # type: ignore[no-untyped-def]
        import asyncpg

        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn, timeout=5)
        return self.conn

    async def exchange(self, pushes: list[Push], reads: list[Read], worker: str,
                       now: float) -> tuple[dict[Read, int], int]:
        period = int(now // HEARTBEAT_SECONDS)
        rows = pushes + [(scope, bucket, 0, 0.0) for scope, bucket in reads]
        rows.append((f"w:{worker}", period, 1, now + 3 * HEARTBEAT_SECONDS))
        conn = await self._connection()
        try:
            result = await conn.fetch(_PG_EXCHANGE, [r[0] for r in rows], [r[1] for r in rows],
                                      [r[2] for r in rows], [r[3] for r in rows], period - 1)
        except BaseException:
            await self._drop()
            raise
        totals: dict[Read, int] = {}
        workers = 1
        for scope, bucket, n in result:
            if scope is None:
                workers = max(1, n)
            elif not scope.startswith("w:"):
                totals[(scope, bucket)] = n
        return totals, workers

    async def cleanup(self, now: float) -> None:
        conn = await self._connection()
        await conn.execute("DELETE FROM gateway.rate_counts WHERE expires < $1", now)

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class RedisCounters:
    """redis-py's asyncio client; one pipeline (no transaction) per exchange."""

    PREFIX = "gw:rl:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    async def exchange(self, pushes: list[Push], reads: list[Read], worker: str,
                       now: float) -> tuple[dict[Read, int], int]:
        p = self.PREFIX
        pipe = self.redis.pipeline(transaction=False)
        for scope, bucket, n, expires in pushes:
            key = f"{p}{scope}:{bucket}"
            pipe.incrby(key, n)
            pipe.expireat(key, int(expires) + 1)
        if reads:
            pipe.mget([f"{p}{scope}:{bucket}" for scope, bucket in reads])
        workers_key = p + "workers"
        pipe.zadd(workers_key, {worker: now})
        pipe.zremrangebyscore(workers_key, 0, now - 3 * HEARTBEAT_SECONDS)
        pipe.zcard(workers_key)
        pipe.expire(workers_key, 3 * HEARTBEAT_SECONDS)
        out = await pipe.execute()
        totals: dict[Read, int] = {}
        for i, (scope, bucket, _, _) in enumerate(pushes):
            totals[(scope, bucket)] = int(out[2 * i])
        if reads:
            for (scope, bucket), value in zip(reads, out[2 * len(pushes)]):
                totals[(scope, bucket)] = int(value or 0)
        return totals, max(1, int(out[-2]))

    async def cleanup(self, now: float) -> None:
        return None  # keys expire by themselves

    async def close(self) -> None:
        await self.redis.aclose()


class Exchanger:
    """The loop of one worker: send, read back, fold the totals into the limiter's counters."""

    def __init__(self, limiter: Limiter, store: CounterStore, interval: float) -> None:
        self.limiter = limiter
        self.store = store
        self.interval = interval
        self.timeout = max(1.0, 5 * interval)  # slower than this: counted as unreachable
        self.worker = uuid.uuid4().hex
        self.exchanges = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rate-limit-exchange")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self.store.close()
        except Exception:
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.once()

    async def once(self, now: float | None = None) -> bool:
        """One exchange; False if the store could not be reached (the limiter then goes it alone)."""
        now = time.time() if now is None else now
        limiter = self.limiter
        pushes: list[Push] = []
        reads: list[Read] = []
        full_reads: list[str] = []
        active = []
        for scope, c in limiter.counters.items():
            if now - c.used > c.limit.window:
                continue
            active.append(c)
            g = c.limit.bucket
            pushed = set()
            for bucket, n in c.pending.items():
                if n > 0:
                    pushes.append((scope, bucket, n, (bucket + BUCKETS + 1) * g))
                    pushed.add(bucket)
            wanted = range(c.b - BUCKETS + 1, c.b + 1) if not c.read else (c.b - 1, c.b)
            reads.extend((scope, bucket) for bucket in wanted if bucket not in pushed)
            if not c.read:
                full_reads.append(scope)
        try:
            totals, workers = await asyncio.wait_for(self.store.exchange(pushes, reads, self.worker, now),
                                                     self.timeout)
        except Exception as e:
            if limiter.shared:
                log.warning("rate-limit store unreachable (%s): each worker enforces its share of every limit "
                            "until it is back", type(e).__name__)
            limiter.shared = False
            return False
        if not limiter.shared:
            log.warning("rate-limit store reachable again: limits are shared again")
        limiter.shared = True
        limiter.workers = workers
        for scope, bucket, n, _ in pushes:
            c = limiter.counters.get(scope)
            if c is not None and bucket in c.pending:
                left = c.pending[bucket] - n
                if left > 0:
                    c.pending[bucket] = left
                else:
                    del c.pending[bucket]
        for (scope, bucket), total in totals.items():
            c = limiter.counters.get(scope)
            if c is not None and bucket > c.b - BUCKETS:
                c.synced[bucket] = total
        for scope in full_reads:
            c = limiter.counters.get(scope)
            if c is not None:
                c.read = True
        for c in active:
            c.rebase()
        self.exchanges += 1
        if self.exchanges % CLEANUP_EVERY == 0:
            limiter.evict(now)
            try:
                await self.store.cleanup(now)
            except Exception as e:
                log.warning("could not clean up old rate-limit counts: %s", type(e).__name__)
        return True


def counter_store(settings, dsn: str) -> CounterStore:  # type: ignore[no-untyped-def]
    if settings.limits.store == "redis":
        return RedisCounters(settings.limits.redis_url)
    return PostgresCounters(dsn)
