"""gateway.rules.blocks and gateway.rules.guard as table tests: which refusals count towards a block,
the threshold (in one worker, and with the store's totals), the block table's bounds, and the
guard's verdicts (allow list, deny list, never_block, trusted proxies, IPv6 /64s). Counts and
states, never timings."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.config import Settings
from gateway.rules.blocks import COUNTED, Ban, BlockTable, RefusalCounter, counts
from gateway.rules.guard import Guard
from gateway.rules.limits import parse_limit
from gateway.rules.network import Networks

# Every refusal the gateway has, and whether it counts towards a block. A new ErrorSpec fails
# test_every_refusal_is_decided until it is added here.
DECIDED = {
    "UNAUTHORIZED_MISSING_API_KEY": True, "UNAUTHORIZED_INVALID_API_KEY": True,
    "UNAUTHORIZED_INVALID_API_KEY_TYPE": True, "UNAUTHORIZED_LEGACY_API_KEY_DISABLED": True,
    "UNAUTHORIZED_CONFLICTING_API_KEYS": True, "UNAUTHORIZED_INVALID_AUTHORIZATION": True,
    "UNAUTHORIZED_API_KEY_EXPIRED": True, "UNAUTHORIZED_INVALID_JWT": True, "UNAUTHORIZED_DASHBOARD": True,
    "FORBIDDEN_ROUTE": True, "FORBIDDEN_ORIGIN": True, "FORBIDDEN_IP": True, "FORBIDDEN_SERVICE": True,
    "FORBIDDEN_RESOURCE": True, "FORBIDDEN_METHOD": True, "BAD_PATH": True,
    "BAD_REQUEST": False, "NOT_FOUND": False, "REQUEST_TIMEOUT": False, "REQUEST_HEADERS_TOO_LARGE": False,
    "OVER_REQUEST_RATE_LIMIT": False, "OVER_QUOTA": False, "CLIENT_BLOCKED": False, "CLIENT_CLOSED_REQUEST": False,
    "INTERNAL_ERROR": False, "UPSTREAM_UNAVAILABLE": False, "UPSTREAM_NOT_CONFIGURED": False,
    "TOO_MANY_CONNECTIONS": False, "UPSTREAM_TIMEOUT": False,
}


def test_every_refusal_is_decided():
    codes = {v.code for v in vars(errors).values() if isinstance(v, errors.ErrorSpec)}
    assert codes <= set(DECIDED), codes - set(DECIDED)
    assert COUNTED == {code for code, counted in DECIDED.items() if counted}


@pytest.mark.parametrize(("code", "sent", "counted"), [
    *((code, True, counted) for code, counted in DECIDED.items()),
    ("UNAUTHORIZED_INVALID_API_KEY", False, True),
    ("UNAUTHORIZED_DASHBOARD", False, False),  # a browser's first visit asks without credentials
    ("UNAUTHORIZED_DASHBOARD", True, True),  # a wrong password
])
def test_counts(code, sent, counted):
    assert counts(code, sent) is counted


RULE = parse_limit("5/m")


def test_a_worker_alone_reaches_the_threshold_at_the_count():
    c = RefusalCounter(RULE)
    assert [c.add("198.51.100.1", "X", 0.0) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert c.add("198.51.100.2", "X", 0.0) == 1  # another address counts on its own


def test_the_stores_totals_count_with_what_came_since():
    c = RefusalCounter(RULE)
    c.add("198.51.100.1", "X", 0.0)
    pending, last, since = c.take()
    assert (pending, last, since) == ({"198.51.100.1": 1}, {"198.51.100.1": "X"}, 0.0)
    assert c.pending == {} and c.since is None
    assert c.add("198.51.100.1", "X", 0.5) == 2  # the exchange is under way: what it carries still counts
    c.settle({"198.51.100.1": 4}, 0.9)  # three more from other workers and instances (the one sent included)
    assert c.add("198.51.100.1", "Y", 1.0) == 6
    pending, last, since = c.take()
    c.settle({"198.51.100.1": 6}, 1.0)
    assert c.add("198.51.100.1", "Y", 1.0) == 7
    c.take()
    c.settle({}, 1.5)  # quiet in the last interval: forgotten, nothing held for it
    assert c.known == {} and c.add("198.51.100.1", "Y", 2.0) == 1


def test_totals_of_a_past_window_no_longer_count():
    """A worker that refused nothing for a window made no exchange: what it last read is past."""
    c = RefusalCounter(RULE)
    c.add("198.51.100.1", "X", 0.0)
    c.take()
    c.settle({"198.51.100.1": 4}, 0.1)
    assert c.add("198.51.100.1", "X", 0.1 + RULE.window) == 5  # still inside: counted on
    c.take()
    c.settle({"198.51.100.1": 4}, 0.2 + RULE.window)
    assert c.add("198.51.100.1", "X", 0.3 + 2 * RULE.window) == 1  # a window later: from nothing


def test_a_block_lifted_during_an_exchange_is_not_started_again_by_its_totals():
    c = RefusalCounter(RULE)
    for _ in range(5):
        c.add("198.51.100.1", "X", 0.0)
    c.add("198.51.100.2", "X", 0.0)
    c.take()
    c.forget("198.51.100.1")  # lifted over the admin API while the exchange was under way
    c.settle({"198.51.100.1": 5, "198.51.100.2": 1}, 0.1)
    assert c.known == {"198.51.100.2": 1} and c.add("198.51.100.1", "X", 0.2) == 1


def test_a_failed_exchange_gives_the_counts_back_for_one_window_at_most():
    c = RefusalCounter(RULE)
    c.add("198.51.100.9", "X", 10.0)
    c.take()
    c.settle({"198.51.100.9": 3}, 10.5)
    for _ in range(3):
        c.add("198.51.100.1", "X", 10.0)
    taken = c.take()
    c.add("198.51.100.1", "Y", 11.0)
    c.give_back(*taken, now=11.0)
    assert c.pending == {"198.51.100.1": 4} and c.since == 10.0
    assert c.known == {"198.51.100.9": 3} and c.add("198.51.100.9", "X", 11.0) == 4  # the last totals still count
    taken = c.take()
    c.give_back(*taken, now=10.0 + RULE.window + 1)  # older than a window: of no use
    assert c.pending == {} and c.known == {}


def test_pending_is_bounded():
    c = RefusalCounter(RULE, max_pending=2)
    assert [c.add(a, "X", 0.0) for a in ("a", "b", "c", "a")] == [1, 1, 0, 2]
    assert set(c.pending) == {"a", "b"}


def test_the_block_table():
    t = BlockTable(max_size=3)
    t.add("a", 10.0, 0.0)
    t.add("b", 20.0, 0.0)
    assert t.until("a", 5.0) == 10.0 and t.until("a", 10.0) is None and "a" not in t  # ended: forgotten
    t.add("c", 30.0, 0.0)
    t.add("d", 40.0, 0.0)
    t.add("e", 50.0, 0.0)  # full: the oldest goes
    assert [k for k in ("b", "c", "d", "e") if k in t] == ["c", "d", "e"]
    t.add("f", 60.0, 35.0)  # c ended: it leaves, nothing running is dropped
    assert [k for k in ("c", "d", "e", "f") if k in t] == ["d", "e", "f"]
    t.add("g", 5.0, 36.0)  # already over: not added
    assert "g" not in t and t.remove("d") and not t.remove("d")
    t.replace([Ban("x", 0.0, 70.0, "", 1)], 36.0)
    assert len(t) == 1 and t.until("x", 36.0) == 70.0


def guard(rule: str | None = "3/m", **protection) -> Guard:
    settings = Settings(protection={"block_after": rule, **protection},
                        server={"trusted_proxies": ["10.9.0.0/16"]})
    return Guard.from_settings(settings)


def refuse(g: Guard, ip: str, n: int, code: errors.ErrorSpec = errors.INVALID_API_KEY, now: float = 0.0) -> None:
    for _ in range(n):
        g.refused(ip, code, False, now)


def status(g: Guard, ip: str, now: float = 1.0) -> int:
    try:
        g.check(ip, now)
    except errors.Refusal as r:
        return r.status
    return 200


def test_a_client_is_blocked_at_the_threshold_and_nobody_else_is():
    g = guard()
    refuse(g, "198.51.100.1", 2)
    assert status(g, "198.51.100.1") == 200 and not g.started
    refuse(g, "198.51.100.1", 1)
    assert status(g, "198.51.100.1") == 429
    assert status(g, "::ffff:198.51.100.1") == 429  # the same client, written as a mapped address
    assert status(g, "198.51.100.2") == 200  # a neighbour is never refused for it
    [ban] = g.started
    assert (ban.address, ban.refusals, ban.ends_at - ban.started_at) == ("198.51.100.1", 3, 600)
    assert ban.reason == "3 refused requests (block_after 3/m); the last: UNAUTHORIZED_INVALID_API_KEY"
    with pytest.raises(errors.Refusal) as r:
        g.check("198.51.100.1", 100.4)
    assert r.value.code == "CLIENT_BLOCKED" and r.value.headers == [(b"retry-after", b"500")]
    assert status(g, "198.51.100.1", 600.0) == 200  # over


@pytest.mark.parametrize(("client", "neighbour", "same"), [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64, one subscriber
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("198.51.100.1", "198.51.100.2", False),
])
def test_ipv6_clients_count_and_are_blocked_by_their_64(client, neighbour, same):
    g = guard()
    refuse(g, client, 2)
    refuse(g, neighbour, 1)
    assert status(g, client) == (429 if same else 200)
    assert status(g, neighbour) == (429 if same else 200)


@pytest.mark.parametrize("ip", ["192.0.2.1", "192.0.2.200", "10.9.1.1", "::ffff:10.9.1.1", "unknown", ""])
def test_never_block_trusted_proxies_and_non_addresses_are_never_counted(ip):
    g = guard(never_block=["192.0.2.0/24"])
    refuse(g, ip, 10)
    assert status(g, ip) == 200 and not g.started and not g.counter.pending


@pytest.mark.parametrize(("code", "blocked"), [
    (errors.OVER_RATE_LIMIT, False),
    (errors.NOT_FOUND, False), (errors.FORBIDDEN_NETWORK, False), (errors.UPSTREAM_UNAVAILABLE, False),
    (errors.FORBIDDEN_ORIGIN, True), (errors.BAD_PATH, True), (errors.INVALID_JWT, True),
])
def test_only_counted_refusals_block(code, blocked):
    g = guard()
    refuse(g, "198.51.100.1", 5, code)
    assert status(g, "198.51.100.1") == (429 if blocked else 200)


def test_blocking_off_counts_nothing():
    g = guard(rule=None)
    refuse(g, "198.51.100.1", 100)
    assert g.counter is None and status(g, "198.51.100.1") == 200


def test_a_blocks_answer_is_counted_not_counted_towards_another():
    g = guard()
    refuse(g, "198.51.100.1", 3)
    assert g.refused("198.51.100.1", errors.CLIENT_BLOCKED, False) is True
    assert g.refused("198.51.100.1", errors.INVALID_API_KEY, False) is False
    assert g.answered == 1 and len(g.started) == 1


def test_blocks_from_elsewhere_and_lifts():
    g = guard()
    g.banned([("198.51.100.7", 100.0), ("2001:db8:1:2::/64", 100.0)], 0.0)
    assert status(g, "198.51.100.7") == 429 and status(g, "2001:db8:1:2::99") == 429
    assert status(g, "192.0.2.1") == 200  # a never_block-free neighbour
    refuse(g, "198.51.100.8", 3)
    g.lifted(["198.51.100.7", "198.51.100.8"])
    assert status(g, "198.51.100.7") == 200 and status(g, "198.51.100.8") == 200
    assert g.started == []  # a lifted block not stored yet is dropped too
    refuse(g, "198.51.100.8", 2)
    assert status(g, "198.51.100.8") == 200  # starts again from nothing


def test_a_trusted_proxy_is_not_blocked_even_by_a_block_from_elsewhere():
    g = guard()
    g.banned([("10.9.1.1", 100.0)], 0.0)
    assert status(g, "10.9.1.1") == 200


@pytest.mark.parametrize(("allow", "deny", "ip", "expected"), [
    (None, [], "203.0.113.9", 200),
    (None, ["203.0.113.0/24"], "203.0.113.9", 403),
    (None, ["203.0.113.0/24"], "::ffff:203.0.113.9", 403),  # a mapped spelling is the same client
    (None, ["203.0.113.0/24"], "203.0.114.1", 200),
    (["198.51.100.0/24"], [], "198.51.100.4", 200),
    (["198.51.100.0/24"], [], "203.0.113.9", 403),
    (["198.51.100.0/24"], [], "2001:db8::1", 403),  # an IPv4-only list refuses IPv6 clients
    (["198.51.100.0/24"], ["198.51.100.4/32"], "198.51.100.4", 403),  # deny wins
    (["198.51.100.0/24"], [], "garbage", 403),  # no address: refused once the listener is restricted
    (None, [], "garbage", 200),
    (["0.0.0.0/1", "128.0.0.0/1", "::/0"], [], "203.0.113.9", 200),  # everyone, written in halves
])
def test_allow_and_deny(allow, deny, ip, expected):
    g = guard(deny_ips=deny)
    if allow is not None:
        g.set_allow(Networks.parse(allow))
    assert status(g, ip) == expected
    assert status(g, ip) == expected  # the cached verdict says the same


def test_the_default_is_open_and_a_change_is_seen_at_once():
    g = guard()
    assert g.open
    assert status(g, "203.0.113.9") == 200
    g.set_allow(Networks.parse(["198.51.100.0/24"]))
    assert not g.open and status(g, "203.0.113.9") == 403  # the cached verdict was dropped
    g.set_allow(Networks.parse(["0.0.0.0/0", "::/0"]))
    assert g.open and status(g, "203.0.113.9") == 200


def test_verdicts_are_bounded():
    g = guard(deny_ips=["203.0.113.0/24"])
    for i in range(30_000):
        g.check(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(g._verdicts) <= 10_000
