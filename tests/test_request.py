"""gateway.request as table tests and properties: one pass over a request head, and the apikey
query parameter taken out of a query string. They hold for arbitrary bytes."""

from __future__ import annotations

from urllib.parse import quote, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.request import MAX_HEADER_BYTES, MAX_HEADERS, RequestInfo, split_query
from tests.factories import BROWSERS


def test_what_one_pass_over_the_headers_finds():
    info = RequestInfo([
        (b"host", b"api.example.com"), (b"apikey", b" sb_publishable_x "), (b"apikey", b""),
        (b"authorization", b"Bearer t "), (b"user-agent", BROWSERS["chrome"].encode()),
        (b"origin", b"https://app.example.com"), (b"referer", b"https://app.example.com/page"),
        (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
        (b"connection", b"keep-alive, X-Hop"), (b"connection", b"x-other"),
        (b"access-control-request-method", b"POST"), (b"sec-websocket-protocol", b"a, b"),
        (b"sec-websocket-protocol", b"c"),
    ])
    assert info.apikeys == ["sb_publishable_x", ""]
    assert (info.authorization, info.authorizations) == ("Bearer t", 1)
    assert info.browser and not info.sec_fetch
    assert info.origin == b"https://app.example.com" and info.referer == b"https://app.example.com/page"
    assert info.xff == b"1.1.1.1, 2.2.2.2"
    assert info.connection == {b"keep-alive", b"x-hop", b"x-other"}
    assert info.preflight and info.host == b"api.example.com"
    assert info.ws_protocols == ["a", "b", "c"]
    assert not info.too_large


def test_a_sec_fetch_header_marks_a_browser():
    assert RequestInfo([(b"sec-fetch-site", b"cross-site"), (b"user-agent", b"curl/8")]).browser
    assert not RequestInfo([(b"sec-fetch-mode", b"cors"), (b"user-agent", b"node")]).browser


def test_too_many_or_too_large_headers():
    assert RequestInfo([(b"x-h", b"v")] * (MAX_HEADERS + 1)).too_large
    assert not RequestInfo([(b"x-h", b"v")] * MAX_HEADERS).too_large
    assert RequestInfo([(b"x-big", b"v" * MAX_HEADER_BYTES)]).too_large


@pytest.mark.parametrize(("query", "keys", "kept"), [
    (b"", [], b""),
    (b"select=*", [], b"select=*"),
    (b"apikey=k", ["k"], b""),
    (b"a=1&apikey=k&b=2", ["k"], b"a=1&b=2"),
    (b"apikey=k1&apikey=k2", ["k1", "k2"], b""),
    (b"%61pikey=k", ["k"], b""),  # what PostgREST would decode as apikey is taken out too
    (b"apikey=a%2Bb+c", ["a+b c"], b""),
    (b"apikeyx=1&x_apikey=2&APIKEY=3", [], b"apikeyx=1&x_apikey=2&APIKEY=3"),
    (b"b=%2F%20+c&flag&empty=", [], b"b=%2F%20+c&flag&empty="),
    (b"apikey", [""], b""),
])
def test_split_query(query, keys, kept):
    assert split_query(query) == (keys, kept)


headers = st.lists(st.tuples(
    st.one_of(st.sampled_from([b"apikey", b"authorization", b"user-agent", b"origin", b"referer", b"host",
                               b"x-forwarded-for", b"connection", b"sec-fetch-mode", b"sec-fetch-site",
                               b"sec-websocket-protocol", b"access-control-request-method"]),
              st.binary(max_size=20)),
    st.binary(max_size=60)), max_size=30)


@settings(max_examples=500)
@given(headers)
def test_any_header_list_is_read_without_error(pairs):
    info = RequestInfo(pairs)
    assert info.apikeys == [v.decode("latin-1").strip() for n, v in pairs if n == b"apikey"]
    assert info.authorizations == sum(1 for n, _ in pairs if n == b"authorization")
    assert info.count == len(pairs)
    assert isinstance(info.browser, bool)
    if any(n in (b"sec-fetch-site",) for n, _ in pairs):
        assert info.browser


@settings(max_examples=1000)
@given(st.binary(max_size=120))
def test_split_query_takes_out_exactly_the_apikey_parameters(query):
    def name(part: bytes) -> str:
        return unquote_plus(part.partition(b"=")[0].decode("latin-1"))

    keys, kept = split_query(query)
    parts = query.split(b"&")
    assert keys == [unquote_plus(p.partition(b"=")[2].decode("latin-1")).strip() for p in parts if name(p) == "apikey"]
    # The other parameters stay byte for byte, in order.
    assert kept == (b"&".join(p for p in parts if name(p) != "apikey") if keys else query)


@given(st.text(max_size=30), st.text(max_size=30))
def test_an_encoded_key_comes_back_as_sent(key, other):
    query = f"x={quote(other)}&apikey={quote(key)}".encode()
    keys, kept = split_query(query)
    assert keys == [key.strip()]
    assert kept == f"x={quote(other)}".encode()
