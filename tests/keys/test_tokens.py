"""User JWTs signed by the auth service's asymmetric keys: the gateway follows the JWKS that
auth publishes, as keys are rotated in and withdrawn, and keeps what it has when auth is down.
In-process, on the real JwtVerifier, against the auth upstream of the proxy tests."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import Settings
from gateway.keys.tokens import InvalidJwt, JwtVerifier
from tests.factories import AUTH_USER_JWK, ec_private_jwk, es256, public_jwk, user_claims
from tests.upstreams import JWT_SECRET, get_upstreams


@pytest.fixture
def up():
    up = get_upstreams()
    published = list(up.auth_jwks)
    yield up
    up.auth_jwks = published


@pytest.fixture
def verifier(up):
    return JwtVerifier(Settings(jwt={"secret": JWT_SECRET}), up.urls["auth"] + "/.well-known/jwks.json",
                       min_interval=0.0)


async def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidJwt) as e:
        await verifier.verify(token)
    return str(e.value)


@pytest.mark.parametrize("ttl", [10, 300, 3600])
def test_a_minted_jwt_lives_exactly_its_ttl(ttl):
    import jwt

    from gateway.keys.tokens import Minter

    settings = Settings(jwt={"secret": JWT_SECRET, "ttl_seconds": ttl, "issuer": "my-issuer"}, project_ref="abc")
    token = Minter.from_settings(settings).mint({"role": "anon"}, now=1_800_000_000)
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"role": "anon", "iss": "my-issuer", "ref": "abc", "iat": 1_800_000_000,
                      "exp": 1_800_000_000 + ttl}


async def test_jwks_fetched_once_and_cached(verifier, up):
    verifier.min_interval = 10.0
    before = up.jwks_fetches
    for _ in range(5):
        assert (await verifier.verify(es256(user_claims(), AUTH_USER_JWK)))["role"] == "authenticated"
    assert up.jwks_fetches == before + 1
    # An unknown kid fetches again, but not more than once per interval (garbage kids are cheap).
    for _ in range(3):
        assert await refused(verifier, es256(user_claims(), ec_private_jwk("nobody"))) == "JWT signed by an unknown key"
    assert up.jwks_fetches == before + 1


async def test_rotated_in_key_is_picked_up(verifier, up):
    assert await verifier.verify(es256(user_claims(), AUTH_USER_JWK))
    newer = ec_private_jwk("auth-user-2")
    up.auth_jwks = [public_jwk(AUTH_USER_JWK), public_jwk(newer)]
    assert (await verifier.verify(es256(user_claims(), newer)))["role"] == "authenticated"


async def test_withdrawn_key_stops_verifying(verifier, up):
    old_token = es256(user_claims(), AUTH_USER_JWK)
    assert await verifier.verify(old_token)
    newer = ec_private_jwk("auth-user-3")
    up.auth_jwks = [public_jwk(newer)]
    verifier.max_age = 0.0
    # The next token needing the JWKS starts a refresh; the key is gone once it is done.
    await verifier.verify(es256(user_claims(), newer))
    for _ in range(100):
        if "auth-user-1" not in verifier._auth:
            break
        await asyncio.sleep(0.02)
    assert await refused(verifier, es256(user_claims(), AUTH_USER_JWK)) == "JWT signed by an unknown key"
    assert await refused(verifier, old_token) == "JWT signed by an unknown key"  # no longer remembered


async def test_auth_down_keeps_the_keys_we_have(verifier, up):
    assert await verifier.verify(es256(user_claims(), AUTH_USER_JWK))
    verifier.jwks_url = f"http://127.0.0.1:{up.closed_port}/.well-known/jwks.json"
    verifier.max_age = 0.0
    for _ in range(3):
        assert await verifier.verify(es256(user_claims(), AUTH_USER_JWK))
        await asyncio.sleep(0.05)
