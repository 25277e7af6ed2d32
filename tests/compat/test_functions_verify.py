"""docs/routing.md, Edge Functions with functions.verify = "required", through the real Deno
runtime: a valid key or a verified user JWT is needed, as hosted verify_jwt, except for the
functions named in functions.open (webhooks), matched exactly on the normalised first segment."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.compat.stack import JWT_SECRET, Stack
from tests.helpers import Gateway, assert_refused, create_database

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def required(stack: Stack, pg_server: str) -> Iterator[Gateway]:
    gw = Gateway({**stack.gateway_env(create_database(pg_server)), "GATEWAY_FUNCTIONS__VERIFY": "required",
                  "GATEWAY_FUNCTIONS__OPEN": json.dumps(["webhook"])}).start()
    try:
        yield gw
    finally:
        gw.stop()


def user_jwt(sub: str = "user-1", secret: str = JWT_SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600},
                      secret, algorithm="HS256")


def call(gw: Gateway, path: str, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/functions/v1/" + path, json={"hello": "deno"}, headers=headers, timeout=30)


def test_a_function_needs_a_key_or_a_user_jwt(required: Gateway) -> None:
    key = required.create_key("publishable")["api_key"]
    assert_refused(call(required, "whoami"), 401, "UNAUTHORIZED_MISSING_API_KEY", "No API key found in request")
    r = call(required, "whoami", apikey=key)
    assert r.status_code == 200 and r.json()["claims"]["role"] == "anon" and r.json()["runtime"].startswith("deno")
    r = call(required, "whoami", Authorization=f"Bearer {user_jwt('alice')}")  # a signed-in user, no key
    assert r.status_code == 200 and r.json()["claims"]["sub"] == "alice"
    forged = user_jwt("mallory", secret="x" * 40)
    assert_refused(call(required, "whoami", Authorization=f"Bearer {forged}"), 401, "UNAUTHORIZED_INVALID_JWT")
    assert_refused(call(required, "whoami", Authorization="Basic dXNlcjpwdw=="), 401, "UNAUTHORIZED_MISSING_API_KEY")


def test_open_functions_are_reached_without_one(required: Gateway) -> None:
    r = call(required, "webhook")
    assert r.status_code == 200 and r.json()["webhook"] is True  # the runtime answered
    assert call(required, "webhook/events").status_code == 200
    for path in ("webhook/../whoami", "webhookx", "%77ebhook/../whoami", "whoami/../webhook/../whoami"):
        r = httpx.post(required.url + "/functions/v1/" + path, json={}, timeout=30)
        assert r.status_code == 401, path  # normalised first: not the open function


def test_optional_stays_as_it_was(gateway: Gateway) -> None:
    r = call(gateway, "webhook")  # the session's gateway: functions.verify = "optional"
    assert r.status_code == 200
    r = call(gateway, "whoami")
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED_NO_AUTH_HEADER"  # refused by the runtime
