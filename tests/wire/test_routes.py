"""docs/requests.md: the route table and its rewrites, path normalisation, query strings, the
headers the upstream gets, CORS, and responses passing through unchanged. A real gateway
process in front of real upstream servers that verify the JWT they receive."""

from __future__ import annotations

import pytest

from tests.factories import LEGACY_ANON, LEGACY_SERVICE_ROLE, hs256, user_claims
from tests.helpers import assert_refused
from tests.upstreams import echo_header, raw_request


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(**serving)


def role_of(echo: dict, where: str = "authorization") -> str:
    return echo["verified"][where]["claims"]["role"]


# --- the table ----------------------------------------------------------------------------------


def test_rest_table_path_query_and_body_pass_through(client, pub):
    r = client.post("/rest/v1/todos?select=id,title&id=eq.1&or=(a.eq.1,b.eq.%202)", headers={"apikey": pub},
                    content=b'{"title": "x"}')
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["service"] == "rest"
    assert echo["method"] == "POST"
    assert echo["path"] == "/todos"
    assert echo["query"] == "select=id,title&id=eq.1&or=(a.eq.1,b.eq.%202)"
    assert echo["body"] == '{"title": "x"}'
    assert role_of(echo) == "anon"
    assert role_of(echo, "apikey") == "anon"  # the apikey header carries the minted JWT too


@pytest.mark.parametrize("path", ["/rest/v1/", "/rest/v1"])
def test_rest_root_is_secret_only(client, pub, sec, path):
    r = client.get(path, headers={"apikey": sec})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/"
    assert role_of(r.json()) == "service_role"
    assert client.get(path, headers={"apikey": LEGACY_SERVICE_ROLE}).status_code == 200
    for key in (pub, LEGACY_ANON):
        r = client.get(path, headers={"apikey": key})
        assert_refused(r, 401, "UNAUTHORIZED_INVALID_API_KEY_TYPE", "Secret API key required")
        assert r.json()["hint"] == "Only secret API keys can be used for this endpoint."


@pytest.mark.parametrize("path", ["/graphql/v1", "/graphql/v1/"])
def test_graphql_goes_to_rpc_graphql_with_content_profile(client, pub, path):
    r = client.post(path, headers={"apikey": pub, "Content-Profile": "public"}, json={"query": "{ __typename }"})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["service"], echo["path"]) == ("rest", "/rpc/graphql")
    assert echo_header(echo, "content-profile") == ["graphql_public"]
    assert echo["body"] == '{"query":"{ __typename }"}'
    assert role_of(echo) == "anon"


def test_realtime_api_host_and_x_api_key(client, gw, pub):
    r = client.post("/realtime/v1/api/broadcast?x=1", headers={"apikey": pub, "x-api-key": "client-value"},
                    content=b"{}")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["service"], echo["path"], echo["query"]) == ("realtime", "/api/broadcast", "x=1")
    assert echo_header(echo, "host") == ["realtime-dev.supabase-realtime"]
    assert echo_header(echo, "x-forwarded-host") == [f"127.0.0.1:{gw.port}"]
    [x_api_key] = echo_header(echo, "x-api-key")  # the client's own value is replaced, not added to
    assert role_of(echo, "x-api-key") == "anon"
    assert echo_header(echo, "authorization") == ["Bearer " + x_api_key]


def test_realtime_query_apikey_is_replaced_by_the_jwt(client, pub):
    r = client.get("/realtime/v1/api/ping", params=[("a", "1"), ("apikey", pub), ("b", "2")])
    assert r.status_code == 200, r.text
    echo = r.json()
    query = echo["query"].split("&")
    assert query[:2] == ["a=1", "b=2"]
    assert query[2].startswith("apikey=eyJ")
    assert role_of(echo, "query_apikey") == "anon"
    assert pub not in echo["query"]


@pytest.mark.parametrize("path", [
    "/realtime/v1/api/tenants", "/realtime/v1/api/tenants/realtime-dev/health", "/realtime/v1/api/openapi",
    "/realtime/v1/api/openapi.json", "/api/mcp", "/mcp", "/mcp/tools",
])
def test_forbidden_routes(client, sec, path):
    for headers in ({}, {"apikey": sec}):
        r = client.get(path, headers=headers)
        assert_refused(r, 403, "FORBIDDEN_ROUTE", "Access is forbidden.")


