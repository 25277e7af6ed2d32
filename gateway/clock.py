"""Time on the request path, at no cost per request: deadlines checked by one sweep a worker,
instead of a timer made and cancelled per request; work batched on one timer (``Batched``); and
background tasks stopped (``cancelled``).

An object with a ``deadline`` (``time.monotonic()`` seconds, or None) and a ``deadline_passed()``
method is watched while it lives; every ``SWEEP_SECONDS`` the deadlines that have passed are
acted on, so a timeout fires up to that much late.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

SWEEP_SECONDS = 0.25


class Deadlines:
    def __init__(self) -> None:
        self.watched: set[Any] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, obj: Any) -> None:
        self.watched.add(obj)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep(), name="deadlines")

    def unwatch(self, obj: Any) -> None:
        self.watched.discard(obj)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self.watched:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            for obj in [o for o in self.watched if o.deadline is not None and o.deadline <= now]:
                obj.deadline = None
                with contextlib.suppress(Exception):  # one object's failure never stops the sweep
                    obj.deadline_passed()


DEADLINES = Deadlines()


class Batched:
    """Work gathered in memory and done at most every ``FLUSH_SECONDS`` (``flush``), never per
    request: the first ``schedule`` after a flush sets one timer. Without a running loop (a
    command, a test), ``flush`` runs at once."""

    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.timer: asyncio.TimerHandle | None = None

    def schedule(self) -> None:
        if self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:
                self.flush()

    def unschedule(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def flush(self) -> None:
        raise NotImplementedError


async def cancelled(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel background tasks and wait until each has ended (one that fails on its way out has
    logged what it had to)."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
