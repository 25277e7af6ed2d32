"""Where one request goes, attempt by attempt, for both ways of serving: its route's upstream, or
for a read with replicas the least busy target and one other; what each attempt's end says about
its target (the replica set's accounting); and when another attempt may be made: only before a
byte of the answer reached the client, and only when the request can be sent again."""

from __future__ import annotations

from gateway.observe import metrics
from gateway.upstream.errors import UpstreamClosedIdle, UpstreamConnectError, UpstreamError
from gateway.upstream.services import RETRY_STATUS, ReplicaSet, Upstream


class Attempts:
    __slots__ = ("targets", "replicas", "index", "replayable", "fresh", "raced")

    def __init__(self, upstream: Upstream, replicas: ReplicaSet | None, replayable: bool = True) -> None:
        self.replicas = replicas
        self.targets = replicas.pick() if replicas is not None else [upstream]
        self.index = 0
        self.replayable = replayable  # the body can be sent again (none, or bytes in hand)
        self.fresh = False  # the next attempt needs a new connection, not a kept-alive one
        self.raced = False  # a kept-alive connection already turned out closed once

    @property
    def target(self) -> Upstream:
        return self.targets[self.index]

    def again(self, e: UpstreamError) -> bool:
        """After ``e``, before any answer: is there another attempt (``target`` now names it)?
        A connection that could not be made: the next target, if any (nothing was sent). A
        kept-alive connection the upstream had closed: once more on a fresh connection to the
        same target, if the body can be sent again. Anything else is the target's failure."""
        if isinstance(e, UpstreamClosedIdle) and not self.raced and self.replayable:
            self.raced = self.fresh = True
            return True
        self._failed()
        if isinstance(e, UpstreamConnectError):
            metrics.UPSTREAM_CONNECT_ERRORS.labels(self.target.name).inc()
            return self._next()
        if isinstance(e, UpstreamClosedIdle) and self.replayable:
            return self._next()
        return False

    def again_after(self, status: int) -> bool:
        """An answer's head came: should it be dropped for another target's (a 502 or 503 from
        one of several, the request able to go again)?"""
        if status in RETRY_STATUS and self.replayable and self.index < len(self.targets) - 1:
            self._failed()
            return self._next()
        return False

    def answered(self, status: int) -> None:
        """The attempt's answer reached the client whole."""
        if self.replicas is not None:
            (self.replicas.failed if status in RETRY_STATUS else self.replicas.served)(self.target)

    def broke_off(self) -> None:
        """The answer had begun when the upstream broke it off: the target did answer."""
        if self.replicas is not None:
            self.replicas.served(self.target)

    def abandoned(self) -> None:
        """The client left before the answer was complete."""
        if self.replicas is not None:
            self.replicas.abandoned(self.target)

    def _failed(self) -> None:
        if self.replicas is not None:
            self.replicas.failed(self.target)

    def _next(self) -> bool:
        if self.index < len(self.targets) - 1:
            metrics.UPSTREAM_RETRIES.labels(self.target.name).inc()  # sent on after this one failed
            self.index += 1
            self.fresh = False
            return True
        return False