def test_functions_get_a_verifiable_jwt_as_sb_api_key(client, pub, sec):
    r = client.post("/functions/v1/hello-world?name=x", headers={"apikey": pub, "sb-api-key": "client-sent"},
                    json={"name": "Functions"})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["service"], echo["path"], echo["query"]) == ("functions", "/hello-world", "name=x")
    assert role_of(echo, "sb-api-key") == "anon"
    assert role_of(echo) == "anon"
    assert "client-sent" not in str(echo["headers"])
    r = client.get("/functions/v1/hello-world", headers={"apikey": sec})
    assert role_of(r.json(), "sb-api-key") == role_of(r.json()) == "service_role"


def test_functions_without_key_pass_through_untouched(client):
    r = client.post("/functions/v1/stripe-webhook", headers={"Stripe-Signature": "t=1,v1=abc"}, content=b"event")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["path"] == "/stripe-webhook"
    assert echo["body"] == "event"
    assert echo_header(echo, "stripe-signature") == ["t=1,v1=abc"]
    for name in ("apikey", "sb-api-key", "authorization"):
        assert echo_header(echo, name) == []
    # A user JWT alone is forwarded as it is: the function verifies it.
    token = hs256(user_claims())
    r = client.get("/functions/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert echo_header(r.json(), "authorization") == [f"Bearer {token}"]
    # A client-sent sb-api-key is dropped even without a key.
    r = client.get("/functions/v1/me", headers={"sb-api-key": "forged"})
    assert echo_header(r.json(), "sb-api-key") == []


def test_functions_bearer_sb_key_is_the_key(client, sec):
    r = client.get("/functions/v1/admin-task", headers={"Authorization": f"Bearer {sec}"})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert role_of(echo) == role_of(echo, "sb-api-key") == role_of(echo, "apikey") == "service_role"
    assert sec not in r.text


def test_functions_bad_key_is_refused(client):
    r = client.get("/functions/v1/hello", headers={"apikey": "sb_publishable_nope"})
    assert_refused(r, 401, "UNAUTHORIZED_INVALID_API_KEY", "Invalid API key")
    r = client.get("/functions/v1/hello", headers={"Authorization": "Bearer sb_secret_nope"})
    assert_refused(r, 401, "UNAUTHORIZED_INVALID_API_KEY", "Invalid API key")


@pytest.mark.parametrize("path", ["/auth/v1/verify", "/auth/v1/callback", "/auth/v1/authorize",
                                  "/auth/v1/.well-known/jwks.json", "/auth/v1/sso/saml/acs",
                                  "/auth/v1/sso/saml/metadata"])
def test_auth_open_paths_need_no_key(client, path):
    r = client.get(path, params={"token": "abc", "type": "signup", "redirect_to": "http://localhost:3000"})
    assert r.status_code == 200, r.text
    if path.endswith("jwks.json"):
        assert r.json()["keys"][0]["kid"] == "auth-user-1"
        return
    echo = r.json()
    assert echo["service"] == "auth"
    assert echo["path"] == path.removeprefix("/auth/v1")
    assert echo["query"] == "token=abc&type=signup&redirect_to=http%3A%2F%2Flocalhost%3A3000"


def test_auth_open_paths_translate_a_key_that_is_sent(client, sec, pub):
    """supabase-js sends its key on every auth call (verifyOtp POSTs /verify with apikey and
    Authorization): the plaintext must not reach the auth service there either."""
    r = client.post("/auth/v1/verify", headers={"apikey": sec, "Authorization": f"Bearer {sec}"},
                    json={"type": "email", "token": "123456"})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert role_of(echo) == role_of(echo, "apikey") == "service_role"
    assert sec not in r.text
    r = client.get("/auth/v1/.well-known/jwks.json", headers={"apikey": pub, "Authorization": f"Bearer {pub}"})
    assert r.status_code == 200 and r.json()["keys"]
    r = client.post("/auth/v1/verify", headers={"apikey": "sb_publishable_forged"}, json={})
    assert_refused(r, 401, "UNAUTHORIZED_INVALID_API_KEY", "Invalid API key")


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server",
                                  "/.well-known/oauth-authorization-server/auth/v1"])
