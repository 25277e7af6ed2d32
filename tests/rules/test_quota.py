"""Quotas (docs/protection.md): the notation, calendar periods in UTC (month ends, leap days, the
boundary itself), and the decision from memory with every worker's counts. Pure tables."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from gateway import errors
from gateway.rules.quota import Quotas, day_of, parse_quota, period, quota_json


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def day(text: str) -> int:
    return day_of(t(text + "T00:00:00"))


@pytest.mark.parametrize(("text", "count", "kind", "stored"), [
    ("100000/month", 100000, "month", "100000/month"), ("1/day", 1, "day", "1/day"),
    (" 5000/day ", 5000, "day", "5000/day"), ("999999999999/month", 999999999999, "month", "999999999999/month"),
])
def test_notation(text, count, kind, stored):
    q = parse_quota(text)
    assert (q.count, q.period, q.text) == (count, kind, stored)


@pytest.mark.parametrize("text", [
    "", "0/day", "-1/day", "01/day", "10/d", "10/m", "10/week", "10/year", "10/Day", "10/DAY", "10 /day", "10/ day",
    "10/month/x", "1e3/day", "1000000000000/day", "day", "/day", 10, None, ["10/day"],
])
def test_bad_notation(text):
    with pytest.raises(ValueError):
        parse_quota(text)


@pytest.mark.parametrize(("kind", "at", "start", "end"), [
    ("day", "2025-03-14T12:00:00", "2025-03-14", "2025-03-15"),
    ("day", "2025-03-14T00:00:00", "2025-03-14", "2025-03-15"),  # the boundary belongs to the new day
    ("day", "2025-03-14T23:59:59.999", "2025-03-14", "2025-03-15"),
    ("day", "2025-12-31T23:59:59", "2025-12-31", "2026-01-01"),
    ("day", "2024-02-29T10:00:00", "2024-02-29", "2024-03-01"),  # a leap day is a day
    ("day", "1969-12-31T23:00:00", "1969-12-31", "1970-01-01"),  # before the epoch: floor, not truncation
    ("month", "2025-03-14T12:00:00", "2025-03-01", "2025-04-01"),
    ("month", "2025-03-01T00:00:00", "2025-03-01", "2025-04-01"),
    ("month", "2025-02-28T23:59:59.999", "2025-02-01", "2025-03-01"),
    ("month", "2025-03-31T23:59:59", "2025-03-01", "2025-04-01"),
    ("month", "2025-04-30T12:00:00", "2025-04-01", "2025-05-01"),  # 30 days
    ("month", "2024-02-29T23:59:59", "2024-02-01", "2024-03-01"),  # 29 days in a leap year
    ("month", "2024-01-31T12:00:00", "2024-01-01", "2024-02-01"),  # +32 days from the 1st is never two months
    ("month", "2100-02-28T12:00:00", "2100-02-01", "2100-03-01"),  # 2100 is no leap year
    ("month", "2000-02-29T12:00:00", "2000-02-01", "2000-03-01"),  # 2000 is
    ("month", "2025-12-31T23:59:59", "2025-12-01", "2026-01-01"),  # the year ends
    ("month", "2026-01-01T00:00:00", "2026-01-01", "2026-02-01"),
])
def test_periods_in_utc(kind, at, start, end):
    assert period(kind, day_of(t(at))) == (day(start), day(end))


def entry(quota: str, key_id: str = "k1") -> SimpleNamespace:
    return SimpleNamespace(id=key_id, quota=parse_quota(quota))


def admit(q: Quotas, e, now: float) -> int | None:
    """None if admitted, else the Retry-After of the refusal."""
    x = SimpleNamespace(limited=None)
    try:
        q.admit(x, e, now)
    except errors.Refusal as r:
        assert (r.status, r.code, x.limited) == (429, "OVER_QUOTA", "quota")
        return int(dict(r.headers)[b"retry-after"])
    return None


def test_a_daily_quota_is_spent_then_resets_at_midnight_utc():
    q, e = Quotas(), entry("3/day")
    now = t("2025-03-14T23:59:00")
    assert [admit(q, e, now) for _ in range(3)] == [None, None, None]
    assert admit(q, e, now) == 60  # seconds to the next period
    assert admit(q, e, t("2025-03-14T23:59:59.5")) == 1  # never 0
    assert admit(q, e, t("2025-03-15T00:00:00")) is None  # the boundary is the new day


def test_a_monthly_quota_spans_the_month_end_and_the_leap_day():
    q, e = Quotas(), entry("2/month")
    assert admit(q, e, t("2024-02-01T00:00:00")) is None
    assert admit(q, e, t("2024-02-29T23:00:00")) is None
    assert admit(q, e, t("2024-02-29T23:59:00")) == 60
    assert admit(q, e, t("2024-03-01T00:00:01")) is None


def test_a_refusal_says_when_it_resets_and_echoes_no_key():
    q, e = Quotas(), entry("1/month")
    admit(q, e, t("2025-01-10T00:00:00"))
    x = SimpleNamespace(limited=None)
    with pytest.raises(errors.Refusal) as r:
        q.admit(x, e, t("2025-01-31T23:00:00"))
    assert r.value.hint and "2025-02-01T00:00:00Z" in r.value.hint and "1/month" in r.value.hint
    assert dict(r.value.headers)[b"retry-after"] == b"3600"


def test_every_workers_counts_count():
    q, e = Quotas(), entry("10/day")
    now = t("2025-03-14T12:00:00")
    today = day_of(now)
    admit(q, e, now)
    q.read("k1", today, 8)  # the store: 8 written by every worker, this one's included
    q.read("k1", today, 7)  # an older read arriving late changes nothing (totals only grow)
    q.written("k1", today, 1)  # this worker's one request was among the 8
    q.usage["k1"].recount()
    assert [admit(q, e, now) for _ in range(3)] == [None, None, 43200]
    assert q.usage["k1"].unsent == {today: 2}
    q.read("k1", today - 1, 500)  # yesterday does not count today
    q.usage["k1"].recount()
    assert admit(q, e, now) == 43200


def test_moving_from_a_daily_to_a_monthly_quota_keeps_the_month():
    q = Quotas()
    now = t("2025-03-14T12:00:00")
    q.read("k1", day_of(now) - 3, 50)
    q.read("k1", day_of(now), 5)
    assert admit(q, entry("6/day"), now) is None  # 5 today
    assert admit(q, entry("6/day"), now) is not None
    assert admit(q, entry("57/month"), now) is None  # 50 + 6 this month
    assert admit(q, entry("57/month"), now) is not None
    assert admit(q, entry("1000/month"), now) is None  # raised: open again at once


def test_keys_are_counted_apart_and_old_days_forgotten():
    q = Quotas()
    now = t("2025-03-14T12:00:00")
    admit(q, entry("1/day", "a"), now)
    assert admit(q, entry("1/day", "b"), now) is None
    assert q.dirty == {"a", "b"}
    q.read("c", day_of(now) - 100, 5)
    q.forget_before(day_of(now) - 40)
    assert "c" not in q.usage and "a" in q.usage


def test_quota_json():
    now = t("2025-03-14T12:00:00")
    assert quota_json(None, None, now) is None
    assert quota_json("100/month", 30, now) == {"limit": "100/month", "used": 30, "left": 70,
                                                 "resets_at": "2025-04-01T00:00:00+00:00"}
    assert quota_json("10/day", 12, now)["left"] == 0  # overrun by other workers: never negative
    assert quota_json("10/day", None, now)["used"] == 0
    assert quota_json("garbage", 1, now) is None
