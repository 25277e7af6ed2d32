"""Rate limits decided from memory (SPEC section 10): the ``COUNT/WINDOW`` notation, a sliding
window of 20 buckets per scope in each worker, and the 429 answer and ``RateLimit`` headers.

A scope's count is the sum of the buckets that lie wholly inside the last window: every request
counted is certainly in it, so traffic under the limit is never refused, and at most one
bucket's worth (a twentieth of the window) goes over. Each bucket holds the totals the shared
store last reported (every worker and instance) plus this worker's increments not yet sent;
``gateway.rules.limitstore`` exchanges them every ``limits.sync_ms``. While the store cannot be
reached, each worker enforces its share of the limit on what it counted itself.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field

from gateway import errors

BUCKETS = 20
_NOTATION = re.compile(r"([1-9][0-9]{0,9})/([1-9][0-9]{0,5})?([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_COUNTERS = 100_000
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
    """``COUNT/WINDOW``: ``10/s``, ``600/m``, ``100/5m``, ``50000/d``. ValueError otherwise."""
    m = _NOTATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError("must be COUNT/WINDOW, e.g. 600/m or 100/5m (window in s, m, h or d)")
    window = int(m.group(2) or 1) * _UNITS[m.group(3)]
    return Limit(int(m.group(1)), float(window), text.strip())


class Counter:
    """One scope's sliding window in this worker."""

    __slots__ = ("scope", "limit", "b", "base", "own_base", "synced", "pending", "own", "read", "used")

    def __init__(self, scope: str, limit: Limit) -> None:
        self.scope = scope
        self.limit = limit
        self.b = -1  # the current bucket (index of time / bucket length)
        self.base = 0  # the buckets before it inside the window: everyone's, as far as we know
        self.own_base = 0  # the same, counting only this worker's requests
        self.synced: dict[int, int] = {}  # bucket -> total the store reported (ours included)
        self.pending: dict[int, int] = {}  # bucket -> our requests not yet sent to the store
        self.own: dict[int, int] = {}  # bucket -> every request of ours
        self.read = False  # the store reported on every bucket of the window at least once
        self.used = 0.0

    def roll(self, b: int) -> None:
        oldest = b - BUCKETS + 1
        for d in (self.synced, self.pending, self.own):
            for i in [i for i in d if i < oldest]:
                del d[i]
        self.b = b
        self.rebase()

    def rebase(self) -> None:
        b, synced, pending, own = self.b, self.synced, self.pending, self.own
        self.base = sum(synced.get(i, 0) + pending.get(i, 0) for i in range(b - BUCKETS + 1, b))
        self.own_base = sum(own.get(i, 0) for i in range(b - BUCKETS + 1, b))

    def count(self, shared: bool) -> int:
        b = self.b
        if shared:
            return self.base + self.synced.get(b, 0) + self.pending.get(b, 0)
        return self.own_base + self.own.get(b, 0)

    def add(self) -> None:
        b = self.b
        self.pending[b] = self.pending.get(b, 0) + 1
        self.own[b] = self.own.get(b, 0) + 1

    def seconds_until(self, room: int, now: float, shared: bool) -> float:
        """Seconds until the count has dropped by ``room`` (buckets leaving the window)."""
        g = self.limit.bucket
        dropped = 0
        for i in range(self.b - BUCKETS + 1, self.b + 1):
            if shared:
                dropped += self.synced.get(i, 0) + self.pending.get(i, 0)
            else:
                dropped += self.own.get(i, 0)
            if dropped >= room:
                return max(0.0, (i + BUCKETS) * g - now)
        return self.limit.window


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


class Limiter:
    """Every scope of this worker; ``admit`` decides from memory alone."""

    def __init__(self, workers: int = 1) -> None:
        self.counters: dict[str, Counter] = {}
        self.shared = True  # the store is reachable: counts are everyone's
        self.workers = max(1, workers)  # the share each worker takes while it is not

    def counter(self, scope: str, limit: Limit, now: float) -> Counter:
        c = self.counters.get(scope)
        if c is None or (c.limit is not limit and c.limit != limit):
            if c is None and len(self.counters) >= MAX_COUNTERS:
                self.evict(now, everything_idle=True)
            c = self.counters[scope] = Counter(scope, limit)
        b = int(now / limit.bucket)
        if b != c.b:
            c.roll(b)
        c.used = now
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

    def evict(self, now: float, everything_idle: bool = False) -> None:
        """Forget scopes unused for a whole window (or, when full, the older half)."""
        stale = [s for s, c in self.counters.items() if now - c.used > c.limit.window]
        for scope in stale:
            del self.counters[scope]
        if everything_idle and len(self.counters) >= MAX_COUNTERS:
            for scope in list(self.counters)[: MAX_COUNTERS // 2]:
                del self.counters[scope]


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
    def from_settings(cls, settings) -> "RateLimits":  # type: ignore[no-untyped-def]
        limits = settings.limits

        def limit(text: str | None) -> Limit | None:
            return None if text is None else parse_limit(text)

        return cls(limit(limits.publishable_per_ip), limit(limits.secret_per_key), limit(limits.per_user),
                   limit(limits.keyless_per_ip))

    def scopes(self, entry, claims: dict | None, ip_key: str,  # type: ignore[no-untyped-def]
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
