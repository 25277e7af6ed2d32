"""The one deadline sweep of a worker (gateway.clock)."""

import asyncio

from gateway.clock import SWEEP_SECONDS, Deadlines


class Watched:
    def __init__(self, deadline: float | None, fail: bool = False) -> None:
        self.deadline = deadline
        self.fail = fail
        self.passed = 0

    def deadline_passed(self) -> None:
        self.passed += 1
        if self.fail:
            raise RuntimeError("boom")


async def test_passed_deadlines_fire_once_and_others_wait() -> None:
    deadlines = Deadlines()
    now = asyncio.get_running_loop().time()
    soon, later, never = Watched(now), Watched(now + 60), Watched(None)
    for obj in (soon, later, never):
        deadlines.watch(obj)
    await asyncio.sleep(SWEEP_SECONDS * 2.5)
    assert (soon.passed, later.passed, never.passed) == (1, 0, 0)
    assert soon.deadline is None  # cleared: fires once unless set again
    for obj in (soon, later, never):
        deadlines.unwatch(obj)


async def test_a_failing_object_never_stops_the_sweep() -> None:
    deadlines = Deadlines()
    now = asyncio.get_running_loop().time()
    bad, good = Watched(now, fail=True), Watched(now)
    deadlines.watch(bad)
    deadlines.watch(good)
    await asyncio.sleep(SWEEP_SECONDS * 2.5)
    assert bad.passed == 1 and good.passed == 1
    good.deadline = asyncio.get_running_loop().time()
    await asyncio.sleep(SWEEP_SECONDS * 2.5)
    assert good.passed == 2
    deadlines.unwatch(bad)
    deadlines.unwatch(good)


async def test_unwatched_objects_are_left_alone_and_the_sweep_ends() -> None:
    deadlines = Deadlines()
    obj = Watched(asyncio.get_running_loop().time() + SWEEP_SECONDS)
    deadlines.watch(obj)
    deadlines.unwatch(obj)
    await asyncio.sleep(SWEEP_SECONDS * 2.5)
    assert obj.passed == 0
    assert deadlines._task is not None and deadlines._task.done()
