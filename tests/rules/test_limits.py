"""gateway.rules.limits as pure tests: the notation, the sliding window's decisions on a clock we set,
its two guarantees as properties (traffic under the limit is never refused; over any window at
most a twentieth more is admitted), the share each worker takes alone, and the headers."""

from __future__ import annotations

import math
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.keys.entries import KeyEntry
from gateway.rules.limits import BUCKETS, Limiter, RateLimits, parse_limit
from gateway.rules.window import Counter


@pytest.mark.parametrize(("text", "count", "window"), [
    ("10/s", 10, 1), ("600/m", 600, 60), ("100/5m", 100, 300), ("50000/d", 50000, 86400), ("1/h", 1, 3600),
    ("3/2s", 3, 2), (" 5/m ", 5, 60), ("7/366d", 7, 366 * 86400),
])
def test_the_notation(text, count, window):
    limit = parse_limit(text)
    assert (limit.count, limit.window, limit.text) == (count, window, text.strip())


@pytest.mark.parametrize("text", ["", "10", "10/", "/m", "0/m", "-1/m", "10/0m", "10/x", "10/ m", "1.5/m",
                                  "10/m/s", "10/1000000d", "10/M", "abc", None, 10, "01/m", "10/05m"])
def test_what_is_no_limit(text):
    with pytest.raises(ValueError):
        parse_limit(text)


def admit(limiter: Limiter, now: float, limit: str = "10/10s", scope: str = "k:10:a"):
    return limiter.admit([("per_key", scope, parse_limit(limit))], now)


def test_a_limit_admits_its_count_and_refuses_the_rest():
    limiter = Limiter()
    outcomes = [admit(limiter, 1000.0 + i * 0.01) for i in range(25)]
    assert sum(o.refused is None for o in outcomes) == 10
    assert all(o.refused == "per_key" for o in outcomes[10:])
    assert outcomes[10].retry >= 1


def test_the_window_slides():
    limiter = Limiter()
    for i in range(10):
        assert admit(limiter, 1000.0 + i).refused is None  # one a second: ten in ten seconds
    assert admit(limiter, 1009.5).refused == "per_key"
    assert admit(limiter, 1010.6).refused is None  # the first one has left the window


def test_refused_requests_are_not_counted():
    limiter = Limiter()
    for _ in range(100):
        admit(limiter, 1000.0)
    assert admit(limiter, 1010.6).refused is None  # only the ten admitted ones counted, all gone


def test_scopes_count_apart_and_every_scope_must_allow():
    limiter = Limiter()
    ip_a = [("per_key", "k:10:a", parse_limit("5/10s")), ("per_ip", "i:10:a:1.1.1.1", parse_limit("3/10s"))]
    ip_b = [("per_key", "k:10:a", parse_limit("5/10s")), ("per_ip", "i:10:a:2.2.2.2", parse_limit("3/10s"))]
    assert [limiter.admit(ip_a, 1000).refused for _ in range(4)] == [None, None, None, "per_ip"]
    assert [limiter.admit(ip_b, 1000).refused for _ in range(3)] == [None, None, "per_key"]


def test_alone_each_worker_takes_its_share():
    limiter = Limiter(workers=4)
    limiter.shared = False
    assert sum(admit(limiter, 1000.0, "10/10s").refused is None for _ in range(10)) == 3  # ceil(10 / 4)
    limiter = Limiter(workers=40)
    limiter.shared = False
    assert sum(admit(limiter, 1000.0, "10/10s").refused is None for _ in range(10)) == 1  # never none at all


def test_headers_of_admitted_and_refused_requests():
    limiter = Limiter()
    first = admit(limiter, 1000.0, "3/m")
    policy, state = dict(first.headers())[b"ratelimit-policy"], dict(first.headers())[b"ratelimit"]
    assert policy == b'"per_key";q=3;w=60'
    assert re.fullmatch(rb'"per_key";r=2;t=\d+', state)
    admit(limiter, 1000.0, "3/m")
    admit(limiter, 1000.0, "3/m")
    refused = admit(limiter, 1001.0, "3/m")
    r = refused.refusal()
    assert (r.status, r.code, r.message) == (429, "OVER_REQUEST_RATE_LIMIT", "Too many requests")
    headers = dict(r.headers)
    g = 60 / BUCKETS
    assert int(headers[b"retry-after"]) == math.ceil((int(1000 / g) + BUCKETS) * g - 1001)  # the burst's bucket leaves
    assert headers[b"ratelimit"].startswith(b'"per_key";r=0;t=')
    assert b"limit of 3/m" in r.body


