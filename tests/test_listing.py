"""The ``gateway keys list`` table (gateway.listing) as pure tests: it fits 100 columns whatever
the keys hold; the CLI's own test runs it through the console script."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway import listing
from gateway.keys import apikeys

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat()


def key(**fields) -> dict:
    """A key as ``key_json`` shows it."""
    base = {"id": "0b8e6a0e-3f0c-4c0e-9a55-1c1d2e3f4a5b", "type": "secret", "name": "backend",
            "prefix": "sb_secret_AbCdEf", "api_key": apikeys.masked("secret"), "last_used_at": None,
            "expires_at": None, "expired": False, "limits": {"per_key": None, "per_ip": None},
            "allowed_origins": [], "allowed_ips": [], "allowed_services": []}
    return {**base, **fields}


PUBLISHABLE = "sb_publishable_AbCdEfGhIjKlMnOpQrStUv_12345678"


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (0.9, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (86399, "23h"), (86400, "1d"),
    (364 * 86400, "364d"), (365 * 86400, "1y"), (40 * 365 * 86400, "40y"), (-5, "0s"),
])
def test_span(seconds, shown):
    assert listing.span(seconds) == shown


@pytest.mark.parametrize(("when", "shown"), [
    (None, "never"), (at(seconds=-30), "30s ago"), (at(hours=-5), "5h ago"), (at(days=-364), "364d ago"),
    (at(seconds=3), "0s ago"),  # a clock a little ahead
])
def test_ago(when, shown):
    assert listing.ago(when, NOW) == shown


@pytest.mark.parametrize(("when", "expired", "shown"), [
    (None, False, "never"), (at(hours=2), False, "in 2h"), (at(days=-1), True, "expired"),
    (at(days=364), False, "in 364d"), (at(days=3650), False, "in 10y"),
])
def test_expires(when, expired, shown):
    assert listing.expires(when, expired, NOW) == shown


@pytest.mark.parametrize(("fields", "shown"), [
    ({}, ""),
    ({"limits": {"per_key": "1000/m", "per_ip": None}}, "per_key=1000/m"),
    ({"limits": {"per_key": "1000/m", "per_ip": "60/m"}, "allowed_services": ["rest", "storage"]},
     "per_key=1000/m per_ip=60/m; services rest, storage"),
    ({"allowed_origins": ["https://a.example.com", "http://localhost:*"], "allowed_ips": ["10.0.0.0/8"]},
     "origins https://a.example.com, http://localhost:*; ips 10.0.0.0/8"),
])
def test_rules(fields, shown):
    assert listing.rules(key(**fields)) == shown


@pytest.mark.parametrize(("text", "width", "shown"), [
    ("abc", 3, "abc"), ("abcd", 3, "ab…"), ("", 5, ""),
])
def test_cut(text, width, shown):
    assert listing.cut(text, width) == shown


def test_the_table_fits_100_columns_whatever_the_keys_hold():
    widest = key(name="n" * 64, prefix="sb_publishable_AbCdEf", type="publishable", api_key=PUBLISHABLE,
                 last_used_at=at(days=-364), expires_at=at(days=364),
                 limits={"per_key": "100000/d", "per_ip": "100000/d"},
                 allowed_origins=[f"https://app{i}.example.com" for i in range(20)],
                 allowed_ips=["10.0.0.0/8"] * 20, allowed_services=["rest", "storage", "functions"])
    expired = key(id="7d1f0000-0000-4000-8000-000000000000", expires_at=at(days=-3), expired=True,
                  last_used_at=at(minutes=-5))
    lines = listing.table([widest, expired], NOW)
    assert max(len(line) for line in lines) == 100  # the widest row fills it exactly
    assert lines[0].split() == ["ID", "NAME", "PREFIX", "LAST", "USE", "EXPIRES"]
    assert lines[1].split() == [widest["id"], "n" * 19 + "…", "sb_publishable_AbCdEf", "364d", "ago", "in", "364d"]
    assert len(lines[1]) == 100  # the widest row, uncut
    assert lines[2].split() == [expired["id"], "backend", "sb_secret_AbCdEf", "5m", "ago", "expired"]
    # below: the publishable key in full, whole; the rules, cut at the width
    assert lines[3:6] == ["", "publishable keys, in full (public by design):", f"  {'n' * 19}…  {PUBLISHABLE}"]
    assert lines[6:8] == ["", "limits, quotas and restrictions:"]
    assert lines[8].startswith(f"  {'n' * 19}…  per_key=100000/d per_ip=100000/d; origins https://app0.example.com")
    assert len(lines[8]) == 100 and lines[8].endswith("…")
    assert len(lines) == 9


def test_a_table_of_plain_keys_has_no_sections_below():
    old_publishable = key(type="publishable", prefix="sb_publishable_AbCdEf", api_key=apikeys.masked("publishable"))
    lines = listing.table([key(), old_publishable], NOW)  # masked: made before publishable keys were kept
    assert len(lines) == 3 and all(len(line) <= 100 for line in lines)
    assert listing.table([], NOW) == ["ID                                    NAME                  PREFIX"
                                      "                 LAST USE  EXPIRES"]
