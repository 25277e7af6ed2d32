"""docs/requests.md: which requests are refused (every 401 with hosted
Supabase's wording), the browser rule, the role each kind of key produces as the upstream
verifies it, user JWTs, minted JWT claims and their reuse, and that no key's plaintext ever
reaches an upstream."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest

from gateway.keys import apikeys
from tests.factories import (
    AUTH_USER_JWK,
    BROWSERS,
    LEGACY_ANON,
    LEGACY_SERVICE_ROLE,
    NON_BROWSERS,
    b64,
    ec_private_jwk,
    es256,
    hs256,
    legacy_key,
    unsigned,
    user_claims,
)
from tests.helpers import assert_refused
from tests.upstreams import JWT_SECRET, echo_header, random_part, raw_request

TTL = 120
REF = "authref"

MISSING = ("UNAUTHORIZED_MISSING_API_KEY", "No API key found in request",
           "No `apikey` request header or url param was found.")
INVALID = ("UNAUTHORIZED_INVALID_API_KEY", "Invalid API key", "Double check your API key.")
BROWSER = ("UNAUTHORIZED_INVALID_API_KEY_TYPE", "Forbidden use of secret API key in browser",
           "Secret API keys can only be used in a protected environment and should never be used in a browser. "
           "Delete this secret API key immediately!")
CONFLICT = ("UNAUTHORIZED_CONFLICTING_API_KEYS", "Conflicting API keys")
BAD_JWT = "UNAUTHORIZED_INVALID_JWT"



@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(GATEWAY_JWT__TTL_SECONDS=str(TTL), GATEWAY_PROJECT_REF=REF, **serving)


def make_key(gw, created, key_type: str, name: str, **body) -> str:
    key = gw.create_key(key_type, name=name, **body)["api_key"]
    created[name] = key
    return key


def minted(echo: dict, where: str = "authorization") -> dict:
    return echo["verified"][where]["claims"]


# --- 401: the key ----------------------------------------------------------------------------------


def test_no_key(client):
    assert_refused(client.get("/rest/v1/todos"), 401, *MISSING)
    assert_refused(client.get("/rest/v1/todos?apikey="), 401, *MISSING)
    assert_refused(client.post("/graphql/v1", json={}), 401, *MISSING)
    assert_refused(client.get("/realtime/v1/api/ping"), 401, *MISSING)
    assert_refused(client.get("/auth/v1/user"), 401, *MISSING)


@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_empty_key_counts_as_missing(gw, value):
    r = raw_request(gw.url, "GET", "/rest/v1/todos", [("apikey", value)])
    assert r.status == 401
    assert r.header("sb-error-code") == MISSING[0]


@pytest.mark.parametrize("key", [
    "not-a-key", "sb_publishable_", "sb_publishable_short_abc", "sb_secret_" + "A" * 22, "Bearer x",
    "sb_unknown_AAAAAAAAAAAAAAAAAAAAAA_AAAAAAAA", "eyJhbGciOiJIUzI1NiJ9.e30.x",
])
def test_malformed_key(client, key):
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": key}), 401, *INVALID)


def test_bad_checksum(client, pub, sec):
    for key in (pub, sec):
        last = key[-1]
        forged = key[:-1] + ("A" if last != "A" else "B")
        assert_refused(client.get("/rest/v1/todos", headers={"apikey": forged}), 401, *INVALID)
    # a valid key checksummed for another ref
    other = apikeys.generate("publishable", "some-other-ref")
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": other}), 401, *INVALID)


def test_unknown_key(client):
    for key_type in ("publishable", "secret"):
        key = apikeys.generate(key_type, "supabase-self-hosted")
        assert_refused(client.get("/rest/v1/todos", headers={"apikey": key}), 401, *INVALID)
        assert_refused(client.get("/rest/v1/todos", params={"apikey": key}), 401, *INVALID)


def test_deleted_key(client, gw, created):
    made = gw.create_key("secret", name="auth_doomed")
    created["auth_doomed"] = made["api_key"]
    assert client.get("/rest/v1/todos", headers={"apikey": made["api_key"]}).status_code == 200
    assert gw.admin("DELETE", f"/api-keys/{made['id']}").status_code == 200
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": made["api_key"]}), 401, *INVALID)
    assert_refused(client.get("/functions/v1/x", headers={"Authorization": f"Bearer {made['api_key']}"}), 401, *INVALID)


def test_two_apikey_headers(gw, pub, sec):
    for pair in ((pub, pub), (pub, sec)):
        r = raw_request(gw.url, "GET", "/rest/v1/todos", [("apikey", pair[0]), ("apikey", pair[1])])
        assert r.status == 401
        assert r.header("sb-error-code") == INVALID[0]
        assert r.json()["message"] == "Invalid API key"


def test_two_apikey_query_params(client, pub):
    assert_refused(client.get("/rest/v1/todos", params=[("apikey", pub), ("apikey", pub)]), 401, *INVALID)


def test_header_and_query_differ(client, pub, sec):
    assert_refused(client.get("/rest/v1/todos", params={"apikey": sec}, headers={"apikey": pub}), 401, *INVALID)
    assert client.get("/rest/v1/todos", params={"apikey": pub}, headers={"apikey": pub}).status_code == 200


def test_header_wins_over_nothing_and_query_works_alone(client, pub):
    r = client.get("/rest/v1/todos", params={"apikey": pub, "select": "*"})
    assert r.status_code == 200 and r.json()["query"] == "select=%2A"
    assert minted(r.json())["role"] == "anon"


def test_bearer_sb_key_differing_from_apikey_conflicts(client, pub, sec):
    for apikey, bearer in ((pub, sec), (sec, pub), (pub, "sb_publishable_garbage")):
        assert_refused(client.get("/rest/v1/todos", headers={"apikey": apikey, "Authorization": f"Bearer {bearer}"}), 401,
                *CONFLICT)
    assert_refused(client.get("/functions/v1/x", headers={"apikey": pub, "Authorization": f"Bearer {sec}"}), 401, *CONFLICT)


def test_two_authorization_headers(gw, pub, sec):
    """The gateway would check one and the upstream might read the other: refused."""
    user = hs256(user_claims())
    for path in ("/rest/v1/todos", "/functions/v1/f", "/auth/v1/verify"):
        r = raw_request(gw.url, "GET", path, [("apikey", pub), ("Authorization", f"Bearer {sec}"),
                                              ("Authorization", f"Bearer {user}")])
        assert r.status == 401, (path, r.body)
        assert r.header("sb-error-code") == "UNAUTHORIZED_INVALID_AUTHORIZATION"
        assert sec.encode() not in r.body and user.encode() not in r.body


def test_bearer_equal_to_apikey_is_replaced(client, pub):
    """What supabase-js sends: apikey and Authorization both carrying the publishable key."""
    r = client.get("/rest/v1/todos", headers={"apikey": pub, "Authorization": f"Bearer {pub}"})
    assert r.status_code == 200, r.text
    assert minted(r.json())["role"] == "anon"
    assert pub not in r.text


# --- 401: legacy keys ---------------------------------------------------------------------------------


def test_forged_legacy_keys(client):
    forged = [
        legacy_key("service_role", secret="another-secret-that-is-also-long-enough"),
        legacy_key("service_role"),  # right secret, but not the configured key
        legacy_key("anon"),
        unsigned({"role": "service_role", "iss": "supabase", "exp": int(time.time()) + 3600}),
        LEGACY_SERVICE_ROLE[:-2] + ("AA" if not LEGACY_SERVICE_ROLE.endswith("AA") else "BB"),
    ]
    for key in forged:
        assert_refused(client.get("/rest/v1/todos", headers={"apikey": key}), 401, *INVALID)
    # As bearer: not the configured key, and a user JWT may not claim service_role.
    for key in forged[:2]:
        r = client.get("/rest/v1/todos", headers={"apikey": LEGACY_ANON, "Authorization": f"Bearer {key}"})
        assert r.status_code == 401 and r.headers["sb-error-code"] == BAD_JWT, r.text


def test_legacy_disabled_then_enabled(gw, client, pub):
    switched = gw.admin("PUT", "/api-keys/legacy", params={"enabled": "false"}).json()
    assert switched == {"enabled": False, "configured": ["anon", "service_role"]}
    try:
        for headers in ({"apikey": LEGACY_ANON}, {"apikey": LEGACY_SERVICE_ROLE},
                        {"apikey": pub, "Authorization": f"Bearer {LEGACY_SERVICE_ROLE}"},
                        {"apikey": pub, "Authorization": f"Bearer {LEGACY_ANON}"}):
            r = client.get("/rest/v1/todos", headers=headers)
            assert_refused(r, 401, "UNAUTHORIZED_LEGACY_API_KEY_DISABLED", "Legacy API keys are disabled")
            hint = r.json()["hint"]
            assert " since 20" in hint and "gateway legacy enable" in hint
            assert f"/v1/projects/{REF}/api-keys/legacy?enabled=true" in hint
        for path in ("/functions/v1/x", "/storage/v1/object/a", "/auth/v1/verify"):  # as bearer without apikey too
            r = client.get(path, headers={"Authorization": f"Bearer {LEGACY_SERVICE_ROLE}"})
            assert r.status_code == 401 and r.json()["message"] == "Legacy API keys are disabled"
        assert_refused(client.get("/rest/v1/todos", params={"apikey": LEGACY_ANON}), 401, "UNAUTHORIZED_LEGACY_API_KEY_DISABLED",
                "Legacy API keys are disabled")
        assert client.get("/rest/v1/todos", headers={"apikey": pub}).status_code == 200
    finally:
        switched = gw.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).json()
        assert switched == {"enabled": True, "configured": ["anon", "service_role"]}
    r = client.get("/rest/v1/todos", headers={"apikey": LEGACY_ANON})
    assert r.status_code == 200 and minted(r.json())["role"] == "anon"


# --- 401: user JWTs -----------------------------------------------------------------------------------


def bearer(client, key: str, token: str, path: str = "/rest/v1/todos"):
    return client.get(path, headers={"apikey": key, "Authorization": f"Bearer {token}"})


def test_expired_user_jwt(client, pub):
    for token in (hs256(user_claims(ttl=-10)), es256(user_claims(ttl=-10), AUTH_USER_JWK)):
        r = bearer(client, pub, token)
        assert_refused(r, 401, BAD_JWT, "JWT expired")
        assert token not in r.text


def test_forged_user_jwt(client, pub):
    stranger = ec_private_jwk("auth-user-1")  # claims the auth service's kid, signed by someone else
    tokens = [
        hs256(user_claims(), secret="not-the-secret-but-quite-long-enough-0000"),
        es256(user_claims(), stranger),
        es256(user_claims(), ec_private_jwk("unknown-kid")),
        hs256(user_claims())[:-4] + "AAAA",
        "not.a.jwt",
        "garbage",
    ]
    for token in tokens:
        r = bearer(client, pub, token)
        assert r.status_code == 401 and r.headers["sb-error-code"] == BAD_JWT, (token, r.text)
        assert token not in r.text


def test_alg_none(client, pub):
    token = unsigned(user_claims())
    r = bearer(client, pub, token)
    assert_refused(r, 401, BAD_JWT, "JWT algorithm not allowed")
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": token}), 401, *INVALID)
    # "None" in another case, and HS384/HS512 with the right secret, are not accepted either
    none_upper = b64(b'{"alg":"NONE"}') + "." + hs256(user_claims()).split(".")[1] + "."
    r = bearer(client, pub, none_upper)
    assert r.status_code == 401
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT finds the secret short for HS512
        hs512 = jwt.encode(user_claims(), JWT_SECRET, algorithm="HS512")
    r = bearer(client, pub, hs512)
    assert r.status_code == 401


@pytest.mark.parametrize("extra", [
    {"jku": "http://127.0.0.1:1/jwks.json"},
    {"x5u": "http://127.0.0.1:1/cert.pem"},
    {"jwk": {"kty": "oct", "k": b64(JWT_SECRET.encode())}},
])
def test_key_carrying_headers_refused(client, pub, extra):
    r = bearer(client, pub, hs256(user_claims(), headers=extra))
    assert_refused(r, 401, BAD_JWT, "JWT header not allowed")


def test_embedded_public_key_refused(client, pub):
    attacker = ec_private_jwk("auth-user-1")
    pub_jwk = {k: v for k, v in attacker.items() if k != "d"}
    r = bearer(client, pub, es256(user_claims(), attacker, headers={"jwk": pub_jwk}))
    assert_refused(r, 401, BAD_JWT, "JWT header not allowed")


def test_nbf_in_future_refused(client, pub):
    assert_refused(bearer(client, pub, hs256(user_claims(nbf=int(time.time()) + 600))), 401, BAD_JWT, "JWT not valid yet")


def test_user_jwt_needs_exp_and_an_allowed_role(client, pub):
    claims = user_claims()
    del claims["exp"]
    assert_refused(bearer(client, pub, hs256(claims)), 401, BAD_JWT, "Invalid JWT")
    for role in ("service_role", "postgres", "supabase_admin"):
        assert_refused(bearer(client, pub, hs256(user_claims(role=role))), 401, BAD_JWT, "JWT role not allowed")
        assert_refused(bearer(client, pub, es256(user_claims(role=role), AUTH_USER_JWK)), 401, BAD_JWT, "JWT role not allowed")
    assert_refused(bearer(client, pub, hs256({"sub": "x", "exp": int(time.time()) + 60})), 401, BAD_JWT, "JWT role not allowed")


# --- the browser rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(BROWSERS))
def test_secret_key_from_a_browser(client, sec, pub, family):
    ua = {"User-Agent": BROWSERS[family]}
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": sec, **ua}), 401, *BROWSER)
    assert_refused(client.get("/rest/v1/todos", params={"apikey": sec}, headers=ua), 401, *BROWSER)
    assert_refused(client.get("/functions/v1/x", headers={"Authorization": f"Bearer {sec}", **ua}), 401, *BROWSER)
    assert_refused(client.get("/storage/v1/object/a", headers={"apikey": sec, **ua}), 401, *BROWSER)
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": LEGACY_SERVICE_ROLE, **ua}), 401, *BROWSER)
    assert_refused(client.get("/functions/v1/x", headers={"Authorization": f"Bearer {LEGACY_SERVICE_ROLE}", **ua}), 401,
            *BROWSER)
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": pub, "Authorization": f"Bearer {LEGACY_SERVICE_ROLE}",
                                                   **ua}), 401, *BROWSER)
    # The same browser with a publishable (or legacy anon) key is fine.
    assert client.get("/rest/v1/todos", headers={"apikey": pub, **ua}).status_code == 200
    assert client.get("/rest/v1/todos", headers={"apikey": LEGACY_ANON, **ua}).status_code == 200


@pytest.mark.parametrize("header", ["Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest"])
def test_sec_fetch_header_marks_a_browser_whatever_the_user_agent(client, sec, header):
    value = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty"}[header]
    assert_refused(client.get("/rest/v1/todos", headers={"apikey": sec, "User-Agent": "curl/8.5.0", header: value}), 401,
            *BROWSER)


@pytest.mark.parametrize("client_name", sorted(NON_BROWSERS))
def test_secret_key_from_non_browsers(client, sec, client_name):
    r = client.get("/rest/v1/todos", headers={"apikey": sec, "User-Agent": NON_BROWSERS[client_name],
                                              "Origin": "https://server-side.example"})
    assert r.status_code == 200, r.text
    assert minted(r.json())["role"] == "service_role"


def test_secret_key_without_user_agent(gw, sec):
    r = raw_request(gw.url, "GET", "/rest/v1/todos", [("apikey", sec)])
    assert r.status == 200


# --- roles, as the upstream verifies them -----------------------------------------------------------


def test_roles_of_each_kind_of_key(client, gw, created, pub, sec):
    templated = make_key(gw, created, "secret", "auth_templated", secret_jwt_template={
        "role": "authenticated", "sub": "svc-reports", "app_metadata": {"tenant": "t1"}})
    cases = [(pub, "anon"), (sec, "service_role"), (templated, "authenticated"), (LEGACY_ANON, "anon"),
             (LEGACY_SERVICE_ROLE, "service_role")]
    for key, role in cases:
        for path in ("/rest/v1/todos", "/storage/v1/object/b/o", "/functions/v1/f", "/auth/v1/user"):
            r = client.get(path, headers={"apikey": key})
            assert r.status_code == 200, r.text
            echo = r.json()
            assert minted(echo)["role"] == role, (path, role)
            assert minted(echo, "apikey")["role"] == role
    r = client.get("/rest/v1/todos", headers={"apikey": templated})
    claims = minted(r.json())
    assert claims["sub"] == "svc-reports"
    assert claims["app_metadata"] == {"tenant": "t1"}


def test_legacy_bearer_with_a_publishable_apikey(client, pub):
    """The old way: apikey anon, Authorization service_role; the request acts as service_role."""
    r = bearer(client, pub, LEGACY_SERVICE_ROLE)
    assert r.status_code == 200, r.text
    assert minted(r.json())["role"] == "service_role"
    assert minted(r.json(), "apikey")["role"] == "anon"
    assert LEGACY_SERVICE_ROLE not in r.text


def test_legacy_key_as_apikey_and_bearer(client):
    r = bearer(client, LEGACY_ANON, LEGACY_ANON)
    assert r.status_code == 200 and minted(r.json())["role"] == "anon"
    assert LEGACY_ANON not in r.text  # replaced by a short-lived JWT


# --- user JWTs ----------------------------------------------------------------------------------------


def test_user_jwt_hs256_passes_through(client, pub, sec):
    token = hs256(user_claims(email="a@example.com"))
    for key in (pub, sec):
        r = bearer(client, key, token)
        assert r.status_code == 200, r.text
        echo = r.json()
        assert echo_header(echo, "authorization") == [f"Bearer {token}"]
        assert minted(echo)["email"] == "a@example.com"
        assert minted(echo)["role"] == "authenticated"
        assert minted(echo, "apikey")["role"] == ("anon" if key == pub else "service_role")
    anon_user = hs256(user_claims(role="anon"))
    assert bearer(client, pub, anon_user).json()["verified"]["authorization"]["claims"]["role"] == "anon"


def test_user_jwt_es256_via_the_auth_jwks(client, pub, up):
    token = es256(user_claims(email="es@example.com"), AUTH_USER_JWK)
    r = bearer(client, pub, token, "/storage/v1/object/authenticated/b/o")
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo_header(echo, "authorization") == [f"Bearer {token}"]
    assert echo["verified"]["authorization"]["header"]["kid"] == "auth-user-1"
    assert minted(echo)["email"] == "es@example.com"
    fetched = up.jwks_fetches
    for _ in range(3):  # the JWKS is cached
        assert bearer(client, pub, es256(user_claims(), AUTH_USER_JWK)).status_code == 200
    assert up.jwks_fetches == fetched


def test_user_jwt_to_functions_and_realtime(client, pub):
    token = hs256(user_claims())
    r = bearer(client, pub, token, "/functions/v1/me")
    assert echo_header(r.json(), "authorization") == [f"Bearer {token}"]
    assert minted(r.json(), "sb-api-key")["role"] == "anon"
    r = bearer(client, pub, token, "/realtime/v1/api/broadcast")
    assert echo_header(r.json(), "authorization") == [f"Bearer {token}"]
    assert minted(r.json(), "x-api-key")["role"] == "anon"


# --- minted JWTs -------------------------------------------------------------------------------------


def test_minted_claims(client, sec):
    before = int(time.time())
    r = client.get("/rest/v1/todos", headers={"apikey": sec})
    after = int(time.time())
    [auth] = echo_header(r.json(), "authorization")
    token = auth.removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert "kid" not in header
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert set(claims) == {"iss", "ref", "role", "iat", "exp"}
    assert claims["iss"] == "supabase"
    assert claims["ref"] == REF
    assert claims["role"] == "service_role"
    assert before - TTL / 2 - 1 <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + TTL


def test_minted_token_is_reused(client, pub):
    tokens = set()
    for path in ("/rest/v1/a", "/rest/v1/b", "/functions/v1/c", "/storage/v1/d"):
        echo = client.get(path, headers={"apikey": pub}).json()
        tokens.add(echo_header(echo, "authorization")[0])
        tokens.add("Bearer " + echo_header(echo, "apikey")[0])
    assert len(tokens) == 1


# --- the secret never reaches an upstream, and never comes back --------------------------------------


def test_secret_plaintext_never_reaches_an_upstream(client, gw, up, created, sec, pub):
    paths = ["/rest/v1/todos", "/rest/v1/", "/graphql/v1", "/realtime/v1/api/broadcast", "/functions/v1/f",
             "/auth/v1/user", "/storage/v1/object/b/o", "/pg/tables"]
    for path in paths:
        for how in ("header", "query", "both", "bearer"):
            headers: dict[str, str] = {}
            params: dict[str, str] = {"q": "1"}
            if how in ("header", "both", "bearer"):
                headers["apikey"] = sec
            if how in ("query", "both"):
                params["apikey"] = sec
            if how == "bearer":
                headers["Authorization"] = f"Bearer {sec}"
            r = client.post(path, headers=headers, params=params, content=b"{}")
            assert r.status_code == 200, (path, how, r.text)
            assert sec not in r.text and sec[len("sb_secret_"):] not in r.text
        # functions and storage take the key as bearer alone
    for path in ("/functions/v1/f", "/storage/v1/object/b/o"):
        assert client.get(path, headers={"Authorization": f"Bearer {sec}"}).status_code == 200
    blob = up.received_blob()
    for name, key in created.items():
        assert key.encode() not in blob, name
        assert random_part(key).encode() not in blob, name  # not even the random part


def test_errors_never_echo_a_key(client, sec, pub):
    user = hs256(user_claims(ttl=-1))
    for headers in ({"apikey": sec + "x"}, {"apikey": sec, "User-Agent": BROWSERS["chrome"]},
                    {"apikey": pub, "Authorization": f"Bearer {sec}"}, {"apikey": pub, "Authorization": f"Bearer {user}"},
                    {"apikey": pub}):
        r = client.get("/rest/v1/", headers=headers)
        assert r.status_code == 401
        for value in (sec, pub, user, sec[10:], pub[15:]):
            assert value not in r.text
            assert all(value not in v for v in r.headers.values())