def test_oauth_server_metadata_is_open(client, path):
    """RFC 8414: the metadata sits at the root, the issuer's path (API_EXTERNAL_URL's) after it."""
    r = client.get(path)
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["service"], echo["path"]) == ("auth", "/.well-known/oauth-authorization-server")
    assert echo_header(echo, "x-forwarded-prefix") == ["/.well-known/oauth-authorization-server"]
    assert client.get("/.well-known/oauth-authorization-serverx").status_code == 404


@pytest.mark.parametrize("target", [
    "/auth/v1/sso/saml/acs/../../admin/users", "/auth/v1/sso/saml", "/auth/v1/sso/saml/acsx",
    "/auth/v1/verify/../admin/users", "/auth/v1/verify/", "/auth/v1/verify/x", "/auth/v1/callbackx",
    "/auth/v1/user", "/auth/v1/admin/users", "/auth/v1/./admin/users", "/auth/v1", "/auth/v1/",
])
def test_auth_other_paths_need_a_key(gw, target):
    r = raw_request(gw.url, "GET", target)  # sent as is: no client-side normalisation
    assert r.status == 401, (target, r.body)
    assert r.header("sb-error-code") == "UNAUTHORIZED_MISSING_API_KEY"
    assert r.json() == {"message": "No API key found in request",
                        "hint": "No `apikey` request header or url param was found."}


def test_auth_with_key(client, pub, sec):
    r = client.post("/auth/v1/token?grant_type=password", headers={"apikey": pub}, json={"email": "a@b.c"})
    assert r.status_code == 200, r.text
    assert (r.json()["path"], r.json()["query"]) == ("/token", "grant_type=password")
    r = client.get("/auth/v1/admin/users", headers={"apikey": sec})
    assert r.json()["path"] == "/admin/users"
    assert role_of(r.json()) == "service_role"


def test_storage_key_optional(client, pub):
    r = client.get("/storage/v1/object/public/avatars/a%20b.png")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert (echo["service"], echo["path"]) == ("storage", "/object/public/avatars/a%20b.png")
    assert echo_header(echo, "authorization") == []
    r = client.get("/storage/v1/object/sign/avatars/a.png", params={"token": "signed-url-token"})
    assert r.json()["query"] == "token=signed-url-token"
    # S3 signatures carry no key: passed untouched.
    s3 = "AWS4-HMAC-SHA256 Credential=abc/20240101/local/s3/aws4_request, SignedHeaders=host, Signature=00"
    r = client.get("/storage/v1/s3/avatars/a.png", headers={"Authorization": s3})
    assert r.status_code == 200, r.text
    assert echo_header(r.json(), "authorization") == [s3]
    r = client.put("/storage/v1/object/avatars/a.png", headers={"apikey": pub}, content=b"PNG")
    assert role_of(r.json()) == "anon"
    assert r.json()["body"] == "PNG"


def test_pg_meta_secret_only(client, pub, sec):
    r = client.get("/pg/tables?included_schemas=public", headers={"apikey": sec})
    assert r.status_code == 200, r.text
    assert (r.json()["service"], r.json()["path"], r.json()["query"]) == ("meta", "/tables", "included_schemas=public")
    assert role_of(r.json()) == "service_role"
    assert_refused(client.get("/pg/tables", headers={"apikey": pub}), 401, "UNAUTHORIZED_INVALID_API_KEY_TYPE",
                 "Secret API key required")
    assert_refused(client.get("/pg/tables"), 401, "UNAUTHORIZED_MISSING_API_KEY", "No API key found in request")


def test_health_and_unknown_paths(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = client.get("/nowhere", headers={"apikey": "x"})
    assert r.status_code == 404
    assert r.headers["sb-error-code"] == "NOT_FOUND"
    assert r.json() == {"message": "no Route matched with those values"}
    assert client.get("/realtime/v1/").status_code == 404


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/rest/v1/a%2Fb", "/rest/v1/a%2fb", "/rest/v1/%2e%2e/pg/tables", "/rest/v1/%2E/todos", "/rest/v1/.%2e/x",
    "/rest/v1/a%5cb", "/rest/v1/a\\..\\b", "/auth/v1/verify%2F..%2Fadmin/users", "/..", "/rest/v1/../../../x",
])
def test_encoded_slash_or_dot_segments_are_400(gw, sec, target):
    r = raw_request(gw.url, "GET", target, [("apikey", sec)])
    assert r.status == 400, (target, r.body)
    assert r.header("sb-error-code") == "BAD_PATH"
    assert r.json()["message"] == "Invalid request path"


