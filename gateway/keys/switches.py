"""The project's switches, read from memory: whether the legacy keys work (and since when) and
the admin token's hash (the admin API checks a token against it). Read from the store at start,
on every announcement of a setting and every ``keys.refresh_seconds``; a read overtaken by a
later one is dropped, so an older answer never undoes a newer one."""

from __future__ import annotations

from gateway.keys.store import Legacy, Store


class Switches:
    __slots__ = ("legacy", "admin_token_hash", "_reads", "_applied")

    def __init__(self) -> None:
        self.legacy = Legacy(True, None)
        self.admin_token_hash: str | None = None
        self._reads = 0
        self._applied = 0

    async def read(self, store: Store) -> None:
        self._reads += 1
        seq = self._reads
        legacy = await store.legacy()
        admin_token_hash = await store.admin_token_hash()
        if seq > self._applied:
            self._applied = seq
            self.legacy = legacy
            self.admin_token_hash = admin_token_hash
