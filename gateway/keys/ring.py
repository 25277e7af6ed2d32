"""Every valid key in memory, kept in step with Postgres.

The request path asks ``KeyRing.by_hash``, a ``KeyTable``: a lookup in memory. A hash not in
memory (a key just created on another instance whose notification has not arrived yet) costs
one database round trip, shared by concurrent requests, remembered briefly when it finds
nothing, and within a budget per second. Changes arrive through ``keys.listen``; a periodic
check reloads the table if one was missed. Beside it, what a worker counts of each key's use
(``keys.usage``) and the project's switches (``keys.switches``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.clock import cancelled
from gateway.config import Settings
from gateway.keys.apikeys import b64url
from gateway.keys.entries import KeyEntry, entry_from_row, legacy_entries
from gateway.keys.keytable import Builder, KeyTable
from gateway.keys.listen import ChangeListener
from gateway.keys.store import Legacy, Store
from gateway.keys.switches import Switches
from gateway.keys.usage import KeyUsage
from gateway.observe import metrics

log = logging.getLogger("gateway")

NEGATIVE_TTL = 1.0
NEGATIVE_MAX = 10_000


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class KeyRing:
    store: Store
    settings: Settings
    by_hash: KeyTable = field(default_factory=KeyTable)
    switches: Switches = field(default_factory=Switches)  # the legacy switch, the admin token's hash
    usage: KeyUsage = field(default_factory=KeyUsage)  # what this worker counted, until it writes it
    on_change: list[Callable[[], None]] = field(default_factory=list)
    on_event: dict[str, Callable[[dict], None]] = field(default_factory=dict)  # other tables' news, by table
    _legacy_by_token: dict[str, KeyEntry] = field(default_factory=dict)
    _negative: dict[str, float] = field(default_factory=dict)
    _inflight: dict[str, asyncio.Future[KeyEntry | None]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)  # refetches and settings reads under way
    _listener: ChangeListener | None = None
    # Reads race with notifications: a read that began before a change was announced must not
    # bring back what the change removed. Hashes deleted (until re-inserted), and when each
    # hash was last announced, let a finished read tell.
    _deleted: set[str] = field(default_factory=set)
    _announced: dict[str, float] = field(default_factory=dict)
    _refetching: dict[str, int] = field(default_factory=dict)  # hash -> refetches under way (out of memory meanwhile)
    _lookup_budget: "TokenBucket" = field(init=False)
    _fingerprint: Any = None  # of the table as the last full reload saw it

    def __post_init__(self) -> None:
        rate = self.settings.keys.miss_lookups_per_second
        self._lookup_budget = TokenBucket(rate, rate)

    # --- the request path ------------------------------------------------------------------

    def legacy_entry(self, token: str) -> KeyEntry | None:
        """The legacy key entry if ``token`` is exactly one of the configured legacy keys."""
        return self._legacy_by_token.get(token)

    async def fetch(self, key_hash: str, budgeted: bool = True) -> KeyEntry | None:
        """A key not in memory: one shared round trip, negative answers kept for a second, and
        at most ``keys.miss_lookups_per_second`` such round trips per worker (a burst of as
        many): past that a miss is answered from memory, since changes arrive by notification
        within milliseconds and a miss is almost always a key that does not exist. A fetch for
        a notification (``budgeted=False``) is never refused: a flood of made-up keys must not
        keep an edited key out of memory."""
        now = time.monotonic()
        if self._negative.get(key_hash, 0.0) > now:
            return None
        pending = self._inflight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        if budgeted and not self._lookup_budget.take(now):
            return None
        fut: asyncio.Future[KeyEntry | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_hash] = fut
        try:
            row = await self.store.lookup_hash(key_hash)
            entry = None if row is None else entry_from_row(row)
            if key_hash in self._deleted:
                entry = None  # deleted while we read
            elif self._announced.get(key_hash, -1.0) >= now:
                pass  # changed while we read: answer, but let the notification's refetch cache it
            elif entry is None:
                if len(self._negative) >= NEGATIVE_MAX:
                    self._negative.clear()
                self._negative[key_hash] = now + NEGATIVE_TTL
            else:
                self.by_hash[key_hash] = entry
            fut.set_result(entry)
            return entry
        except Exception as e:  # the database is down: refuse, never guess
            fut.set_result(None)
            log.warning("key lookup failed: %s", type(e).__name__)
            return None
        finally:
            del self._inflight[key_hash]

    def refetching(self, digest: bytes) -> bool:
        """Is this key out of memory only while its row is read again after a change?"""
        return bool(self._refetching) and b64url(digest) in self._refetching

    # --- keeping in step -------------------------------------------------------------------

    async def start(self) -> None:
        self._legacy_by_token = legacy_entries(self.settings)
        await self.reload()
        self._listener = ChangeListener(self.store.dsn, self.heard, self._connected)
        self._tasks = [
            asyncio.create_task(self._listener.run(), name="keyring-listen"),
            asyncio.create_task(self._every(self.settings.keys.refresh_seconds, self.refresh), name="keyring-refresh"),
            asyncio.create_task(self._every(self.settings.keys.last_used_flush_seconds, self.flush), name="keyring-flush"),
        ]

    async def stop(self) -> None:
        await cancelled(*self._tasks, *self._pending)
        with contextlib.suppress(Exception):
            await self.flush()
        if self._listener is not None:
            await self._listener.close()

    async def refresh(self) -> None:
        """The periodic safety net: a full reload only if the table changed since the last one
        (a missed notification always comes with such a change)."""
        if await self.store.key_fingerprint() != self._fingerprint:
            await self.reload()
        else:
            await self.switches.read(self.store)
            metrics.key_ring_checked()

    async def reload(self) -> None:
        """Full reload into a new table, read in batches so that requests keep being served meanwhile."""
        started = time.monotonic()
        builder = Builder()
        async with self.store.ring_rows() as (fingerprint, packed, rows):
            async for records in packed:
                builder.add_packed(records)
            async for row in rows:
                if not builder.add(row["hash"], entry_from_row(row)):
                    log.warning("ignoring a key whose stored hash is not a SHA256")
        fresh = builder.table()
        # Announced while we read (deletions too): what the notification put in place is newer
        # than our rows.
        for key_hash, at in self._announced.items():
            if at >= started:
                current = self.by_hash.get(key_hash)
                if current is None:
                    fresh.pop(key_hash)
                else:
                    fresh[key_hash] = current
        # Keep the entries in use (and their cached tokens) where nothing changed.
        for digest, old in list(self.by_hash.in_use()):
            entry = fresh.get_digest(digest)
            if entry is not None and entry is not old and old.same(entry):
                fresh.keep(digest, old)
        self.by_hash = fresh
        self._fingerprint = fingerprint
        # A deletion announced before this read began is in what it read (or undone since, by
        # an import this worker may not have heard of): no longer a reason to refuse the key.
        self._deleted = {h for h in self._deleted if self._announced.get(h, 0.0) >= started}
        await self.switches.read(self.store)
        metrics.key_ring_reloaded()
        self._changed()

    async def flush(self) -> None:
        await self.usage.flush(self.store)

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
            except Exception as e:
                log.warning("%s failed: %s", getattr(fn, "__name__", "task"), type(e).__name__)

    async def _connected(self, first: bool) -> None:
        """Changes made after the last load but before LISTEN began were announced to no one: on
        the first connection, a cheap check (a full reload only if the table moved); after a
        loss, a full reload."""
        await (self.refresh() if first else self.reload())

    def heard(self, event: dict[str, Any]) -> None:
        """An announcement on ``gateway_changes``: a key's, a setting's, or another table's."""
        handler = self.on_event.get(event.get("table"))  # type: ignore[arg-type]
        if handler is not None:
            handler(event)
        elif event.get("table") == "api_keys":
            self.announce(event.get("hash", ""), deleted=event.get("op") == "DELETE")
        elif event.get("key") != "legacy_last_used":
            self._spawn(self._read_switches())

    def announce(self, key_hash: str, deleted: bool) -> None:
        """A key was changed or deleted: every notification comes here, and the admin API calls it
        too, so that the instance that made a change acts on it before it answers."""
        if len(self._announced) >= NEGATIVE_MAX:
            cutoff = time.monotonic() - 60
            self._announced = {h: t for h, t in self._announced.items() if t >= cutoff}
            self._deleted &= self._announced.keys()  # no read lasts a minute: older ones are moot
        self._announced[key_hash] = time.monotonic()
        if deleted:
            self._deleted.add(key_hash)
            self.by_hash.pop(key_hash, None)
            self._changed()
        else:
            self._deleted.discard(key_hash)  # imported again
            self._negative.pop(key_hash, None)
            self._spawn(self._refetch(key_hash))

    def set_legacy(self, legacy: Legacy) -> None:
        """The legacy switch as the admin API just wrote it (the others hear of it through NOTIFY)."""
        self.switches.legacy = legacy
        self._changed()

    def _spawn(self, coro: Any) -> None:
        """A task held until it ends (the loop keeps only a weak reference)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _refetch(self, key_hash: str) -> None:
        self._refetching[key_hash] = self._refetching.get(key_hash, 0) + 1
        try:
            pending = self._inflight.get(key_hash)
            if pending is not None:  # a read begun before the change: let it end, then read again
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
            self.by_hash.pop(key_hash, None)  # changed: drop the old entry and its cached token
            await self.fetch(key_hash, budgeted=False)  # begun after the announcement: may cache what it reads
        finally:
            left = self._refetching.pop(key_hash) - 1
            if left:
                self._refetching[key_hash] = left
        self._changed()

    async def _read_switches(self) -> None:
        with contextlib.suppress(Exception):
            await self.switches.read(self.store)
        self._changed()

    def _changed(self) -> None:
        metrics.KEY_RING_KEYS.set(len(self.by_hash))
        for fn in self.on_change:
            fn()