def test_dot_segments_are_resolved_before_routing(gw, pub, sec):
    r = raw_request(gw.url, "GET", "/rest/v1/x/../todos/./?a=1", [("apikey", pub)])
    assert r.status == 200, r.body
    assert (r.json()["path"], r.json()["query"]) == ("/todos/", "a=1")
    # Dot segments cannot lift a publishable key into a secret-only route.
    r = raw_request(gw.url, "GET", "/rest/v1/../../pg/tables", [("apikey", pub)])
    assert r.status == 401 and r.json()["message"] == "Secret API key required"
    r = raw_request(gw.url, "GET", "/storage/v1/../../pg/tables")
    assert r.status == 401 and r.header("sb-error-code") == "UNAUTHORIZED_MISSING_API_KEY"
    r = raw_request(gw.url, "GET", "/rest/v1/../../pg/tables", [("apikey", sec)])
    assert r.status == 200 and r.json()["service"] == "meta"
    # Other encoded characters reach the upstream as sent, but for unreserved ones (RFC 3986
    # 6.2.2.2: the same either way), which are decoded so that routing sees what they name.
    r = raw_request(gw.url, "GET", "/rest/v1/t%C3%A4ble%20x?name=eq.a%26b", [("apikey", pub)])
    assert (r.json()["path"], r.json()["query"]) == ("/t%C3%A4ble%20x", "name=eq.a%26b")
    r = raw_request(gw.url, "GET", "/rest/v1/%74odos%2Ejson", [("apikey", pub)])
    assert r.json()["path"] == "/todos.json"
    for target in ("/realtime/v1/api/%74enants", "/realtime/v1/api/%6fpenapi", "/%6dcp", "/api/%6Dcp"):
        r = raw_request(gw.url, "GET", target, [("apikey", sec)])
        assert r.status == 403, target
    r = raw_request(gw.url, "GET", "/%70g/tables", [("apikey", pub)])
    assert r.status == 401 and r.json()["message"] == "Secret API key required"


def test_a_fragment_in_the_request_target_is_no_part_of_the_path(gw, pub):
    """Clients never send one; sent raw, it is cut off before routing on both ways of serving (as
    httptools' URL parser does), so ``/rest/v1/#x`` is the secret-only root, not a table."""
    for target in ("/rest/v1/#x", "/rest/v1/#/todos", "/rest/v1/?#x"):
        r = raw_request(gw.url, "GET", target, [("apikey", pub)])
        assert r.status == 401 and r.json()["message"] == "Secret API key required", target
    r = raw_request(gw.url, "GET", "/rest/v1/todos#frag", [("apikey", pub)])
    assert r.status == 200 and (r.json()["path"], r.json()["query"]) == ("/todos", "")
    r = raw_request(gw.url, "GET", "/rest/v1/todos?select=id#frag", [("apikey", pub)])
    assert r.status == 200 and (r.json()["path"], r.json()["query"]) == ("/todos", "select=id")


def test_runs_of_slashes_are_merged_before_routing(gw, pub, sec):
    """As Envoy's merge_slashes: a doubled slash cannot reach the OpenAPI root with a publishable
    key, nor a forbidden Realtime API; the upstream gets the merged path."""
    for target in ("/rest/v1//", "/rest/v1///", "//rest/v1/", "/rest//v1/"):
        r = raw_request(gw.url, "GET", target, [("apikey", pub)])
        assert r.status == 401 and r.json()["message"] == "Secret API key required", target
    r = raw_request(gw.url, "GET", "/rest/v1//", [("apikey", sec)])
    assert r.status == 200 and r.json()["path"] == "/"
    for target in ("/realtime/v1/api//tenants", "/realtime/v1//api/tenants", "/realtime//v1/api///openapi",
                   "//mcp", "/api//mcp"):
        r = raw_request(gw.url, "GET", target, [("apikey", sec)])
        assert r.status == 403, target
    r = raw_request(gw.url, "GET", "/rest/v1//todos//1?select=a//b", [("apikey", pub)])
    assert r.status == 200
    assert (r.json()["path"], r.json()["query"]) == ("/todos/1", "select=a//b")
    r = raw_request(gw.url, "GET", "/auth/v1//verify", [])
    assert r.status == 200 and r.json()["path"] == "/verify"


