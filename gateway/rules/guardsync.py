"""Blocks and the allow list shared by every worker and instance (docs/protection.md), through
Postgres: one worker's loop.

Every ``limits.sync_ms``, if this worker refused requests that count since the last time, it
adds them to ``gateway.refusal_counts`` and reads back each address's total over the window in
one statement; an address at the threshold is blocked. Blocks this worker started are stored in
``gateway.network_bans`` and announced on ``gateway_changes`` (NOTIFY, through the key ring's
listener), so that every worker of every instance holds them within milliseconds; the one worker
whose insert made a block logs it. With nothing refused and nothing started, the loop sends
nothing. Every ``keys.refresh_seconds`` a fingerprint of both tables tells whether a notification
was missed (a full reload then), and old rows are deleted. The database unreachable: each worker
counts and blocks on its own (said once), and stores its blocks once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from gateway.clock import cancelled
from gateway.keys.ring import KeyRing
from gateway.keys.store import Store
from gateway.rules import banstore
from gateway.rules.blocks import MAX_BLOCKS
from gateway.rules.guard import Guard
from gateway.rules.limits import BUCKETS
from gateway.rules.network import Networks

log = logging.getLogger("gateway")

# No address is ever a label: these have none.
BLOCKED_REQUESTS = Counter("gateway_blocked_requests_total", "Requests answered 429 CLIENT_BLOCKED (no access line)")
BLOCKS_STARTED = Counter("gateway_blocks_started_total", "Client blocks started (each counted once, where stored)")
BLOCKED_CLIENTS = Gauge("gateway_blocked_clients", "Addresses blocked in a worker's memory (the largest of "
                        "the workers)", multiprocess_mode="livemax")


class GuardSync:
    def __init__(self, guard: Guard, store: Store, ring: KeyRing, interval: float, check_seconds: float) -> None:
        self.guard = guard
        self.pool = store.pool
        self.ring = ring
        self.interval = interval
        self.timeout = max(1.0, 5 * interval)  # slower than this: counted as unreachable
        self.check_seconds = check_seconds
        self.failing = False
        self._held = -1  # blocks in memory, as the gauge last said
        self._fingerprint: Any = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Read the allow list and the blocks (before the listener answers anyone), then follow."""
        await self.reload()
        self.ring.on_event[banstore.BANS] = self.on_bans
        self.ring.on_event[banstore.RESTRICTIONS] = self.on_restrictions
        self._task = asyncio.get_running_loop().create_task(self._run(), name="guard-sync")

    async def stop(self) -> None:
        for table in (banstore.BANS, banstore.RESTRICTIONS):
            self.ring.on_event.pop(table, None)
        await cancelled(self._task, *self._pending)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.once(), self.timeout)  # blocks started here are not lost

    async def reload(self) -> None:
        fingerprint = await banstore.fingerprint(self.pool)  # first: a change after it shows next time
        allow = await banstore.allow_list(self.pool)
        bans = await banstore.active_bans(self.pool, time.time())
        try:
            self.guard.set_allow(Networks.parse(allow.texts))
        except ValueError:
            log.warning("ignoring a stored network allow list that does not parse")
        self.guard.replace_bans(bans[-MAX_BLOCKS:], time.time())
        self._fingerprint = fingerprint

    # --- notifications (gateway.keys.ring's listener) ------------------------------------------------

    def on_bans(self, event: dict[str, Any]) -> None:
        try:
            if event.get("op") == "ban":
                self.guard.banned([(str(a), float(e)) for a, e in event["bans"]], time.time())
            elif event.get("op") == "lift":
                self.guard.lifted([str(a) for a in event["addresses"]])
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed %s notification", banstore.BANS)
        self._gauge()

    def _gauge(self) -> None:
        """The blocks held, written to the metric when their number changed (a write is a file's)."""
        held = len(self.guard.blocks)
        if held != self._held:
            BLOCKED_CLIENTS.set(held)
            self._held = held

    def on_restrictions(self, _event: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_allow())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reload_allow(self) -> None:
        try:
            allow = await banstore.allow_list(self.pool)
            self.guard.set_allow(Networks.parse(allow.texts))
        except Exception as e:  # the periodic check reads it again
            log.warning("could not read the network allow list: %s", type(e).__name__)

    # --- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        next_check = time.monotonic() + self.check_seconds
        while True:
            await asyncio.sleep(self.interval)
            await self.once()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_seconds
                await self.check()

    async def once(self, now: float | None = None) -> None:
        """Share this worker's refusals, store the blocks it started, bring the metrics up to date."""
        now = time.time() if now is None else now
        guard = self.guard
        counter = guard.counter
        if counter is not None and counter.pending:
            pending, last, since = counter.take()
            span = max(1, int(counter.rule.bucket * 1000))  # milliseconds
            bucket = int(now * 1000) // span
            try:
                totals = await asyncio.wait_for(banstore.add_refusals(
                    self.pool, pending, span, bucket, (bucket + BUCKETS + 1) * span / 1000), self.timeout)
            except Exception as e:
                counter.give_back(pending, last, since, now)
                self._unreachable(e)
            else:
                self._reachable()
                counter.settle(totals, now)
                for address, total in counter.known.items():
                    if total >= counter.rule.count:
                        guard.start(address, total, last.get(address, ""), now)
        if guard.started:
            bans, guard.started = guard.started, []
            try:
                started = await asyncio.wait_for(banstore.start_bans(self.pool, bans), self.timeout)
            except Exception as e:
                guard.started = (bans + guard.started)[:MAX_BLOCKS]  # stored once the database is back
                self._unreachable(e)
            else:
                self._reachable()
                for ban in started:
                    log.warning("client %s blocked for %d s: %s", ban.address, round(ban.ends_at - ban.started_at),
                                ban.reason)
                if started:
                    BLOCKS_STARTED.inc(len(started))
        guard.blocks.expire(now)
        if guard.answered:
            BLOCKED_REQUESTS.inc(guard.answered)
            guard.answered = 0
        self._gauge()

    async def check(self) -> None:
        """The periodic safety net: a full reload if a notification was missed; old rows deleted."""
        try:
            if await banstore.fingerprint(self.pool) != self._fingerprint:
                await self.reload()
            await banstore.cleanup(self.pool, time.time())
        except Exception as e:
            self._unreachable(e)

    def _unreachable(self, e: BaseException) -> None:
        if not self.failing:
            log.warning("database unreachable for client blocks (%s): each worker counts and blocks on its own "
                        "until it is back", type(e).__name__)
        self.failing = True

    def _reachable(self) -> None:
        if self.failing:
            log.warning("database reachable again for client blocks: counts and blocks are shared again")
        self.failing = False
