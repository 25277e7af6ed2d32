"""gateway.rules.limitstore's exchange against a store in memory (issue 20): it costs what changed
since the last one (rows counted, never time), a counter is read whole once and then only from
where it was last read, emptied windows go, two limiters sharing one store keep the accuracy
bound, and a store that fails and comes back. Clocks are set by hand; nothing sleeps."""

from __future__ import annotations

import logging

import pytest

from gateway.rules import limitstore
from gateway.rules.limits import BUCKETS, MAX_BATCH, Limiter, Push, Range, Total, parse_limit
from gateway.rules.limitstore import LimitSync

T0 = 1_700_000_100.0  # the start of a bucket of "1000/h" (3 min), "10/m" (3 s) and "10/10s" (0.5 s)


class FakeStore:
    """The CounterStore protocol over a dict; it records the rows of every exchange."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.alive: set[str] = set()
        self.calls: list[tuple[list[Push], list[Range]]] = []
        self.failing = False

    async def exchange(self, pushes: list[Push], reads: list[Range], worker: str,
                       now: float) -> tuple[list[Total], int]:
        self.calls.append((pushes, reads))
        if self.failing:
            raise ConnectionRefusedError("store away")
        self.alive.add(worker)
        totals = []
        for scope, bucket, n, _ in pushes:
            self.counts[(scope, bucket)] = self.counts.get((scope, bucket), 0) + n
            totals.append((scope, bucket, self.counts[(scope, bucket)]))
        for scope, lo, hi in reads:
            totals.extend((scope, b, self.counts[(scope, b)]) for b in range(lo, hi + 1) if (scope, b) in self.counts)
        return totals, len(self.alive)

    async def cleanup(self, now: float) -> None:
        return None

    async def close(self) -> None:
        return None

    def rows(self, call: int = -1) -> tuple[int, int]:
        pushes, reads = self.calls[call]
        return len(pushes), len(reads)


def per_ip(i: int, limit: str = "1000/h") -> list[tuple[str, str, object]]:
    return [("per_ip", f"i:3600:key:127.1.{i >> 8}.{i & 255}", parse_limit(limit))]


async def test_idle_counters_cost_nothing():
    """50,000 addresses once each, then nothing: the exchange after them carries them all; every
    one after that carries no row at all (the heartbeat aside)."""
    limiter, store = Limiter(), FakeStore()
    ex = LimitSync(limiter, store, 0.1)
    for i in range(50_000):
        assert limiter.admit(per_ip(i), T0 + i / 10_000).refused is None
    t = T0 + 5.0
    while limiter.dirty:
        assert await ex.once(t)
        t += 0.1
    assert sum(store.rows(i)[0] for i in range(len(store.calls))) == 50_000  # one push each
    assert sum(store.rows(i)[1] for i in range(len(store.calls))) == 50_000  # one read range each
    assert max(store.rows(i)[0] for i in range(len(store.calls))) <= MAX_BATCH
    for _ in range(20):
        assert await ex.once(t)
        assert store.rows() == (0, 0)
        t += 0.1
    assert len(limiter.counters) == 50_000  # still inside their windows: kept, idle


async def test_a_counter_used_again_is_exchanged_again():
    limiter, store = Limiter(), FakeStore()
    ex = LimitSync(limiter, store, 0.1)
    limiter.admit(per_ip(1), T0)
    limiter.admit(per_ip(2), T0)
    await ex.once(T0)
    first = {scope: (lo, hi) for scope, lo, hi in store.calls[-1][1]}
    b = int(T0 / 180)
    assert set(first.values()) == {(b - BUCKETS + 1, b)}  # seen for the first time: the whole window
    await ex.once(T0 + 0.1)
    assert store.rows() == (0, 0)
    limiter.admit(per_ip(1), T0 + 400)  # two buckets later
    await ex.once(T0 + 400)
    pushes, reads = store.calls[-1]
    assert [(s, bucket, n) for s, bucket, n, _ in pushes] == [(per_ip(1)[0][1], b + 2, 1)]
    assert reads == [(per_ip(1)[0][1], b - 1, b + 2)]  # from the bucket before the one last read
    assert store.counts[(per_ip(1)[0][1], b)] == 1 and store.counts[(per_ip(1)[0][1], b + 2)] == 1


async def test_emptied_windows_are_dropped_and_never_sent():
    limiter, store = Limiter(), FakeStore()
    ex = LimitSync(limiter, store, 0.1)
    for i in range(100):
        limiter.admit(per_ip(i, "10/10s"), T0)
    await ex.once(T0)
    limiter.admit(per_ip(0, "10/10s"), T0 + 9)
    await ex.once(T0 + 10.0)  # the others' only bucket left the window at T0 + 10
    assert list(limiter.counters) == [per_ip(0)[0][1]]
    await ex.once(T0 + 19.5)
    assert not limiter.counters and not limiter.dirty
    assert store.rows() == (0, 0)


async def test_a_backlog_goes_in_slices():
    limiter = Limiter()
    for i in range(25):
        limiter.admit(per_ip(i), T0)
    sizes = []
    while limiter.dirty:
        batch = limiter.outgoing(most=10)
        sizes.append(len(batch.reads))
        limiter.settle(batch, [], 1)
    assert sizes == [10, 10, 5]


async def test_two_workers_sharing_one_store_stay_within_the_bound():
    """Two limiters, a request each every 10 ms, exchanges every 100 ms, one limit of 100 per 10 s
    for one window: admitted between the limit and the limit + 5 % + one sync interval of
    traffic, and nothing refused before the limit was reached."""
    store = FakeStore()
    limiters = [Limiter(workers=2), Limiter(workers=2)]
    exchangers = [LimitSync(lim, store, 0.1) for lim in limiters]
    outcomes = []
    for step in range(1000):
        t = T0 + step * 0.01
        outcomes.extend(lim.admit(per_ip(7, "100/10s"), t).refused for lim in limiters)
        if step % 10 == 9:
            for ex in exchangers:
                await ex.once(t)
    rate, interval = 200, 0.1
    admitted = outcomes.count(None)
    assert 100 <= admitted <= 100 * 1.05 + rate * interval, admitted
    assert outcomes.index("per_ip") >= 100


async def test_an_idle_view_is_stale_for_one_interval_at_most():
    """A stale view only ever under-counts (a total never lowers what is known), and it decides
    alone only until the next exchange: whoever comes back to an idle counter may admit what
    arrives within one sync interval, as any worker may while the others' counts are on their
    way. Here A counts 60 and goes idle, B (new) 41, A comes back with 10 in one interval."""
    store = FakeStore()
    a, b = Limiter(workers=2), Limiter(workers=2)
    ea, eb = LimitSync(a, store, 0.1), LimitSync(b, store, 0.1)
    scope = per_ip(3, "100/m")
    assert [a.admit(scope, T0 + i * 0.01).refused for i in range(60)] == [None] * 60
    await ea.once(T0 + 0.6)
    assert [b.admit(scope, T0 + 1 + i * 0.01).refused for i in range(41)] == [None] * 41  # B's first interval
    await eb.once(T0 + 1.5)  # B's first exchange reads the whole window: 101
    assert b.admit(scope, T0 + 1.6).refused == "per_ip"
    await ea.once(T0 + 1.6)
    assert store.calls[-1][:2] == ([], [])  # A is idle: it sends and reads nothing
    back = [a.admit(scope, T0 + 2 + i * 0.01).refused for i in range(10)]
    assert back == [None] * 10  # A's view (60) is stale for one interval
    await ea.once(T0 + 2.1)  # read from where A last read: 111
    assert a.admit(scope, T0 + 2.2).refused == "per_ip"
    assert 60 + 41 + 10 <= 100 * 1.05 + 100 * 0.1  # within the bound at 100 requests a second


async def test_the_store_failing_and_coming_back(caplog):
    limiter, store = Limiter(), FakeStore()
    store.alive.add("another worker")  # two share the limits while the store is away
    ex = LimitSync(limiter, store, 0.1)
    s1, s2, s3 = per_ip(1, "10/m"), per_ip(2, "10/m"), per_ip(3, "10/m")
    limiter.admit(s1, T0)
    assert await ex.once(T0)
    store.failing = True
    for i in range(5):
        limiter.admit(s1, T0 + 1 + i)  # buckets T0 and T0 + 3 s
    limiter.admit(s2, T0 + 1)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        assert not await ex.once(T0 + 6)
        assert store.rows() == (3, 2)  # the first attempt carried what was waiting
        for i in range(5):
            assert not await ex.once(T0 + 6.1 + i / 10)
            assert store.rows() == (0, 0)  # then only the heartbeat, however much waits
    assert caplog.text.count("rate-limit store unreachable") == 1
    assert not limiter.shared
    assert [limiter.admit(s3, T0 + 7).refused for _ in range(6)] == [None] * 5 + ["per_ip"]  # its share: 10 / 2
    assert ex.late == 6 and ex.last_late
    store.failing = False
    with caplog.at_level(logging.WARNING, logger="gateway"):
        assert await ex.once(T0 + 8)
        assert await ex.once(T0 + 8.1)
    assert "reachable again" in caplog.text
    assert limiter.shared and not limiter.dirty

    def stored(scope: list) -> int:
        return sum(n for (s, _), n in store.counts.items() if s == scope[0][1])

    assert (stored(s1), stored(s2), stored(s3)) == (6, 1, 5)  # every request of the outage sent once


async def test_lag_is_measured_not_guessed():
    clock = [100.0]
    reports = []
    ex = LimitSync(Limiter(), FakeStore(), 0.1, report=lambda e: reports.append((round(e.gap, 3), e.last_late)),
                   clock=lambda: clock[0])
    for gap in (0.1, 0.12, 0.29, 0.31, 0.1):
        clock[0] += gap
        await ex.once(T0)
    assert reports == [(0.1, False), (0.12, False), (0.29, False), (0.31, True), (0.1, False)]
    assert ex.late == 1 and ex.lag(clock[0] + 0.05) == pytest.approx(0.05)


def test_the_exchange_only_moves_rows():
    """The loop asks the limiter what to send and hands the totals back: it never reaches into a
    counter's cells (Kong's split: the handler asks the policy, the policy owns its counters)."""
    import inspect

    source = inspect.getsource(limitstore)
    for inside in (".cells", ".pending", ".synced", ".seen", "c.roll", "c.rebase"):
        assert inside not in source, inside


async def test_a_bug_does_not_end_the_loop(caplog):
    """An exchange that raises is logged (its type only: a message could quote a scope, with a key
    id or an address in it) and the loop goes on."""
    import asyncio

    class Garbled(FakeStore):
        """Answers three exchanges with something that is not a total."""

        broken = 3

        async def exchange(self, pushes, reads, worker, now):
            totals, workers = await super().exchange(pushes, reads, worker, now)
            if self.broken:
                self.broken -= 1
                totals = [None, *totals]
            return totals, workers

    limiter, store = Limiter(), Garbled()
    ex = LimitSync(limiter, store, 0.001)
    limiter.admit(per_ip(9), T0)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        ex.start()
        try:
            async def enough() -> None:
                while len(store.calls) < 6:
                    await asyncio.sleep(0.001)

            await asyncio.wait_for(enough(), 10)
        finally:
            await ex.stop()
    assert caplog.text.count("rate-limit exchange failed: TypeError") == 1
    assert "127.1." not in caplog.text