# --- query strings --------------------------------------------------------------------------------


def test_apikey_query_param_is_removed(client, pub):
    r = client.get(f"/rest/v1/todos?select=*&apikey={pub}&id=eq.1")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["query"] == "select=*&id=eq.1"
    assert role_of(echo) == role_of(echo, "apikey") == "anon"
    r = client.get(f"/rest/v1/todos?apikey={pub}")
    assert r.json()["query"] == ""
    # Same key in header and query: fine, and removed too.
    r = client.get(f"/rest/v1/todos?apikey={pub}&x=1", headers={"apikey": pub})
    assert r.status_code == 200 and r.json()["query"] == "x=1"


def test_other_query_params_keep_their_bytes(client, pub):
    q = "a=1&a=2&b=%2F%20+c&empty=&flag&apikeyx=1&x_apikey=2"
    r = client.get(f"/rest/v1/todos?{q}", headers={"apikey": pub})
    assert r.json()["query"] == q


# --- headers to the upstream ------------------------------------------------------------------------


def test_forwarded_headers_and_hop_by_hop(gw, pub):
    r = raw_request(gw.url, "POST", "/rest/v1/rpc/f", [
        ("Host", "api.example.com"),
        ("apikey", pub),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Prefix", "/evil"),
        ("X-Forwarded-Port", "1"),
        ("Connection", "keep-alive, X-Drop-Me"),
        ("X-Drop-Me", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"),
        ("Prefer", "return=representation"),
        ("X-Client-Info", "supabase-js/2.50.0"),
        ("Accept-Profile", "api"),
    ], body=b"{}")
    assert r.status == 200, r.body
    echo = r.json()
    names = {k.lower() for k, _ in echo["headers"]}
    for dropped in ("x-drop-me", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection"):
        assert dropped not in names
    assert echo_header(echo, "connection") in ([], ["keep-alive"])  # the upstream client's own, if any
    assert echo_header(echo, "x-forwarded-for") == ["127.0.0.1"]  # no trusted proxy: the peer, never a spoof
    assert echo_header(echo, "x-forwarded-proto") == ["http"]
    assert echo_header(echo, "x-forwarded-host") == ["api.example.com"]
    assert echo_header(echo, "x-forwarded-port") == [str(gw.port)]
    assert echo_header(echo, "x-forwarded-prefix") == ["/rest/v1"]
    assert echo_header(echo, "host") != ["api.example.com"]
    for name, value in (("prefer", "return=representation"), ("x-client-info", "supabase-js/2.50.0"),
                        ("accept-profile", "api")):
        assert echo_header(echo, name) == [value]
    assert len(echo_header(echo, "authorization")) == len(echo_header(echo, "apikey")) == 1


@pytest.mark.parametrize("nominated", [
    "authorization", "Authorization, keep-alive", "apikey", "x-api-key", "sb-api-key", "content-length",
    "host", "x-forwarded-for", "x-forwarded-host", "x-forwarded-prefix", "x-forwarded-proto",
])
def test_connection_cannot_remove_what_the_gateway_owns(gw, pub, nominated):
    """``Connection`` may drop hop-by-hop headers only: a verified user JWT, the minted JWTs,
    the body's length and the forwarding headers survive any header it names."""
    user = hs256(user_claims(sub="user-conn"))
    r = raw_request(gw.url, "POST", "/realtime/v1/api/broadcast", [
        ("apikey", pub), ("Authorization", f"Bearer {user}"), ("Connection", nominated), ("X-Custom", "kept"),
        ("Content-Type", "application/json"), ("Host", "api.example.com"),
    ], body=b'{"a": 1}')
    assert r.status == 200, r.body
    echo = r.json()
    assert echo_header(echo, "authorization") == [f"Bearer {user}"]
    assert echo["verified"]["apikey"]["claims"]["role"] == "anon"
    assert echo["verified"]["x-api-key"]["claims"]["role"] == "anon"
    assert echo["body"] == '{"a": 1}'
    assert echo_header(echo, "x-forwarded-host") == ["api.example.com"]
    assert echo_header(echo, "x-forwarded-prefix") == ["/realtime/v1"]
    assert len(echo_header(echo, "x-forwarded-for")) == 1
    assert echo_header(echo, "x-custom") == ["kept"]


def test_connection_still_drops_the_headers_it_names(gw, pub):
    r = raw_request(gw.url, "GET", "/rest/v1/todos", [
        ("apikey", pub), ("Connection", "x-hop"), ("Connection", "x-second"), ("X-Hop", "1"), ("X-Second", "2"),
        ("X-Kept", "3"),
    ])
    echo = r.json()
    assert echo_header(echo, "x-hop") == echo_header(echo, "x-second") == []
    assert echo_header(echo, "x-kept") == ["3"]


def test_client_headers_are_not_rewritten(client, pub):
    """No header the client did not send (User-Agent, Accept, Accept-Encoding) is added."""
    r = raw_request(client.base_url.__str__(), "GET", "/rest/v1/todos", [("apikey", pub)])
    names = {k.lower() for k, _ in r.json()["headers"]}
    assert "user-agent" not in names and "accept" not in names and "accept-encoding" not in names


def test_response_passes_through_unchanged(gw, pub):
    r = raw_request(gw.url, "GET", "/rest/v1/headers-out", [("apikey", pub), ("Accept-Encoding", "gzip")])
    assert r.status == 201
    import gzip

    assert gzip.decompress(r.body) == b'{"compressed": true}'  # still compressed: bytes untouched
    assert r.header("content-encoding") == "gzip"
    assert r.header("x-upstream") == "yes"
    assert r.header("set-cookie") == "sid=abc; Path=/; HttpOnly"
    assert r.header("content-range") == "0-9/100"
    assert r.header("vary") == "Accept-Encoding"
    assert r.header("keep-alive") is None
    assert [k for k, _ in r.headers].count("date") == 1
    assert r.header("access-control-allow-origin") is None  # the gateway owns CORS


def test_redirects_are_not_followed(client, pub):
    r = client.get("/rest/v1/redirect", headers={"apikey": pub})
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/elsewhere"


def test_head(client, pub):
    r = client.head("/rest/v1/todos", headers={"apikey": pub})
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) > 0


# --- CORS --------------------------------------------------------------------------------------------


def test_preflight_without_key(client, up):
    before = len(up.received)
    r = client.options("/rest/v1/todos", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info, x-custom",
    })
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-headers"] == "authorization, apikey, content-type, x-client-info, x-custom"
    assert r.headers["access-control-max-age"] == "3600"
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
        assert method in r.headers["access-control-allow-methods"]
    assert len(up.received) == before  # answered by the gateway


