"""Rate limits decided from memory (docs/protection.md): the ``COUNT/WINDOW`` notation, a sliding
window of 20 buckets per scope in each worker, and the 429 answer and ``RateLimit`` headers.

A scope's count is the sum of the buckets that lie wholly inside the last window: every request
counted is certainly in it, so traffic under the limit is never refused, and at most one
bucket's worth (a twentieth of the window) goes over. Each bucket holds the totals the shared
store last reported (every worker and instance) plus this worker's increments not yet sent;
``gateway.rules.limitstore`` exchanges them every ``limits.sync_ms``. While the store cannot be
reached, each worker enforces its share of the limit on what it counted itself.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from gateway import errors
from gateway.rules.window import BUCKETS, Counter, Expiry, ends

_NOTATION = re.compile(r"([1-9][0-9]{0,9})/([1-9][0-9]{0,5})?([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_COUNTERS = 100_000  # scopes one worker holds; past it, the ones whose windows end soonest go
MAX_BATCH = 10_000  # counters one exchange with the store takes; the rest wait for the next
_PLAIN_SUB = re.compile(r"[A-Za-z0-9_.@:|-]{1,128}")


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window: float  # seconds
    text: str  # as written, e.g. "600/m"
    bucket: float = field(init=False, compare=False, repr=False)  # seconds a bucket spans
    policy: bytes = field(init=False, compare=False, repr=False)  # ``q=..;w=..`` of RateLimit-Policy

    def __post_init__(self) -> None:
        object.__setattr__(self, "bucket", self.window / BUCKETS)
        object.__setattr__(self, "policy", b";q=%d;w=%d" % (self.count, int(self.window)))


def parse_limit(text: object) -> Limit:
    """``COUNT/WINDOW``: ``10/s``, ``600/m``, ``100/5m``, ``50000/d``. ValueError otherwise.
    Parsed once: a notation always gives the same object (the settings that checked it, the
    keys that carry it)."""
    if not isinstance(text, str):
        raise ValueError(_FORMAT)
    return _parse_limit(text.strip())


_FORMAT = "must be COUNT/WINDOW, e.g. 600/m or 100/5m (window in s, m, h or d)"


@functools.lru_cache(maxsize=4096)
def _parse_limit(text: str) -> Limit:
    m = _NOTATION.fullmatch(text)
    if m is None:
        raise ValueError(_FORMAT)
    window = int(m.group(2) or 1) * _UNITS[m.group(3)]
    return Limit(int(m.group(1)), float(window), text)


@dataclass(slots=True)
class Outcome:
    """What limits applied: ``(name, limit, remaining, reset)`` each; ``refused`` names the one
    reached (the request was not counted), ``retry`` the seconds until there is room."""

    applied: list[tuple[str, Limit, int, float]]
    refused: str | None = None
    retry: int = 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        return rate_limit_headers(self.applied)

    def refusal(self) -> errors.Refusal:
        name, limit, _, _ = self.applied[0]
        return errors.OVER_RATE_LIMIT(f"Over the {name} limit of {limit.text}. Retry after {self.retry} s.",
                                      headers=[(b"retry-after", b"%d" % self.retry), *self.headers()])


_QUOTED = {name: b'"%s"' % name.encode() for name in ("per_key", "per_ip", "per_user", "keyless_per_ip")}


def rate_limit_headers(applied: list[tuple[str, Limit, int, float]]) -> list[tuple[bytes, bytes]]:
    """The IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers)."""
    policy = b", ".join([_QUOTED[name] + limit.policy for name, limit, _, _ in applied])
    state = b", ".join([b"%s;r=%d;t=%d" % (_QUOTED[name], remaining if remaining > 0 else 0, math.ceil(reset))
                        for name, _, remaining, reset in applied])
    return [(b"ratelimit-policy", policy), (b"ratelimit", state)]


Push = tuple[str, int, int, float]  # scope, bucket, increment, expires (epoch seconds)
Range = tuple[str, int, int]  # scope, first and last bucket to read
Total = tuple[str, int, int]  # scope, bucket, everyone's count


@dataclass(slots=True)
class Batch:
    """What one exchange sends and reads (rows for the store), and for each counter taken what
    it sent and up to which bucket it reads, to settle it afterwards."""

    pushes: list[Push] = field(default_factory=list)
    reads: list[Range] = field(default_factory=list)
    taken: list[tuple[Counter, list[tuple[int, int]], int]] = field(default_factory=list)


class Limiter:
    """Every scope of this worker; ``admit`` decides from memory alone.

    Counters touched since the last exchange are *dirty*: only they are exchanged with the store
    (``outgoing``, then ``settle`` or ``unreachable``), so an exchange costs what changed, and an
    idle counter nothing. A counter whose window has emptied is dropped within a sync interval
    (``sweep``, driven by a time-ordered index, never a scan); at ``MAX_COUNTERS`` the ones whose
    windows end soonest make room. See docs/protection.md for why idle views stay within bounds.
    """

    def __init__(self, workers: int = 1, max_counters: int = MAX_COUNTERS) -> None:
        self.max_counters = max_counters
        self.counters: dict[str, Counter] = {}
        self.dirty: dict[str, Counter] = {}  # touched since the last exchange took them
        self.expiry = Expiry()
        self.shared = True  # the store is reachable: counts are everyone's
        self.workers = max(1, workers)  # the share each worker takes while it is not

    def counter(self, scope: str, limit: Limit, now: float) -> Counter:
        c = self.counters.get(scope)
        if c is None or c.limit is not limit:
            c = self._renew(scope, limit, c, now)
        b = int(now / limit.bucket)
        if b > c.b:
            previous = c.b
            c.roll(b)
            self.expiry.file(c, previous)
        self.dirty[scope] = c
        return c

    def _renew(self, scope: str, limit: Limit, c: Counter | None, now: float) -> Counter:
        """A new scope, or a new limit for a known one (its counts stay if its buckets do)."""
        if c is not None and c.limit.bucket == limit.bucket:
            c.limit = limit
            return c
        if c is None and len(self.counters) >= self.max_counters:
            self.make_room(now)
        c = self.counters[scope] = Counter(scope, limit)
        return c

    def admit(self, scopes: list[tuple[str, str, Limit]], now: float | None = None) -> Outcome:
        """``scopes`` is ``[(name, scope, limit)]``: the first limit reached refuses (and nothing
        is counted), else the request counts in each; the outcome says what is left."""
        now = time.time() if now is None else now
        shared = self.shared
        counters = []
        for name, scope, limit in scopes:
            c = self.counter(scope, limit, now)
            allowed = limit.count if shared else max(1, math.ceil(limit.count / self.workers))
            used = c.count(shared)
            if used >= allowed:
                retry = max(1, math.ceil(c.seconds_until(used - allowed + 1, now, shared)))
                return Outcome([(name, limit, 0, retry)], name, retry)
            counters.append((name, c, allowed - used - 1))
        applied = []
        for name, c, remaining in counters:
            c.add()
            # Reset: when there is room again, or when the oldest bucket leaves the window.
            reset = c.seconds_until(1, now, shared) if remaining <= 0 else (c.b + 1) * c.limit.bucket - now
            applied.append((name, c.limit, remaining, reset))
        return Outcome(applied)

    # --- memory: counters with nothing left in their window go --------------------------------

    def sweep(self, now: float) -> int:
        """Drop the counters whose last bucket has left the window; how many went."""
        dropped = 0
        for end, c in self.expiry.due(now):
            if self.counters.get(c.scope) is c and ends(c) == end:  # not moved on since it was filed
                self._drop(c)
                dropped += 1
        return dropped

    def make_room(self, now: float) -> None:
        """At the cap: the emptied counters go, then the ones whose windows end soonest (oldest
        first). What such a counter had not yet sent is lost: that takes more than MAX_COUNTERS
        new scopes within one sync interval."""
        self.sweep(now)
        while len(self.counters) >= self.max_counters and (filed := self.expiry.earliest()) is not None:
            end, c = filed
            if self.counters.get(c.scope) is c and ends(c) == end:
                self._drop(c)

    def _drop(self, c: Counter) -> None:
        del self.counters[c.scope]
        if self.dirty.get(c.scope) is c:
            del self.dirty[c.scope]

    # --- the exchange with the store: what to send, and what came back ---------------------------

    def outgoing(self, most: int = MAX_BATCH) -> Batch:
        """Take up to ``most`` dirty counters (oldest first): the rows to push and to read."""
        dirty = self.dirty
        if len(dirty) <= most:
            taken, self.dirty = list(dirty.values()), {}
        else:
            rest = iter(dirty.values())
            taken = list(islice(rest, most))
            self.dirty = {c.scope: c for c in rest}
        batch = Batch()
        for c in taken:
            pushed, lo, hi = c.outgoing()
            g = c.limit.bucket
            batch.pushes.extend((c.scope, bucket, n, (bucket + BUCKETS + 1) * g) for bucket, n in pushed)
            batch.reads.append((c.scope, lo, hi))
            batch.taken.append((c, pushed, hi))
        return batch

    def settle(self, batch: Batch, totals: list[Total], workers: int) -> None:
        """The store took the batch and answered ``totals``: fold them into the counters taken."""
        by_scope: dict[str, list[tuple[int, int]]] = {}
        for scope, bucket, n in totals:
            by_scope.setdefault(scope, []).append((bucket, n))
        for c, pushed, hi in batch.taken:
            c.settle(pushed, by_scope.get(c.scope) or [], hi)
        self.shared = True
        self.workers = max(1, workers)

    def unreachable(self, batch: Batch) -> None:
        """The batch did not go through: its counters are dirty again (unless dropped meanwhile)
        and each worker enforces its share alone."""
        for c, _, _ in batch.taken:
            if self.counters.get(c.scope) is c:
                self.dirty.setdefault(c.scope, c)
        self.shared = False


class Keyed(Protocol):
    """What the limits read of a key (gateway.keys.entries.KeyEntry, which imports this)."""

    id: str
    per_key: Limit | None
    per_ip: Limit | None

    @property
    def is_secret(self) -> bool: ...


class RateLimits:
    """Which limits a request counts against: the key's own, else the configured defaults
    (``limits.publishable_per_ip`` for publishable and legacy anon keys, ``limits.secret_per_key``
    for secret ones), ``limits.per_user`` for a verified user JWT, by ``sub``, and for a request
    with neither key nor user JWT (where a key is optional) ``limits.keyless_per_ip``."""

    def __init__(self, publishable_per_ip: Limit | None = None, secret_per_key: Limit | None = None,
                 per_user: Limit | None = None, keyless_per_ip: Limit | None = None) -> None:
        self.publishable_per_ip = publishable_per_ip
        self.secret_per_key = secret_per_key
        self.per_user = per_user
        self.keyless_per_ip = keyless_per_ip

    @classmethod
    def from_settings(cls, settings: Any) -> "RateLimits":  # gateway.config.Settings (which imports this)
        limits = settings.limits

        def limit(text: str | None) -> Limit | None:
            return None if text is None else parse_limit(text)

        return cls(limit(limits.publishable_per_ip), limit(limits.secret_per_key), limit(limits.per_user),
                   limit(limits.keyless_per_ip))

    def scopes(self, entry: Keyed | None, claims: dict[str, Any] | None, ip_key: str,
               keyless: bool = True) -> list[tuple[str, str, Limit]]:
        """``keyless``: a request with neither key nor user JWT counts by address (the dashboard's,
        behind its own password, does not)."""
        out: list[tuple[str, str, Limit]] = []
        if entry is not None:
            secret = entry.is_secret
            per_key = entry.per_key or (self.secret_per_key if secret else None)
            if per_key is not None:
                out.append(("per_key", f"k:{int(per_key.window)}:{entry.id}", per_key))
            per_ip = entry.per_ip or (None if secret else self.publishable_per_ip)
            if per_ip is not None:
                out.append(("per_ip", f"i:{int(per_ip.window)}:{entry.id}:{ip_key}", per_ip))
        if claims is not None:
            sub = claims.get("sub")
            if self.per_user is not None and isinstance(sub, str) and sub:
                if _PLAIN_SUB.fullmatch(sub) is None:  # the scope is a key in the store: plain text only
                    sub = hashlib.sha256(sub.encode("utf-8", "replace")).hexdigest()
                out.append(("per_user", f"u:{int(self.per_user.window)}:{sub}", self.per_user))
        elif entry is None and keyless and self.keyless_per_ip is not None:  # neither key nor user: by address
            out.append(("keyless_per_ip", f"n:{int(self.keyless_per_ip.window)}:{ip_key}", self.keyless_per_ip))
        return out
