"""Where workers and instances share their rate-limit counts: Postgres (an UNLOGGED table on the
key database) or Redis, behind one interface, and the loop that exchanges them.

Every ``limits.sync_ms`` a worker sends what it counted since the last exchange and reads back
the totals of the scopes it counted in, in one statement (Postgres) or one pipeline (Redis); it
also says it is alive, so that each knows how many share a limit while the store is away. Only
the counters touched since the last exchange take part (``Limiter.outgoing``): an exchange
costs what changed, never the number of counters still inside their windows. A request never
waits for any of this. The loop only moves rows: what to send and what the totals mean is the
limiter's business.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from gateway.clock import cancelled
from gateway.rules.limits import BUCKETS, Batch, Limiter, Push, Range, Total

log = logging.getLogger("gateway")

HEARTBEAT_SECONDS = 5
CLEANUP_EVERY = 100  # exchanges
LATE_INTERVALS = 3  # an exchange this many sync intervals after the previous good one is late


class CounterStore(Protocol):
    async def exchange(self, pushes: list[Push], reads: list[Range], worker: str,
                       now: float) -> tuple[list[Total], int]:
        """Add the pushes; return the totals of every pushed bucket and of every bucket there is
        in the ranges read, and how many workers are alive."""
        ...

    async def cleanup(self, now: float) -> None: ...

    async def close(self) -> None: ...


# The ranges are read one scope at a time through the primary key (the LIMIT keeps the planner
# from a hash join over the whole table): the cost follows the rows asked for, not the table.
_PG_EXCHANGE = f"""
WITH d AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[]) AS d(scope, bucket, n, expires)),
up AS (
    INSERT INTO gateway.rate_counts AS c (scope, bucket, n, expires)
    SELECT scope, bucket, n, expires FROM d
    ON CONFLICT (scope, bucket) DO UPDATE SET n = c.n + excluded.n
    RETURNING c.scope, c.bucket, c.n
)
SELECT scope, bucket, n FROM up
UNION ALL
SELECT c.scope, c.bucket, c.n
  FROM unnest($5::text[], $6::bigint[], $7::bigint[]) AS r(scope, lo, hi),
  LATERAL (SELECT c.scope, c.bucket, c.n FROM gateway.rate_counts c
            WHERE c.scope = r.scope COLLATE "C" AND c.bucket BETWEEN r.lo AND r.hi LIMIT {BUCKETS}) c