def test_which_limits_apply():
    defaults = RateLimits(parse_limit("300/m"), parse_limit("6000/m"), parse_limit("60/m"))
    pub = KeyEntry("p", "publishable", "sb_publishable_x", "anon", {"role": "anon"})
    sec = KeyEntry("s", "secret", "sb_secret_x", "service_role", {"role": "service_role"})
    own = KeyEntry("o", "publishable", "sb_publishable_y", "anon", {"role": "anon"}, parse_limit("10/s"),
                   parse_limit("1/s"))
    anon = KeyEntry("anon", "legacy", "", "anon", {"role": "anon"})
    assert [(n, s) for n, s, _ in defaults.scopes(pub, None, "1.2.3.4")] == [("per_ip", "i:60:p:1.2.3.4")]
    assert [(n, s) for n, s, _ in defaults.scopes(sec, None, "1.2.3.4")] == [("per_key", "k:60:s")]
    assert [(n, s) for n, s, _ in defaults.scopes(own, None, "1.2.3.4")] == [("per_key", "k:1:o"),
                                                                             ("per_ip", "i:1:o:1.2.3.4")]
    assert [n for n, _, _ in defaults.scopes(anon, {"sub": "u1"}, "::1")] == ["per_ip", "per_user"]
    assert defaults.scopes(pub, {"sub": "a\x00b"}, "1.2.3.4")[1][1].startswith("u:60:")  # hashed, never raw
    assert "\x00" not in defaults.scopes(pub, {"sub": "a\x00b"}, "1.2.3.4")[1][1]
    assert RateLimits().scopes(pub, {"sub": "u1"}, "1.2.3.4") == []


@pytest.mark.parametrize(("entry", "claims", "scopes"), [
    (None, None, [("keyless_per_ip", "n:60:1.2.3.4")]),  # neither key nor user JWT: by address
    (None, {"sub": "u1", "role": "authenticated"}, [("per_user", "u:60:u1")]),  # a user JWT alone
    (None, {"role": "authenticated"}, []),  # a user JWT without a sub: nothing to count it by
    (KeyEntry("anon", "legacy", "", "anon", {"role": "anon"}), None, [("per_ip", "i:60:anon:1.2.3.4")]),
    (KeyEntry("service_role", "legacy", "", "service_role", {"role": "service_role"}), None,
     [("per_key", "k:60:service_role")]),
])
def test_which_limits_apply_without_a_key(entry, claims, scopes):
    """docs/protection.md: a verified user JWT counts under per_user on every route, with or without an apikey;
    a legacy key sent only as a bearer counts under its own limits; requests with neither count
    per client IP under keyless_per_ip."""
    defaults = RateLimits(parse_limit("300/m"), parse_limit("6000/m"), parse_limit("60/m"), parse_limit("100/m"))
    assert [(n, s) for n, s, _ in defaults.scopes(entry, claims, "1.2.3.4")] == scopes


# --- the window's storage, on a clock we set (issue 20) ---------------------------------------------------
# "10/10s": a bucket is 0.5 s, so 1000.0 s is bucket 2000 and the window is buckets b - 19 .. b.


def cells(c: Counter) -> list[tuple[int, ...]]:
    """A counter's cells as (bucket, synced, pending, own) tuples, oldest first."""
    return [tuple(c.cells[i:i + 4]) for i in range(0, len(c.cells), 4)]


