"""gateway.responses as tables: the headers of the gateway's own answers (errors, CORS, preflights)
and the bytes of an answer's head."""

from __future__ import annotations

import json

import pytest

from gateway import errors
from gateway.responses import cors_headers, error_headers, head_bytes, preflight_headers
from gateway.routes import Cors
from gateway.rules.origins import OriginSet

META = OriginSet.parse(["http://localhost:*"])


def test_an_error_answer_carries_its_code_length_and_extra_headers():
    r = errors.OVER_RATE_LIMIT("Retry after 3 s.", headers=[(b"retry-after", b"3")])
    headers = error_headers(r, [(b"x-extra", b"1")])
    assert headers == [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(r.body)),
                       (b"sb-error-code", b"OVER_REQUEST_RATE_LIMIT"), (b"retry-after", b"3"), (b"x-extra", b"1")]
    assert json.loads(r.body) == {"message": "Too many requests", "hint": "Retry after 3 s."}


@pytest.mark.parametrize(("origin", "cors", "expected"), [
    (None, Cors.ANY, []),
    (b"https://app.example.com", Cors.ANY, [(b"access-control-allow-origin", b"*"),
                                            (b"access-control-expose-headers", b"*")]),
    (b"http://localhost:3000", Cors.META, [(b"access-control-allow-origin", b"http://localhost:3000"),
                                           (b"vary", b"Origin"), (b"access-control-expose-headers", b"*")]),
    (b"http://localhost:3000.evil.com", Cors.META, []),
    (b"https://app.example.com", Cors.META, []),
])
def test_cors_headers_of_an_answer(origin, cors, expected):
    assert cors_headers(origin, cors, META) == expected


@pytest.mark.parametrize(("origin", "requested", "cors", "allow_origin", "allow_headers"), [
    (b"https://a.example", b"apikey, x-custom", Cors.ANY, b"*", b"apikey, x-custom"),
    (b"https://a.example", None, Cors.ANY, b"*", b"authorization, x-client-info, apikey, content-type, "
                                                 b"accept-profile, content-profile, prefer, range, x-upsert, "
                                                 b"x-supabase-api-version"),
    (b"http://localhost:5173", b"apikey", Cors.META, b"http://localhost:5173", b"apikey"),
    (b"https://evil.example", b"apikey", Cors.META, None, None),
])
def test_a_preflight_answer(origin, requested, cors, allow_origin, allow_headers):
    headers = dict(preflight_headers(origin, requested, cors, META))
    assert headers.get(b"access-control-allow-origin") == allow_origin
    assert headers.get(b"access-control-allow-headers") == allow_headers
    if allow_origin is not None:
        assert headers[b"access-control-max-age"] == b"3600" and headers[b"content-length"] == b"0"
        assert b"DELETE" in headers[b"access-control-allow-methods"]


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (200, [(b"content-length", b"0")], b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
    (429, [], b"HTTP/1.1 429 Too Many Requests\r\n\r\n"),
    (504, [(b"a", b"1"), (b"b", b"2")], b"HTTP/1.1 504 Gateway Timeout\r\na: 1\r\nb: 2\r\n\r\n"),
    (599, [], b"HTTP/1.1 599 \r\n\r\n"),  # a status with no name of its own
])
def test_the_head_of_an_answer(status, headers, expected):
    assert head_bytes(status, headers) == expected
