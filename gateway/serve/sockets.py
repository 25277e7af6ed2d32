"""The open relayed connections of one worker that a key admitted, judged again after every
change of the key ring (SPEC 11): a key deleted, edited (its expiry, its restrictions), the table
reloaded, the legacy switch turned. Each connection's guard judges itself from memory (a few
dict lookups) and, if its key is refused now, closes the connection.

A burst of changes costs one pass: a change less than ``spacing`` after the last pass is judged
by one pass at the end of that interval, so a socket is closed at most ``spacing`` after the
change reached this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger("gateway")

SPACING = 0.1  # seconds between two passes over every open socket, at least


class Judged(Protocol):
    def rejudge(self) -> None:
        """Judge the connection's key again; close the connection if it is refused now."""

    def close(self) -> None:
        """The connection ended: let go of what it holds (tasks, references)."""


class OpenSockets:
    def __init__(self, spacing: float = SPACING) -> None:
        self.spacing = spacing
        self._open: set[Judged] = set()
        self._last = -spacing  # time.monotonic() of the last pass
        self._later: asyncio.TimerHandle | None = None
        self.passes = 0

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def holding(self, socket: Judged | None) -> Iterator[None]:
        """Judge ``socket`` after every change while the block runs; closed when it ends."""
        if socket is None:
            yield
            return
        self._open.add(socket)
        try:
            yield
        finally:
            self._open.discard(socket)
            socket.close()

    def changed(self) -> None:
        """A key-ring change (``KeyRing.on_change``): every socket judged again, now or at the end
        of the current interval."""
        if self._later is not None or not self._open:
            return
        wait = self._last + self.spacing - time.monotonic()
        if wait <= 0:
            self.rejudge()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (a test calling in): no later to wait for
            self.rejudge()
            return
        self._later = loop.call_later(wait, self._due)

    def _due(self) -> None:
        self._later = None
        self.rejudge()

    def rejudge(self) -> None:
        self._last = time.monotonic()
        self.passes += 1
        for socket in list(self._open):
            try:
                socket.rejudge()
            except Exception as e:  # one broken socket must not spare the others
                log.error("judging an open socket again failed: %s", type(e).__name__)

    def close(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