@pytest.mark.parametrize(("times", "count", "expected"), [
    ([], 0, []),
    ([1000.0], 1, [(2000, 0, 1, 1)]),
    ([1000.0, 1000.4], 2, [(2000, 0, 2, 2)]),  # one bucket
    ([1000.0, 1000.6], 2, [(2000, 0, 1, 1), (2001, 0, 1, 1)]),
    ([1000.0, 1009.9], 2, [(2000, 0, 1, 1), (2019, 0, 1, 1)]),  # bucket 2000 is still the window's oldest
    ([1000.0, 1010.0], 1, [(2020, 0, 1, 1)]),  # and now it has left
    ([1000.0, 1000.1, 1030.0], 1, [(2060, 0, 1, 1)]),  # an idle window empties whole
])
def test_the_window_keeps_a_cell_per_bucket_that_saw_requests(times, count, expected):
    limiter = Limiter()
    for t in times:
        assert admit(limiter, t).refused is None
    c = limiter.counters.get("k:10:a")
    assert (c.count(True) if c else 0) == count
    assert (cells(c) if c else []) == expected


@pytest.mark.parametrize(("seen", "b", "read"), [
    (-1, 2019, (2000, 2019)),  # never read: the whole window
    (2019, 2019, (2018, 2019)),  # read in this bucket: this one and the one before
    (2018, 2019, (2017, 2019)),
    (2010, 2019, (2009, 2019)),  # idle for a while: everything since it was last read
    (1990, 2019, (2000, 2019)),  # idle for more than a window: the whole window, no more
])
def test_what_an_exchange_reads_back(seen, b, read):
    c = Counter("k:10:a", parse_limit("10/10s"))
    c.roll(b)
    c.seen = seen
    assert c.outgoing()[1:] == read


@pytest.mark.parametrize(("pushed", "totals", "expected"), [
    ([(2019, 2)], [(2019, 5)], [(2018, 0, 1, 1), (2019, 5, 1, 3)]),  # sent 2, 1 more counted meanwhile
    ([], [(2019, 4), (2019, 6)], [(2018, 0, 1, 1), (2019, 6, 3, 3)]),  # read and pushed: the larger total
    ([], [(2019, 1)], [(2018, 0, 1, 1), (2019, 2, 3, 3)]),  # a total never lowers what is known
    ([], [(2005, 7), (1999, 9)], [(2005, 7, 0, 0), (2018, 0, 1, 1), (2019, 2, 3, 3)]),  # inserted in order;
    ([], [(2005, 0)], [(2018, 0, 1, 1), (2019, 2, 3, 3)]),  # out of the window or empty: nothing to keep
])
def test_what_an_exchange_brings_back(pushed, totals, expected):
    c = Counter("k:10:a", parse_limit("10/10s"))
    c.roll(2018)
    c.add()
    c.roll(2019)
    for _ in range(3):
        c.add()
    c.cells[5] = 2  # the store had said 2 for bucket 2019
    c.settle(pushed, totals, 2019)
    assert cells(c) == expected
    assert c.seen == 2019
    assert c.count(True) == sum(s + p for _, s, p, _ in expected)  # the base is recomputed
    assert c.count(False) == 4  # our own requests, whatever the store says


def test_a_new_limit_keeps_the_counts_of_the_same_window():
    limiter = Limiter()
    for _ in range(3):
        admit(limiter, 1000.0, "10/10s")
    assert admit(limiter, 1000.0, "3/10s").refused == "per_key"  # the same buckets: three already in
    assert admit(limiter, 1000.0, "20/10s").refused is None


