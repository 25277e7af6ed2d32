"""Where a read goes (gateway.upstream.services.ReplicaSet.pick): the same choice as the plain definition
(the least busy usable target in turn, then the least busy other one), for any state."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.upstream.services import ReplicaSet, Upstream, upstream_from

SETTINGS = Settings(jwt={"secret": "x" * 40})


def reference_pick(targets: list[Upstream], turn: int, now: float) -> tuple[list[Upstream], Upstream]:
    order = targets[turn:] + targets[:turn]
    usable = [u for u in order if u.down_until <= now and not u.probing] or order
    chosen = min(usable, key=lambda u: u.pool.outstanding)
    rest = [u for u in usable if u is not chosen] or [u for u in order if u is not chosen]
    return ([chosen, min(rest, key=lambda u: u.pool.outstanding)] if rest else [chosen]), chosen


target = st.tuples(st.integers(0, 3), st.sampled_from(["up", "recovered", "down"]), st.booleans())


@given(st.lists(target, min_size=1, max_size=4), st.integers(0, 3))
def test_pick_is_the_plain_definition(states, turn):
    now = time.monotonic()
    targets = []
    for i, (outstanding, health, probing) in enumerate(states):
        u = upstream_from(SETTINGS, f"t{i}", f"http://127.0.0.1:{1000 + i}", "rest")
        u.pool.outstanding = outstanding
        u.down_until = {"up": 0.0, "recovered": now - 100, "down": now + 100}[health]
        u.probing = probing
        targets.append(u)
    reads = ReplicaSet(targets, 5)
    reads.turn = turn % len(targets)
    expected, chosen = reference_pick(targets, (reads.turn + 1) % len(targets), now)
    will_probe = bool(chosen.down_until)
    before = [u.probing for u in targets]
    assert reads.pick() == expected
    assert [u.probing for u in targets] == [p or (u is chosen and will_probe) for u, p in zip(targets, before)]