@pytest.mark.parametrize("path", ["/functions/v1/hello", "/storage/v1/object/a/b", "/auth/v1/token",
                                  "/realtime/v1/api/broadcast", "/graphql/v1", "/rest/v1/"])
def test_preflight_on_every_route(client, path):
    r = client.options(path, headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "apikey" in r.headers["access-control-allow-headers"]


def test_preflight_pg_only_for_meta_origins(client):
    headers = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "apikey"}
    r = client.options("/pg/tables", headers={"Origin": "http://localhost:8082", **headers})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:8082"
    assert "Origin" in r.headers["vary"]
    for origin in ("https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil:80",
                   "http://localhost:3000.evil.com", "http://localhost:3000@evil.com", "http://127.0.0.1:80.evil.com",
                   "http://localhost:3000/", "null", "http://evil.com#http://localhost:3000"):
        r = client.options("/pg/tables", headers={"Origin": origin, **headers})
        assert "access-control-allow-origin" not in r.headers, origin


def test_cors_on_proxied_and_error_responses(client, pub, sec):
    origin = {"Origin": "https://app.example.com"}
    r = client.get("/rest/v1/headers-out", headers={"apikey": pub, **origin})
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-expose-headers"] == "*"
    r = client.get("/rest/v1/todos", headers=origin)  # 401 readable by the browser
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == "*"
    r = client.get("/nowhere", headers=origin)
    assert r.headers["access-control-allow-origin"] == "*"
    r = client.get("/pg/tables", headers={"apikey": sec, "Origin": "http://127.0.0.1:3000"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    for origin in ("https://evil.example", "http://localhost:3000.evil.com"):
        r = client.get("/pg/tables", headers={"apikey": sec, "Origin": origin})
        assert "access-control-allow-origin" not in r.headers
    r = client.get("/rest/v1/todos", headers={"apikey": pub})
    assert "access-control-allow-origin" not in r.headers  # no Origin, no CORS headers
