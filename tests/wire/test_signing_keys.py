"""``jwt.signing_keys``: minted JWTs signed ES256 or RS256 with the first key and its ``kid``,
verified by the upstreams with the public half only (as Supabase services configured with the
project's JWKS do); user JWTs keep working alongside (HS256 with ``jwt.secret``, ES256 from
the auth service's JWKS)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from websockets.sync.client import connect

from tests.factories import (
    AUTH_USER_JWK,
    GATEWAY_RSA_SIGNING_JWK,
    GATEWAY_SIGNING_JWK,
    LEGACY_ANON,
    LEGACY_SERVICE_ROLE,
    ec_private_jwk,
    es256,
    hs256,
    public_jwk,
    user_claims,
)
from tests.upstreams import JWT_SECRET, echo_header

KEYS = {"ES256": GATEWAY_SIGNING_JWK, "RS256": GATEWAY_RSA_SIGNING_JWK}


@pytest.fixture(scope="module", params=sorted(KEYS))
def alg(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def gw(gateways, alg):
    spare = ec_private_jwk("spare-not-signing")  # only the first key signs
    return gateways(GATEWAY_JWT__SIGNING_KEYS=json.dumps([KEYS[alg], spare]), GATEWAY_JWT__TTL_SECONDS="600",
                    GATEWAY_JWT__ISSUER="https://gw.example/auth/v1")


@pytest.fixture(scope="module")
def keys(gw) -> dict[str, str]:
    return {t: gw.create_key(t, name=f"sk_{t}")["api_key"] for t in ("publishable", "secret")}


def test_minted_jwt_is_signed_with_the_first_signing_key(client, keys, alg):
    for key_type, role in (("publishable", "anon"), ("secret", "service_role")):
        before = int(time.time())
        r = client.get("/rest/v1/todos", headers={"apikey": keys[key_type]})
        assert r.status_code == 200, r.text  # the upstream verified it with the public key
        echo = r.json()
        verified = echo["verified"]["authorization"]
        assert verified["header"]["alg"] == alg
        assert verified["header"]["kid"] == KEYS[alg]["kid"]
        claims = verified["claims"]
        assert claims["role"] == role
        assert claims["iss"] == "https://gw.example/auth/v1"
        assert claims["ref"] == "default"
        assert claims["exp"] == claims["iat"] + 600
        assert before - 301 <= claims["iat"] <= int(time.time())
        token = echo_header(echo, "authorization")[0].removeprefix("Bearer ")
        # Verifiable with the public JWK alone; not with the legacy secret.
        public = jwt.PyJWK(public_jwk(KEYS[alg]), algorithm=alg)
        assert jwt.decode(token, public.key, algorithms=[alg], options={"verify_aud": False})["role"] == role
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def test_every_service_gets_the_asymmetric_jwt(client, keys, alg):
    for path, where in (("/functions/v1/f", "sb-api-key"), ("/realtime/v1/api/x", "x-api-key"),
                        ("/storage/v1/object/b/o", "apikey"), ("/auth/v1/user", "apikey")):
        r = client.get(path, headers={"apikey": keys["publishable"]})
        assert r.status_code == 200, r.text
        assert r.json()["verified"][where]["header"]["alg"] == alg


def test_legacy_keys_get_a_jwt_signed_like_themselves(client, keys):
    """HS256 with jwt.secret: what verifies the legacy key verifies its JWT, even where a service
    knows only JWT_SECRET (as a self-hosted stack whose JWKS lines are still commented out)."""
    for legacy, role in ((LEGACY_ANON, "anon"), (LEGACY_SERVICE_ROLE, "service_role")):
        r = client.get("/rest/v1/todos", headers={"apikey": legacy})
        assert r.status_code == 200, r.text
        echo = r.json()
        verified = echo["verified"]["authorization"]
        assert (verified["header"]["alg"], verified["claims"]["role"]) == ("HS256", role)
        assert "kid" not in verified["header"]
        token = echo_header(echo, "authorization")[0].removeprefix("Bearer ")
        assert token != legacy  # minted, short-lived: not the 5-year key itself
        assert jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_aud": False})["role"] == role
    # an opaque key's JWT on the same request as a legacy bearer stays asymmetric
    r = client.get("/rest/v1/todos", headers={"apikey": keys["publishable"],
                                              "Authorization": f"Bearer {LEGACY_SERVICE_ROLE}"})
    verified = r.json()["verified"]
    assert verified["authorization"]["header"]["alg"] == "HS256"
    assert verified["authorization"]["claims"]["role"] == "service_role"
    assert verified["apikey"]["header"]["alg"] != "HS256"


def test_websocket_gets_the_asymmetric_jwt(gw, keys, alg):
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={keys['publishable']}&vsn=1.0.0",
                 open_timeout=10) as conn:
        conn.send("info")
        seen = json.loads(conn.recv(timeout=10))
    for where in ("x-api-key", "query_apikey"):
        assert seen["verified"][where]["header"] == {"alg": alg, "kid": KEYS[alg]["kid"], "typ": "JWT"}


def test_user_jwts_still_verify(client, keys):
    for token in (hs256(user_claims()), es256(user_claims(), AUTH_USER_JWK)):
        r = client.get("/rest/v1/todos", headers={"apikey": keys["publishable"], "Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert echo_header(r.json(), "authorization") == [f"Bearer {token}"]
    forged = es256(user_claims(), ec_private_jwk(KEYS["ES256"]["kid"]))  # our kid, someone else's key
    r = client.get("/rest/v1/todos", headers={"apikey": keys["publishable"], "Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.headers["sb-error-code"] == "UNAUTHORIZED_INVALID_JWT"
