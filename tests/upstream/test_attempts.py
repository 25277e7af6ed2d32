"""gateway.upstream.attempts and errors as tables: where a request goes next after each way an
attempt can end, what that says about the target, and the client's answer to each failure. Both
ways of serving run these same objects, so a rule here holds for both."""

from __future__ import annotations

import pytest

from gateway.upstream.attempts import Attempts
from gateway.upstream.errors import (
    UpstreamClosedIdle,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    refusal_for,
)
from gateway.upstream.pool import Pool
from gateway.upstream.services import ReplicaSet, Upstream


def upstream(name: str) -> Upstream:
    return Upstream(name, Pool("127.0.0.1", 9, connect_timeout=1, read_timeout=1), b"h", "", "ws://h")


def replicas() -> tuple[ReplicaSet, list[Upstream]]:
    targets = [upstream("rest"), upstream("rest_replica_1")]
    return ReplicaSet(targets, retry_seconds=60), targets


def down(u: Upstream) -> bool:
    return u.down_until > 0


@pytest.mark.parametrize(("e", "replayable", "again", "same_target", "fresh", "primary_down"), [
    (UpstreamConnectError(), True, True, False, False, True),  # nothing sent: the other target
    (UpstreamConnectTimeout(), False, True, False, False, True),  # even a streamed body: not read yet
    (UpstreamClosedIdle(), True, True, True, True, False),  # the keep-alive race: the same, a new connection
    (UpstreamClosedIdle(), False, False, True, False, True),  # ... unless the body cannot go again
    (UpstreamTimeout(), True, False, True, False, True),  # it may have been served: never twice
    (UpstreamError(), True, False, True, False, True),
])
def test_what_comes_after_a_failed_attempt(e, replayable, again, same_target, fresh, primary_down):
    rs, (primary, replica) = replicas()
    rs.turn = len(rs.targets) - 1  # the first pick starts at the primary
    attempts = Attempts(primary, rs, replayable)
    first = attempts.target
    assert attempts.again(e) is again
    assert (attempts.target is first) is same_target and attempts.fresh is fresh
    assert down(first) is primary_down


def test_the_keep_alive_race_is_retried_once():
    attempts = Attempts(upstream("auth"), None)
    assert attempts.again(UpstreamClosedIdle()) and attempts.fresh
    assert not attempts.again(UpstreamClosedIdle())  # a second time: no other target to try


def test_a_single_upstream_has_no_other_target():
    attempts = Attempts(upstream("auth"), None)
    assert not attempts.again(UpstreamConnectError())
    assert not attempts.again_after(502)


@pytest.mark.parametrize(("status", "replayable", "again"), [
    (502, True, True), (503, True, True), (500, True, False), (504, True, False), (200, True, False),
    (502, False, False),  # a streamed body was read: the answer stands
])
def test_an_answer_dropped_for_another_targets(status, replayable, again):
    rs, (primary, _) = replicas()
    attempts = Attempts(primary, rs, replayable)
    first = attempts.target
    assert attempts.again_after(status) is again
    assert down(first) is again
    assert not attempts.again_after(status)  # the last target's answer is the client's


def test_the_accounting_of_a_replica_set():
    rs, (primary, replica) = replicas()
    attempts = Attempts(primary, rs)
    target = attempts.target
    attempts.answered(503)
    assert down(target)
    attempts.answered(200)
    assert not down(target)
    target.probing = True
    attempts.abandoned()
    assert not target.probing
    rs.failed(target)
    attempts.broke_off()  # it answered, then broke off: it is up
    assert not down(target)


@pytest.mark.parametrize(("e", "status", "code", "hint"), [
    (UpstreamConnectError(), 502, "UPSTREAM_UNAVAILABLE", "The rest service could not be reached."),
    (UpstreamClosedIdle(), 502, "UPSTREAM_UNAVAILABLE", "The rest service could not be reached."),
    (UpstreamError(), 502, "UPSTREAM_UNAVAILABLE", "The rest service could not be reached."),
    (UpstreamTimeout(), 504, "UPSTREAM_TIMEOUT", "The rest service did not answer in time."),
    (UpstreamConnectTimeout(), 504, "UPSTREAM_TIMEOUT", "The rest service did not answer in time."),
    (UpstreamRefused(403), 502, "UPSTREAM_UNAVAILABLE", "The rest service answered 403."),
])
def test_the_one_map_from_upstream_failures_to_answers(e, status, code, hint):
    r = refusal_for(e, "rest")
    assert (r.status, r.code, r.hint) == (status, code, hint)
