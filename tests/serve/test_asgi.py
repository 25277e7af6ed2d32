"""``gateway.serve.asgi.Proxy`` is a plain ASGI application: driven here by httpx's ASGI transport
(no uvicorn, no listener, no fast path) in front of the real upstream servers, it makes the
same decisions and forwards the same way as ``gateway serve``. The key ring is in memory
(the ``memory_proxy`` fixture)."""

from __future__ import annotations

import httpx
import pytest

BROWSER = {"Origin": "https://app.example.com", "Sec-Fetch-Mode": "cors",
           "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"}


@pytest.fixture
async def app(memory_proxy, up):
    proxy, keys = memory_proxy
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://gateway") as client:
        yield client, keys, up


async def test_a_publishable_key_reaches_postgrest_with_a_minted_anon_jwt(app):
    client, keys, up = app
    r = await client.get("/rest/v1//todos", params={"select": "id"}, headers={"apikey": keys["publishable"]})
    assert r.status_code == 200
    echo = r.json()
    assert echo["service"] == "rest" and echo["path"] == "/todos" and echo["query"] == "select=id"  # slashes merged
    assert echo["verified"]["authorization"]["claims"]["role"] == "anon"
    assert keys["publishable"] not in r.text  # the key itself is not forwarded


async def test_a_body_is_forwarded_whole(app):
    client, keys, _ = app
    body = b"x" * 300_000
    r = await client.post("/rest/v1/todos", content=body, headers={"apikey": keys["secret"]})
    assert r.status_code == 200
    echo = r.json()
    assert echo["body_length"] == len(body) and echo["verified"]["authorization"]["claims"]["role"] == "service_role"


@pytest.mark.parametrize("headers", [{}, {"apikey": "sb_publishable_not-a-real-key"}])
async def test_a_missing_or_unknown_key_is_a_json_401(app, headers):
    client, _, _ = app
    r = await client.get("/rest/v1/todos", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json") and "message" in r.json()


async def test_a_secret_key_from_a_browser_is_refused(app):
    client, keys, up = app
    before = len(up.received)
    r = await client.get("/rest/v1/todos", headers={"apikey": keys["secret"], **BROWSER})
    assert r.status_code == 401
    assert keys["secret"] not in r.text
    assert len(up.received) == before  # nothing reached the upstream


async def test_forbidden_routes_and_health_are_answered_by_the_gateway(app):
    client, keys, _ = app
    assert (await client.get("/health")).status_code == 200
    r = await client.get("/realtime/v1/api//tenants", headers={"apikey": keys["secret"]})
    assert r.status_code == 403 and r.json()["message"] == "Access is forbidden."
