"""Quotas (docs/protection.md): ``COUNT/day`` or ``COUNT/month`` requests a key may make in a calendar
period in UTC, decided from memory by every worker.

Requests are counted per key and UTC day; a period's use is the sum of its days, so a key moved
from a daily to a monthly quota keeps what it used this month. Each worker decides on what every
worker had written by its last exchange with the store (gateway.rules.quotastore, every
``keys.quota_flush_seconds``) plus what it counted itself since: no request waits for the store.
What other workers admitted since their last write is what it cannot see, so a quota is overrun
by at most the key's traffic on the other workers over two flush intervals; spent, it stays spent
on every worker until the period ends (429 ``OVER_QUOTA`` with ``Retry-After``).
"""

from __future__ import annotations

import functools
import math
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

from gateway import errors

DAY = 86400
_EPOCH = date(1970, 1, 1).toordinal()
_NOTATION = re.compile(r"([1-9][0-9]{0,11})/(day|month)")
FORMAT = "must be COUNT/day or COUNT/month, e.g. 100000/month (calendar periods in UTC)"


@dataclass(frozen=True, slots=True)
class Quota:
    count: int
    period: str  # day | month
    text: str  # as stored, e.g. "100000/month"


def parse_quota(text: object) -> Quota:
    """``COUNT/day`` or ``COUNT/month``; ValueError otherwise. Parsed once: a notation always gives
    the same object."""
    if not isinstance(text, str):
        raise ValueError(FORMAT)
    return _parse_quota(text.strip())


@functools.lru_cache(maxsize=4096)
def _parse_quota(text: str) -> Quota:
    m = _NOTATION.fullmatch(text)
    if m is None:
        raise ValueError(FORMAT)
    return Quota(int(m.group(1)), m.group(2), f"{int(m.group(1))}/{m.group(2)}")


def day_of(t: float) -> int:
    """The UTC day of epoch time ``t``, as days since 1970-01-01."""
    return math.floor(t / DAY)


def period(kind: str, day: int) -> tuple[int, int]:
    """The period of ``kind`` holding ``day``, as ``[first day, first day of the next)``."""
    if kind == "day":
        return day, day + 1
    d = date.fromordinal(day + _EPOCH)
    first = d.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.toordinal() - _EPOCH, following.toordinal() - _EPOCH


def day_start(day: int) -> datetime:
    return datetime.fromtimestamp(day * DAY, timezone.utc)


class Usage:
    """One key's use as this worker knows it: every worker's writes per day (as last read) and its
    own counts not written yet, with the sum over the current period kept ready."""

    __slots__ = ("days", "unsent", "kind", "start", "end", "used")

    def __init__(self) -> None:
        self.days: dict[int, int] = {}  # day -> total written by every worker
        self.unsent: dict[int, int] = {}  # day -> this worker's requests not yet written
        self.kind = ""
        self.start = self.end = 0
        self.used = 0

    def focus(self, kind: str, day: int) -> None:
        """Make ``used`` the sum over the period of ``kind`` holding ``day``."""
        self.kind = kind
        self.start, self.end = period(kind, day)
        self.recount()

    def recount(self) -> None:
        start, end = self.start, self.end
        self.used = sum(n for d, n in self.days.items() if start <= d < end) + \
            sum(n for d, n in self.unsent.items() if start <= d < end)


class Counted(Protocol):
    """What a quota marks on a request it refuses (gateway.request.Request)."""

    limited: str | None


class QuotaKey(Protocol):
    """What a quota reads of a key (gateway.keys.entries.KeyEntry)."""

    id: str
    quota: Quota | None


class Quotas:
    """Every key's use in this worker; ``admit`` decides from memory alone."""

    def __init__(self) -> None:
        self.usage: dict[str, Usage] = {}
        self.dirty: set[str] = set()  # keys with requests not yet written

    def admit(self, req: Counted, entry: QuotaKey, now: float | None = None) -> None:
        """Count a request of ``entry`` (which has a quota), or refuse it with 429 ``OVER_QUOTA``
        (``req.limited`` says so in the access log and metrics)."""
        now = time.time() if now is None else now
        quota = entry.quota
        assert quota is not None  # the caller asks only for keys with one
        day = math.floor(now / DAY)
        u = self.usage.get(entry.id)
        if u is None:
            u = self.usage[entry.id] = Usage()
        if not (u.start <= day < u.end) or u.kind != quota.period:
            u.focus(quota.period, day)
        if u.used >= quota.count:
            req.limited = "quota"
            raise refusal(quota, u.end, now)
        u.used += 1
        u.unsent[day] = u.unsent.get(day, 0) + 1
        self.dirty.add(entry.id)

    def read(self, key_id: str, day: int, total: int) -> None:
        """What the store says every worker wrote for a key and day (totals only grow)."""
        u = self.usage.get(key_id)
        if u is None:
            u = self.usage[key_id] = Usage()
        if total > u.days.get(day, 0):
            u.days[day] = total

    def written(self, key_id: str, day: int, n: int) -> None:
        """``n`` of this worker's requests of a key and day are in the store now."""
        u = self.usage.get(key_id)
        if u is not None:
            left = u.unsent.get(day, 0) - n
            if left > 0:
                u.unsent[day] = left
            else:
                u.unsent.pop(day, None)

    def forget_before(self, day: int) -> None:
        """Drop days before ``day`` (no period holds them any more), and keys with nothing left."""
        for key_id, u in list(self.usage.items()):
            for d in [d for d in u.days if d < day]:
                del u.days[d]
            if not u.days and not u.unsent:
                del self.usage[key_id]


def refusal(quota: Quota, end_day: int, now: float) -> errors.Refusal:
    retry = max(1, math.ceil(end_day * DAY - now))
    resets = day_start(end_day).isoformat().replace("+00:00", "Z")
    return errors.OVER_QUOTA(f"The {quota.text} quota of this API key is spent; it resets at {resets}.",
                             headers=[(b"retry-after", b"%d" % retry)])


def quota_json(text: str | None, used: int | None, now: float | None = None) -> dict[str, object] | None:
    """A key's quota as every admin answer shows it (``used``: as the store last knew it)."""
    if not text:
        return None
    try:
        quota = parse_quota(text)
    except ValueError:
        return None
    _, end = period(quota.period, day_of(time.time() if now is None else now))
    used = int(used or 0)
    return {"limit": quota.text, "used": used, "left": max(0, quota.count - used),
            "resets_at": day_start(end).isoformat()}
