"""Which keys were used and how much, counted in memory: each key's last use and its requests per
hour, written in one statement every ``keys.last_used_flush_seconds`` (never a write per
request). The admin API's ``last_used_at`` and the page's usage chart read what was written."""

from __future__ import annotations

import logging
import time
import uuid

from gateway.keys.entries import KeyEntry
from gateway.keys.store import Store

log = logging.getLogger("gateway")

LEGACY_IDS = ("anon", "service_role")  # the legacy keys' entries: their last use is a setting, not a row


class KeyUsage:
    """One worker's counts since its last write."""

    __slots__ = ("used", "counts")

    def __init__(self) -> None:
        self.used: dict[str, float] = {}  # key id -> last use (epoch seconds)
        self.counts: dict[tuple[str, int], int] = {}  # (key id, hour since the epoch) -> requests

    def mark(self, entry: KeyEntry, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.used[entry.id] = now
        slot = (entry.id, int(now // 3600))
        self.counts[slot] = self.counts.get(slot, 0) + 1

    async def flush(self, store: Store) -> None:
        """Write what was counted; if the database cannot take it, keep it for the next write."""
        if not self.used:
            return
        used, self.used = self.used, {}
        counts, self.counts = self.counts, {}
        keys: dict[uuid.UUID, float] = {}
        legacy: dict[str, float] = {}
        for key_id, t in used.items():
            if key_id in LEGACY_IDS:
                legacy[key_id] = t
            else:
                keys[uuid.UUID(key_id)] = t
        try:
            await store.touch(keys, legacy, counts)
        except Exception as e:
            log.warning("could not record last use of keys: %s", type(e).__name__)
            for key_id, t in used.items():  # added to what comes next
                self.used.setdefault(key_id, t)
            for slot, n in counts.items():
                self.counts[slot] = self.counts.get(slot, 0) + n
