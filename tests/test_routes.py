"""gateway.routes as pure table tests and properties: path normalisation and the route table.

The properties hold for arbitrary input: whatever a client sends, the route chosen is the one
an upstream that decodes, merges slashes and resolves dot segments itself would see, so no
spelling reaches a forbidden or secret-only service except the exact forms allowed.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway import routes
from gateway.routes import BadPath, Kind, Policy, match, normalize

TABLE = [
    # path, route, upstream path
    ("/health", routes.HEALTH, ""),
    ("/mcp", routes.FORBIDDEN, ""),
    ("/api/mcp/x", routes.FORBIDDEN, ""),
    ("/rest/v1", routes.REST_ROOT, "/"),
    ("/rest/v1/", routes.REST_ROOT, "/"),
    ("/rest/v1/todos", routes.REST, "/todos"),
    ("/rest/v1/rpc/f", routes.REST, "/rpc/f"),
    ("/graphql/v1", routes.GRAPHQL, "/rpc/graphql"),
    ("/graphql/v1/", routes.GRAPHQL, "/rpc/graphql"),
    ("/realtime/v1/websocket", routes.REALTIME, "/socket/websocket"),
    ("/realtime/v1/api/broadcast", routes.REALTIME, "/api/broadcast"),
    ("/realtime/v1/api/tenants", routes.FORBIDDEN, ""),
    ("/realtime/v1/api/tenants/x", routes.FORBIDDEN, ""),
    ("/realtime/v1/api/openapi", routes.FORBIDDEN, ""),
    ("/functions/v1/hello", routes.FUNCTIONS, "/hello"),
    ("/functions/v1", routes.FUNCTIONS, "/"),
    ("/auth/v1/token", routes.AUTH, "/token"),
    ("/auth/v1/verify", routes.AUTH_OPEN, "/verify"),
    ("/auth/v1/.well-known/jwks.json", routes.AUTH_OPEN, "/.well-known/jwks.json"),
    ("/storage/v1/object/a", routes.STORAGE, "/object/a"),
    ("/pg/tables", routes.META, "/tables"),
    ("/pg", routes.META, "/"),
    ("/auth/v1/sso/saml/acs", routes.AUTH_OPEN, "/sso/saml/acs"),
    ("/.well-known/oauth-authorization-server", routes.AUTH_METADATA, "/.well-known/oauth-authorization-server"),
    ("/.well-known/oauth-authorization-server/auth/v1", routes.AUTH_METADATA,
     "/.well-known/oauth-authorization-server"),
]


@pytest.mark.parametrize(("path", "route", "upstream_path"), TABLE)
def test_the_route_table(path, route, upstream_path):
    assert match(path) == (route, upstream_path)


@pytest.mark.parametrize("path", ["/", "/nowhere", "/project/default", "/rest", "/rest/v2/x", "/restv1",
                                  "/graphql/v1/x", "/pgx", "/REST/v1/todos", "/analyticsv1", "/api/platform/profile"])
def test_every_other_path_is_the_dashboards(path):
    assert match(path) == (routes.DASHBOARD, path)  # Studio sees the path as sent (served if upstreams.studio is set)


@pytest.mark.parametrize("path", ["/realtime/v1", "/realtime/v1/", "/analytics/v1", "/analytics/v1/api/endpoints/x"])
def test_no_route(path):
    assert match(path) is None


@pytest.mark.parametrize(("raw", "normal"), [
    ("/rest/v1//", "/rest/v1/"),
    ("//rest///v1/todos", "/rest/v1/todos"),
    ("/realtime/v1/api//tenants", "/realtime/v1/api/tenants"),
    ("/rest/v1/x/../todos/./", "/rest/v1/todos/"),
    ("/rest/v1/a/..", "/rest/v1/"),
    ("/rest/v1/.", "/rest/v1/"),
    ("/rest/v1/%74odos%2Ejson", "/rest/v1/todos.json"),
    ("/rest/v1/t%C3%A4ble%20x", "/rest/v1/t%C3%A4ble%20x"),
    ("/realtime/v1/api/%74enants", "/realtime/v1/api/tenants"),
])
def test_normalize(raw, normal):
    assert normalize(raw) == normal


@pytest.mark.parametrize("raw", ["rest/v1", "/rest/v1/a%2Fb", "/rest/v1/a%2fb", "/rest/v1/%2e%2e/pg", "/rest/v1/%2E",
                                 "/rest/v1/.%2e/x", "/rest/v1/a%5cb", "/rest/v1/a\\b", "/..", "/a/../../b",
                                 "/rest/v1/a%00b", "/rest/v1/a\x00b"])
def test_normalize_refuses(raw):
    with pytest.raises(BadPath):
        normalize(raw)


def test_routes_declare_their_behaviour():
    assert routes.REALTIME.token_headers == (b"apikey", b"x-api-key")
    assert routes.FUNCTIONS.token_headers == (b"apikey", b"sb-api-key")
    assert routes.GRAPHQL.upstream == "rest" and routes.GRAPHQL.service == "graphql"
    assert routes.GRAPHQL.owned_headers == {b"apikey", b"content-profile"}
    assert routes.REALTIME.query_key is routes.QueryKey.REPLACE and routes.REST.query_key is routes.QueryKey.DROP
    assert routes.META.cors is routes.Cors.META and routes.REST.cors is routes.Cors.ANY
    assert {route.service for _, route, _ in TABLE} == set(routes.SERVICES) | {"gateway"}


# --- properties ---------------------------------------------------------------------------------

PIECES = ["", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2f", "%2F", "%5c", "%5C", "\\", "%00", "%", "%25", "%252f",
          "rest", "v1", "realtime", "api", "tenants", "%74enants", "ten%61nts", "openapi", "%6fpenapi", "pg", "%70g",
          "auth", "verify", "verify%3F", "callback", "authorize", ".well-known", "jwks.json", "functions", "storage",
          "graphql", "mcp", "%6dcp", "health", "todos", "a", "%C3%A4", "\xff", "%ff", "+", "%20", "?", "#", ";"]


def server_view(path: str) -> str:
    """How a permissive upstream would read a path: decoded, slashes merged, dots resolved."""
    decoded = re.sub(r"/+", "/", unquote(path, errors="replace"))
    resolved = posixpath.normpath(decoded)
    if decoded.endswith(("/", "/.", "/..")) and resolved != "/":
        resolved += "/"
    return resolved


paths = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=8).map(lambda parts: "/" + "/".join(parts)),
    st.lists(st.sampled_from(PIECES), max_size=8).map(lambda parts: "/" + "//".join(parts)),
    st.binary(max_size=64).map(lambda b: "/" + b.decode("latin-1")),
    st.text(max_size=40).map(lambda t: "/" + t),
)


@settings(max_examples=2000, deadline=None)
@given(paths)
@example("/rest/v1//")
@example("/realtime/v1/api//tenants")
@example("/rest/v1/%2e/")
def test_no_spelling_changes_the_route(raw):
    try:
        normal = normalize(raw)
    except BadPath:
        return
    assert normal.startswith("/") and "//" not in normal
    assert normalize(normal) == normal  # idempotent
    ours = match(normal)
    theirs = match(server_view(raw))
    assert (ours and ours[0]) is (theirs and theirs[0]), (raw, normal)


@settings(max_examples=2000, deadline=None)
@given(paths)
def test_secret_only_and_forbidden_only_in_their_exact_forms(raw):
    try:
        normal = normalize(raw)
    except BadPath:
        return
    found = match(normal)
    if found is None:
        return
    route, upstream_path = found
    if route.policy is Policy.SECRET:
        assert normal in ("/rest/v1", "/rest/v1/") or normal == "/pg" or normal.startswith("/pg/")
    if route is routes.REST:
        assert server_view(upstream_path) != "/"  # never the OpenAPI root with any key
    if route is routes.REALTIME:
        assert not server_view(upstream_path).startswith(("/api/tenants", "/api/openapi"))
    if route is routes.AUTH_OPEN:
        assert upstream_path in routes.AUTH_OPEN_PATHS
    if route is routes.AUTH_METADATA:
        assert upstream_path == routes.OAUTH_METADATA
    if route.kind is Kind.FORBIDDEN:
        assert route is routes.FORBIDDEN
    if route is routes.DASHBOARD:  # no spelling of a service's path falls through to Studio
        assert upstream_path == normal
        assert not normal.startswith(("/rest/v1/", "/auth/v1/", "/storage/v1/", "/functions/v1/", "/pg/",
                                      "/realtime/v1/api/", "/analytics/v1/"))
        assert normal not in ("/health", "/mcp", "/api/mcp", "/rest/v1", "/pg", "/analytics/v1")
