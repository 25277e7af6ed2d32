"""gateway.rules.origins as tables: patterns match whole origins (scheme, host, port), never a prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rules.origins import OriginSet, parse_origin, parse_pattern, referer_origin

PATTERNS = ["https://app.example.com", "https://*.example.org", "http://localhost:*", "http://127.0.0.1:3000",
            "https://bücher.example", "http://[::1]:*"]


@pytest.mark.parametrize(("origin", "allowed"), [
    ("https://app.example.com", True),
    ("https://APP.Example.com", True),
    ("https://app.example.com:443", True),
    ("https://app.example.com:8443", False),
    ("http://app.example.com", False),
    ("https://app.example.com.evil.com", False),
    ("https://evilapp.example.com", False),
    ("https://a.example.org", True),
    ("https://a.b.example.org", True),
    ("https://example.org", False),
    ("https://notexample.org", False),
    ("http://localhost", True),
    ("http://localhost:5173", True),
    ("http://localhost:3000.evil.com", False),
    ("http://localhost.evil.com:3000", False),
    ("https://localhost:3000", False),
    ("http://127.0.0.1:3000", True),
    ("http://127.0.0.1:30000", False),
    ("https://xn--bcher-kva.example", True),
    ("http://[::1]:8080", True),
    ("null", False),
    ("", False),
    ("https://app.example.com/", False),
    ("https://user@app.example.com", False),
    ("file://", False),
])
def test_origins_against_patterns(origin, allowed):
    assert OriginSet.parse(PATTERNS).allows_header(origin.encode("utf-8")) is allowed


@pytest.mark.parametrize("pattern", ["app.example.com", "https://", "https://*", "https://*.*.example.com",
                                     "https://a.*.example.com", "ftp://x.example", "https://app.example.com/path",
                                     "https://app.example.com:99999", "https://app.example.com:x", " https://a.b",
                                     "https://a..b", "https://[zz]"])
def test_what_is_no_pattern(pattern):
    assert parse_pattern(pattern) is None
    with pytest.raises(ValueError):
        OriginSet.parse([pattern])


def test_star_alone_is_any_origin():
    assert OriginSet.parse(["*"]).allows_header(b"https://anything.example")


@pytest.mark.parametrize(("referer", "origin"), [
    ("https://app.example.com/some/page?x=1#y", "https://app.example.com"),
    ("http://localhost:3000/", "http://localhost:3000"),
    ("https://user:pw@app.example.com/", None),
    ("/relative", None),
])
def test_the_origin_of_a_referer(referer, origin):
    assert referer_origin(referer) == (parse_origin(origin) if origin else None)


@given(st.binary(max_size=60))
def test_any_origin_header_is_decided_without_error(value):
    assert OriginSet.parse(PATTERNS).allows_header(value) in (True, False)