def test_memory_per_counter_is_small_and_bounded():
    """One request from each of many addresses (issue 20): what the limiter holds per scope, the
    scope string aside (the request made it): the Counter (7 slots, 88 bytes), one 4-cell int64
    array (112), its bucket number (an int, 32), and its places in the limiter's dict and in the
    expiry index (40-110, as the dict last doubled): at most 360 bytes. Three dicts a scope took
    about 720."""
    n = 20_000
    limit = parse_limit("1000/h")
    scopes = [f"i:3600:key:127.1.{i >> 8}.{i & 255}" for i in range(n)]
    limiter = Limiter()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, scope in enumerate(scopes):
            limiter.admit([("per_ip", scope, limit)], 1_700_000_000.0 + i / 1000)
        limiter.settle(limiter.outgoing(most=n), [], 1)  # exchanged: nothing dirty any more
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Everything allocated (whether the limiter runs as Python or compiled, which tracemalloc
    # credits to the caller's line), but tracemalloc's own bookkeeping.
    ours = [tracemalloc.Filter(False, tracemalloc.__file__)]
    grown = sum(d.size_diff for d in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename"))
    assert len(limiter.counters) == n and not limiter.dirty
    assert grown / n <= 360, grown / n


@pytest.mark.parametrize(("times", "sweep_at", "left"), [
    ([1000.0], 1009.9, 1),
    ([1000.0], 1010.0, 0),  # bucket 2000 leaves the window at (2000 + 20) * 0.5
    ([1000.0, 1005.0], 1010.0, 1),  # used again: filed under its new end
    ([1000.0, 1005.0], 1015.0, 0),
])
def test_counters_with_nothing_left_in_their_window_are_dropped(times, sweep_at, left):
    limiter = Limiter()
    for t in times:
        admit(limiter, t)
    limiter.sweep(sweep_at)
    assert len(limiter.counters) == left
    assert len(limiter.dirty) == left  # nothing is sent for a window that has emptied


def test_the_hard_cap_drops_the_windows_that_end_soonest():
    limiter = Limiter(max_counters=5)
    for i in range(5):  # "10/20s": one-second buckets, each scope's window ends a second after the last
        admit(limiter, 1000.0 + i, "10/20s", f"k:20:{i}")
    admit(limiter, 1000.0, "10/20s", "k:20:0")  # used again in the same bucket: still the soonest to end
    admit(limiter, 1005.0, "10/20s", "k:20:new")
    assert sorted(limiter.counters) == ["k:20:1", "k:20:2", "k:20:3", "k:20:4", "k:20:new"]
    admit(limiter, 1003.5, "10/20s", "k:20:1")  # moved on to a later bucket: now the last to end
    admit(limiter, 1006.0, "10/20s", "k:20:newer")
    assert sorted(limiter.counters) == ["k:20:1", "k:20:3", "k:20:4", "k:20:new", "k:20:newer"]
    admit(limiter, 1030.0, "10/20s", "k:20:late")  # everything else has emptied: it all goes first
    assert sorted(limiter.counters) == ["k:20:late"]


# --- the two guarantees, for any arrival times ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), max_size=120), st.integers(1, 12))
def test_traffic_under_the_limit_is_never_refused(times, count):
    """Keep only arrivals that leave at most ``count`` in any window: none of them is refused."""
    window = 10.0
    kept: list[float] = []
    for t in sorted(times):
        if sum(1 for k in kept if k > t - window) < count:
            kept.append(t)
    limiter = Limiter()
    limit = f"{count}/10s"
    assert all(admit(limiter, 5000.0 + t, limit).refused is None for t in kept)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), min_size=1, max_size=200))
def test_over_any_window_at_most_one_bucket_more(times):
    """A steady or bursty flood: over any window, the admitted ones are at most the limit plus
    those admitted in the one bucket that was sliding out."""
    window, count = 10.0, 20
    limiter = Limiter()
    admitted = [t for t in sorted(times) if admit(limiter, 5000.0 + t, f"{count}/10s").refused is None]
    g = window / BUCKETS
    for start in admitted:
        inside = [t for t in admitted if start <= t < start + window]
        sliding = [t for t in inside if t < start + g]  # the bucket-width at the window's start
        assert len(inside) <= count + len(sliding)


def test_a_notation_is_parsed_once():
    """The settings that checked a default limit, and every key carrying the same notation, share
    one Limit (and its precomputed header parts)."""
    from gateway.config.sections import LimitsSettings

    assert parse_limit("600/m") is parse_limit(" 600/m ")
    settings = type("S", (), {"limits": LimitsSettings(per_user="600/m", publishable_per_ip="10/s")})()
    assert RateLimits.from_settings(settings).per_user is parse_limit("600/m")
    with pytest.raises(ValueError):
        parse_limit(["600/m"])
