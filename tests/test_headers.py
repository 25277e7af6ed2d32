"""gateway.headers.upstream_headers as a pure function: what an upstream gets for what a client sent."""

from __future__ import annotations

import pytest

from gateway import routes
from gateway.auth import NO_KEY, Grant
from gateway.headers import PROTECTED, upstream_headers
from gateway.keys.entries import KeyEntry
from gateway.request import RequestInfo

ENTRY = KeyEntry("00000000-0000-0000-0000-000000000001", "publishable", "sb_publishable_abcdef", "anon",
                 {"role": "anon"})
MINTED = Grant(ENTRY, "minted.jwt", "Bearer minted.jwt", "anon")
USER = Grant(ENTRY, "minted.jwt", None, "authenticated")


def headers_for(sent, route=routes.REST, grant=MINTED, ws=False):
    out = upstream_headers(sent, RequestInfo(sent), route, grant, b"rest:3000", b"10.0.0.9", False, ws)
    return out


def values(out, name):
    return [v for n, v in out if n == name]


def test_the_minted_jwt_replaces_the_key_and_authorization():
    out = headers_for([(b"apikey", b"sb_publishable_x"), (b"authorization", b"Bearer sb_publishable_x"),
                       (b"accept", b"*/*")])
    assert values(out, b"apikey") == [b"minted.jwt"]
    assert values(out, b"authorization") == [b"Bearer minted.jwt"]
    assert values(out, b"accept") == [b"*/*"]
    assert out[0] == (b"host", b"rest:3000")


@pytest.mark.parametrize(("route", "names"), [
    (routes.REALTIME, [b"apikey", b"x-api-key"]), (routes.FUNCTIONS, [b"apikey", b"sb-api-key"]),
    (routes.REST, [b"apikey"]),
])
def test_each_route_puts_the_jwt_where_its_service_reads_it(route, names):
    sent = [(b"x-api-key", b"client"), (b"sb-api-key", b"client")]
    out = headers_for(sent, route)
    for name in names:
        assert values(out, name) == [b"minted.jwt"]
    if route is routes.REST:
        assert values(out, b"x-api-key") == [b"client"]  # not Realtime: the client's own header
        assert values(out, b"sb-api-key") == []  # a key header: never passed on


def test_a_user_jwt_is_forwarded_as_sent():
    out = headers_for([(b"authorization", b"Bearer user.jwt")], grant=USER)
    assert values(out, b"authorization") == [b"Bearer user.jwt"]


# Named here, not taken from the code: removing a name from PROTECTED must fail this test.
OWNED = [b"authorization", b"apikey", b"x-api-key", b"sb-api-key", b"content-length", b"transfer-encoding", b"host",
         b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix"]


def test_the_owned_headers_are_protected():
    assert PROTECTED >= set(OWNED)


@pytest.mark.parametrize("name", OWNED)
@pytest.mark.parametrize("route", [routes.REST, routes.REALTIME, routes.FUNCTIONS])
def test_connection_cannot_remove_an_owned_header(name, route):
    """Naming an owned header in Connection changes nothing the upstream gets."""
    sent = [(b"authorization", b"Bearer user.jwt"), (b"content-length", b"2"), (b"host", b"gw.test"),
            (b"x-forwarded-for", b"1.1.1.1"), (b"apikey", b"sb_publishable_x"), (b"x-api-key", b"k")]
    without = headers_for(sent, route=route, grant=USER)
    assert headers_for([*sent, (b"connection", name)], route=route, grant=USER) == without
    assert values(without, b"authorization") == [b"Bearer user.jwt"] and values(without, b"content-length") == [b"2"]


def test_hop_by_hop_and_nominated_headers_are_dropped():
    out = headers_for([(b"connection", b"x-hop"), (b"x-hop", b"1"), (b"keep-alive", b"5"), (b"te", b"trailers"),
                       (b"upgrade", b"h2c"), (b"expect", b"100-continue"), (b"x-kept", b"2")])
    names = [n for n, _ in out]
    assert b"x-hop" not in names and b"keep-alive" not in names and b"te" not in names and b"expect" not in names
    assert values(out, b"x-kept") == [b"2"]


def test_forwarding_headers():
    out = headers_for([(b"host", b"api.example.com"), (b"x-forwarded-for", b"1.2.3.4"),
                       (b"x-forwarded-host", b"spoofed"), (b"x-forwarded-prefix", b"/spoofed")])
    assert values(out, b"x-forwarded-for") == [b"10.0.0.9"]  # the client as judged, never a spoofed chain
    assert values(out, b"x-forwarded-host") == [b"api.example.com"]
    assert values(out, b"x-forwarded-prefix") == [b"/rest/v1"]
    assert values(out, b"x-forwarded-proto") == [b"http"]


def test_graphql_sets_its_content_profile():
    out = headers_for([(b"content-profile", b"private")], routes.GRAPHQL)
    assert values(out, b"content-profile") == [b"graphql_public"]


def test_no_key_passes_through_untouched():
    out = headers_for([(b"authorization", b"AWS4-HMAC-SHA256 Credential=x")], routes.STORAGE, NO_KEY)
    assert values(out, b"authorization") == [b"AWS4-HMAC-SHA256 Credential=x"]
    assert values(out, b"apikey") == []


def test_websocket_handshake_headers_are_the_relays_own():
    sent = [(b"sec-websocket-key", b"k"), (b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"p")]
    assert all(n not in (b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-protocol")
               for n, _ in headers_for(sent, routes.REALTIME, ws=True))
