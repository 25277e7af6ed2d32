"""One scope's sliding window in one worker, stored compactly, and the time-ordered index that
drops windows with nothing left in them.

A window is 20 buckets; the count is the sum of the buckets wholly inside the last window. A
``Counter`` keeps one cell per bucket that saw anything, four integers in one ``array``: the
bucket, the total the shared store last reported for it (this worker's sent requests included),
this worker's requests not yet sent, and all of this worker's requests (what it enforces alone
while the store is away). A scope with one request is the object, one 4-cell array and its
places in the limiter: about 280 bytes besides its scope string, where three dicts took about
720 (tests/rules/test_limits.py measures it).

What the exchange with the store needs is asked of the counter (``outgoing``) and given back to
it (``settle``): the store never edits a counter's cells.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.rules.limits import Limit

BUCKETS = 20
CELL = 4  # bucket, synced (the store's total), pending (ours, not yet sent), own (every request of ours)
_NONE = array("q")  # the cells of a counter that has none: shared, never written to


class Counter:
    """One scope's sliding window in this worker."""

    __slots__ = ("scope", "limit", "b", "base", "own_base", "seen", "cells")

    def __init__(self, scope: str, limit: Limit) -> None:
        self.scope = scope
        self.limit = limit
        self.b = -1  # the current bucket (index of time / bucket length); it never goes back
        self.base = 0  # the buckets before it inside the window: everyone's, as far as we know
        self.own_base = 0  # the same, counting only this worker's requests
        self.seen = -1  # the last bucket the store's totals were read up to; -1: never (read the whole window)
        self.cells = _NONE  # CELL integers per bucket with anything, oldest first, none past ``b``

    def roll(self, b: int) -> None:
        """Move to bucket ``b`` (later than the current one): buckets leaving the window go."""
        cells, oldest, i = self.cells, b - BUCKETS + 1, 0
        while i < len(cells) and cells[i] < oldest:
            i += CELL
        if i:
            if i == len(cells):
                self.cells = _NONE
            else:
                del cells[:i]
        self.b = b
        self.rebase()

    def rebase(self) -> None:
        cells, b = self.cells, self.b
        base = own = 0
        for i in range(0, len(cells), CELL):
            if cells[i] < b:
                base += cells[i + 1] + cells[i + 2]
                own += cells[i + 3]
        self.base, self.own_base = base, own

    def count(self, shared: bool) -> int:
        """Requests inside the window: everyone's (``shared``) or this worker's alone."""
        cells = self.cells
        n = len(cells)
        if n and cells[n - CELL] == self.b:
            return self.base + cells[n - 3] + cells[n - 2] if shared else self.own_base + cells[n - 1]
        return self.base if shared else self.own_base

    def add(self) -> None:
        cells = self.cells
        n = len(cells)
        if n and cells[n - CELL] == self.b:
            cells[n - 2] += 1
            cells[n - 1] += 1
        elif n:
            cells.extend((self.b, 0, 1, 1))
        else:
            self.cells = array("q", (self.b, 0, 1, 1))  # sized exactly: most scopes never see a second bucket

    def seconds_until(self, room: int, now: float, shared: bool) -> float:
        """Seconds until the count has dropped by ``room`` (buckets leaving the window)."""
        cells, dropped = self.cells, 0
        for i in range(0, len(cells), CELL):
            dropped += cells[i + 1] + cells[i + 2] if shared else cells[i + 3]
            if dropped >= room:
                return max(0.0, (cells[i] + BUCKETS) * self.limit.bucket - now)
        return self.limit.window

    # --- the exchange with the store -----------------------------------------------------------

    def outgoing(self) -> tuple[list[tuple[int, int]], int, int]:
        """``(bucket, requests not yet sent)`` for each bucket with any, and the buckets to read
        back, ``lo`` to ``hi``: the whole window the first time, afterwards from the bucket
        before the last one read (others may still have been adding to it) to the current one."""
        cells, b = self.cells, self.b
        pushes = [(cells[i], cells[i + 2]) for i in range(0, len(cells), CELL) if cells[i + 2]]
        oldest = b - BUCKETS + 1
        return pushes, oldest if self.seen < 0 else max(self.seen - 1, oldest), b

    def settle(self, pushed: list[tuple[int, int]], totals: list[tuple[int, int]], read_to: int) -> None:
        """The store took ``pushed`` and reported ``totals`` (bucket, everyone's count) for the
        buckets read up to ``read_to``. Counts in a bucket only grow, so a total never lowers
        what is known (the same bucket may come back twice: read, and pushed)."""
        for bucket, n in pushed:
            i = self._find(bucket)
            if i >= 0:  # requests counted meanwhile stay pending
                self.cells[i + 2] = max(0, self.cells[i + 2] - n)
        oldest = self.b - BUCKETS + 1
        for bucket, total in totals:
            if bucket < oldest or bucket > self.b:
                continue
            i = self._find(bucket)
            if i >= 0:
                if total > self.cells[i + 1]:
                    self.cells[i + 1] = total
            elif total > 0:
                self._insert(bucket, total)
        self.seen = max(self.seen, read_to)
        self.rebase()

    def _find(self, bucket: int) -> int:
        cells = self.cells
        for i in range(len(cells) - CELL, -1, -CELL):  # most often the newest
            if cells[i] == bucket:
                return i
            if cells[i] < bucket:
                break
        return -1

    def _insert(self, bucket: int, synced: int) -> None:
        cells = self.cells
        i = 0
        while i < len(cells) and cells[i] < bucket:
            i += CELL
        cell = array("q", (bucket, synced, 0, 0))
        self.cells = cells[:i] + cell + cells[i:] if cells else cell


def ends(c: Counter) -> int:
    """The second (epoch, rounded up) at which the counter's current bucket leaves its window:
    from then on nothing it holds is inside the window."""
    return math.ceil((c.b + BUCKETS) * c.limit.bucket)


class Expiry:
    """Counters by the second their current bucket leaves the window: a heap of those seconds
    and the counters of each, oldest first. A counter is filed again each time it moves to a
    bucket that ends in another second; the older filing is then stale and skipped. Due
    counters cost one step each, idle ones nothing."""

    __slots__ = ("heap", "slots")

    def __init__(self) -> None:
        self.heap: list[int] = []
        self.slots: dict[int, deque[Counter]] = {}

    def __len__(self) -> int:
        return len(self.heap)

    def file(self, c: Counter, previous_b: int) -> None:
        """After ``c`` rolled from ``previous_b``: filed under its new end, unless that is the same second."""
        end = ends(c)
        if previous_b >= 0 and math.ceil((previous_b + BUCKETS) * c.limit.bucket) == end:
            return
        slot = self.slots.get(end)
        if slot is None:
            slot = self.slots[end] = deque()
            heapq.heappush(self.heap, end)
        slot.append(c)

    def due(self, now: float) -> list[tuple[int, Counter]]:
        """Take every filing due by ``now``: ``(second, counter)``."""
        out: list[tuple[int, Counter]] = []
        heap, slots = self.heap, self.slots
        while heap and heap[0] <= now:
            end = heapq.heappop(heap)
            out.extend((end, c) for c in slots.pop(end))
        return out

    def earliest(self) -> tuple[int, Counter] | None:
        """Take the filing that ends soonest (the oldest filed first among equals); None if none."""
        heap, slots = self.heap, self.slots
        if not heap:
            return None
        end = heap[0]
        slot = slots[end]
        c = slot.popleft()
        if not slot:
            heapq.heappop(heap)
            del slots[end]
        return end, c