UNION ALL
SELECT NULL, NULL, count(*) FROM gateway.rate_counts WHERE scope >= 'w:' AND scope < 'w;' AND bucket >= $8
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

    async def exchange(self, pushes: list[Push], reads: list[Range], worker: str,
                       now: float) -> tuple[list[Total], int]:
        period = int(now // HEARTBEAT_SECONDS)
        rows = [*pushes, (f"w:{worker}", period, 1, now + 3 * HEARTBEAT_SECONDS)]
        conn = await self._connection()
        try:
            result = await conn.fetch(_PG_EXCHANGE, [r[0] for r in rows], [r[1] for r in rows],
                                      [r[2] for r in rows], [r[3] for r in rows], [r[0] for r in reads],
                                      [r[1] for r in reads], [r[2] for r in reads], period - 1)
        except BaseException:
            await self._drop()
            raise
        totals: list[Total] = []
        workers = 1
        for scope, bucket, n in result:
            if scope is None:
                workers = max(1, n)
            elif not scope.startswith("w:"):
                totals.append((scope, bucket, n))
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

    async def exchange(self, pushes: list[Push], reads: list[Range], worker: str,
                       now: float) -> tuple[list[Total], int]:
        p = self.PREFIX
        pipe = self.redis.pipeline(transaction=False)
        for scope, bucket, n, expires in pushes:
            key = f"{p}{scope}:{bucket}"
            pipe.incrby(key, n)
            pipe.expireat(key, int(expires) + 1)
        wanted = [(scope, bucket) for scope, lo, hi in reads for bucket in range(lo, hi + 1)]
        if wanted:
            pipe.mget([f"{p}{scope}:{bucket}" for scope, bucket in wanted])
        workers_key = p + "workers"
        pipe.zadd(workers_key, {worker: now})
        pipe.zremrangebyscore(workers_key, 0, now - 3 * HEARTBEAT_SECONDS)
        pipe.zcard(workers_key)
        pipe.expire(workers_key, 3 * HEARTBEAT_SECONDS)
        out = await pipe.execute()
        totals: list[Total] = [(scope, bucket, int(out[2 * i])) for i, (scope, bucket, _, _) in enumerate(pushes)]
        if wanted:
            totals.extend((scope, bucket, int(value)) for (scope, bucket), value in zip(wanted, out[2 * len(pushes)])
                          if value is not None)
        return totals, max(1, int(out[-2]))

    async def cleanup(self, now: float) -> None:
        return None  # keys expire by themselves

    async def close(self) -> None:
        await self.redis.aclose()


class LimitSync:
    """The loop of one worker: take what the limiter has to send, exchange it, hand back the
    totals. It watches its own lag: ``last_duration`` (seconds the last exchange took),
    ``lag()`` (seconds since the last successful one), ``late`` (exchanges that failed or came
    more than LATE_INTERVALS sync intervals after the previous good one) and ``backlog`` (dirty
    counters left for the next exchange); ``report``, if given, is called after every attempt
    (the worker's metrics)."""

    def __init__(self, limiter: Limiter, store: CounterStore, interval: float,
                 report: Callable[[LimitSync], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = limiter
        self.store = store
        self.interval = interval
        self.timeout = max(1.0, 5 * interval)  # slower than this: counted as unreachable
        self.worker = uuid.uuid4().hex
        self.exchanges = 0
        self.report = report
        self.clock = clock  # what lag is measured with
        self.last_ok = clock()  # the last successful exchange (or the start)
        self.last_duration = 0.0
        self.gap = 0.0  # seconds between the last two successful exchanges (or since the last, while failing)
        self.late = 0
        self.last_late = False  # the last exchange failed or was late
        self.backlog = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rate-limit-exchange")

    async def stop(self) -> None:
        self._stopping = True  # asyncio.wait_for (3.11) loses a cancel that comes as the exchange ends
        await cancelled(self._task)
        try:
            await self.store.close()
        except Exception:
            pass

    async def _run(self) -> None:
        broken = False
        while not self._stopping:
            await asyncio.sleep(self.interval)
            try:
                await self.once()
                broken = False
            except Exception as e:  # a bug must not end the loop: the limiter would go stale for good
                if not broken:  # the type only: a message could quote a scope (a key id, an address)
                    log.error("rate-limit exchange failed: %s", type(e).__name__)
                broken = True

    def lag(self, at: float | None = None) -> float:
        """Seconds since the last successful exchange (``at``: a reading of ``clock``)."""
        return (self.clock() if at is None else at) - self.last_ok

    async def once(self, now: float | None = None) -> bool:
        """One exchange; False if the store could not be reached (the limiter then goes it alone).
        While it cannot, an attempt sends nothing but the heartbeat, so that waiting costs the
        same however much is waiting; the first exchange after it is back takes it all."""
        now = time.time() if now is None else now
        started = self.clock()
        limiter = self.limiter
        limiter.sweep(now)
        batch = limiter.outgoing() if limiter.shared else Batch()
        self.backlog = len(limiter.dirty)
        try:
            totals, workers = await asyncio.wait_for(
                self.store.exchange(batch.pushes, batch.reads, self.worker, now), self.timeout)
        except Exception as e:
            if limiter.shared:
                log.warning("rate-limit store unreachable (%s): each worker enforces its share of every limit "
                            "until it is back", type(e).__name__)
            limiter.unreachable(batch)
            self._observe(started, ok=False)
            return False
        if not limiter.shared:
            log.warning("rate-limit store reachable again: limits are shared again")
        limiter.settle(batch, totals, workers)
        self.exchanges += 1
        self._observe(started, ok=True)
        if self.exchanges % CLEANUP_EVERY == 0:
            try:
                await self.store.cleanup(now)
            except Exception as e:
                log.warning("could not clean up old rate-limit counts: %s", type(e).__name__)
        return True

    def _observe(self, started: float, ok: bool) -> None:
        end = self.clock()
        self.last_duration = end - started
        self.gap = end - self.last_ok
        self.last_late = not ok or self.gap > LATE_INTERVALS * self.interval
        self.late += self.last_late
        if ok:
            self.last_ok = end
        if self.report is not None:
            self.report(self)


def counter_store(settings, dsn: str) -> CounterStore:  # type: ignore[no-untyped-def]
    if settings.limits.store == "redis":
        return RedisCounters(settings.limits.redis_url)
    return PostgresCounters(dsn)
