"""What a worker counts of each key's use: in memory per request, written in one batch, kept for
the next write while the database cannot take it."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from gateway.keys.entries import KeyEntry, entry_from_row
from gateway.keys.usage import KeyUsage
from tests.keys.test_ring import row


class TouchStore:
    """Records each batch written; fails while ``down``."""

    def __init__(self) -> None:
        self.batches: list[tuple] = []
        self.down = False

    async def touch(self, used, legacy, counts):
        if self.down:
            raise OSError("down")
        self.batches.append((used, legacy, counts))


async def test_use_is_counted_per_key_and_hour_in_memory_and_written_in_one_batch():
    store, usage = TouchStore(), KeyUsage()
    a, b = entry_from_row(row()), entry_from_row(row())
    anon = KeyEntry("anon", "legacy", "abcde", "anon", {"role": "anon"})
    for entry in [a] * 5 + [b] * 2 + [anon]:
        usage.mark(entry)
    assert store.batches == []  # nothing written per request
    store.down = True
    await usage.flush(store)  # the database is down: kept, and added to what comes next
    usage.mark(a)
    store.down = False
    await usage.flush(store)
    [(used, legacy, counts)] = store.batches
    assert set(used) == {uuid.UUID(a.id), uuid.UUID(b.id)} and set(legacy) == {"anon"}
    assert {k: n for (k, _h), n in counts.items()} == {a.id: 6, b.id: 2, "anon": 1}
    assert {h for _k, h in counts} <= {int(datetime.now(timezone.utc).timestamp() // 3600) + d for d in (-1, 0)}
    await usage.flush(store)
    assert len(store.batches) == 1  # nothing new: nothing written


def test_an_hour_is_its_own_count():
    usage = KeyUsage()
    a = entry_from_row(row())
    usage.mark(a, now=7200.0)
    usage.mark(a, now=10799.0)
    usage.mark(a, now=10800.0)
    assert usage.counts == {(a.id, 2): 2, (a.id, 3): 1} and usage.used == {a.id: 10800.0}
