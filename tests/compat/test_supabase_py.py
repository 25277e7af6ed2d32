"""supabase-py (``supabase`` from PyPI) through the gateway: keys, a signed-in user, rpc, the Deno
Edge Function, Realtime broadcast (realtime-py), legacy keys, a deleted key.

The library is used as an application uses it (``create_client`` / ``acreate_client`` and their
public API); the rows come from Postgres under Row Level Security, so a wrong role minted by the
gateway shows up as a wrong set of ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, Client, acreate_client, create_client
from supabase_auth.errors import AuthApiError
from supabase_functions.errors import FunctionsHttpError

from tests.compat.conftest import ApiKeys
from tests.compat.stack import (
    ALICE,
    ALICE_ROWS,
    ALL_ROWS,
    ANON_KEY,
    ANON_ROWS,
    BOB,
    SERVICE_ROLE_KEY,
    Stack,
    assert_function_saw,
)
from tests.helpers import Gateway

pytestmark = pytest.mark.compat


def ids(client: Client) -> set[int]:
    return {r["id"] for r in client.table("todos").select("id,title,owner,is_public").order("id").execute().data}


def whoami(client: Client, tag: str = "py") -> dict[str, Any]:
    return client.rpc("whoami", {"tag": tag}).execute().data


def invoke(client: Client) -> dict[str, Any]:
    return client.functions.invoke("whoami", {"body": {"hello": "deno"}, "responseType": "json"})


def test_publishable_key_sees_only_public_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    client = create_client(gateway.url, keys.publishable)
    assert ids(client) == ANON_ROWS
    assert whoami(client) == {"db_role": "anon", "uid": None, "claims_role": "anon",
                              "visible_todos": len(ANON_ROWS), "tag": "py"}
    with pytest.raises(APIError) as refused:
        client.table("todos").insert({"title": "from a key", "is_public": True}).execute()
    assert refused.value.code == "42501"  # anon may not write: Postgres said so
    assert_function_saw(invoke(client), "anon")
    assert {e.role for e in stack.log if e.service == "rest"} == {"anon"}


def test_secret_key_sees_all_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    client = create_client(gateway.url, keys.secret)
    assert ids(client) == ALL_ROWS
    assert whoami(client) == {"db_role": "service_role", "uid": None, "claims_role": "service_role",
                              "visible_todos": len(ALL_ROWS), "tag": "py"}
    (row,) = client.table("todos").insert({"title": "from a key", "is_public": True}).execute().data
    assert row == {"id": 6, "owner": None, "title": "from a key", "is_public": True}
    assert_function_saw(invoke(client), "service_role")
    assert {e.role for e in stack.log if e.service == "rest"} == {"service_role"}


def test_signed_in_user_sees_and_adds_only_own_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    client = create_client(gateway.url, keys.publishable)
    with pytest.raises(AuthApiError) as wrong:
        client.auth.sign_in_with_password({"email": ALICE.email, "password": "not-the-password"})
    assert wrong.value.message == "Invalid login credentials" and wrong.value.status == 400

    session = client.auth.sign_in_with_password({"email": ALICE.email, "password": ALICE.password})
    assert session.user is not None and session.user.id == ALICE.id and session.user.email == ALICE.email
    assert session.session is not None and session.session.token_type == "bearer"
    got = client.auth.get_user()
    assert got is not None and got.user.id == ALICE.id

    assert ids(client) == ALICE_ROWS
    (row,) = client.table("todos").insert({"title": "written by the user"}).execute().data
    assert row == {"id": 6, "owner": ALICE.id, "title": "written by the user", "is_public": False}
    with pytest.raises(APIError) as forged:
        client.table("todos").insert({"title": "forged", "owner": BOB.id}).execute()
    assert forged.value.code == "42501" and "row-level security" in (forged.value.message or "")
    assert ids(client) == ALICE_ROWS | {6}
    assert whoami(client, "user") == {"db_role": "authenticated", "uid": ALICE.id,
                                      "claims_role": "authenticated", "visible_todos": 3, "tag": "user"}
    # the Edge Function gets the user's ES256 JWT, verified against Auth's JWKS in Deno
    assert_function_saw(invoke(client), "authenticated", ALICE.id, key_role="anon")

    rest = [e for e in stack.log if e.service == "rest"]
    assert {(e.role, e.sub) for e in rest} == {("authenticated", ALICE.id)}
    assert all(e.claims and e.claims.get("session_id") for e in rest)

    # another user, another set of rows; alice's new row is not among them
    bob = create_client(gateway.url, keys.publishable)
    bob.auth.sign_in_with_password({"email": BOB.email, "password": BOB.password})
    assert ids(bob) == {3, 4}


# --- Realtime (realtime-py, Phoenix serializer 1.0.0) ------------------------------------------------


def topic() -> str:
    return "room-" + uuid.uuid4().hex[:8]


async def subscribe(client: AsyncClient, name: str) -> tuple[Any, list[Any], asyncio.Queue[Any]]:
    states: list[Any] = []
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    channel = client.channel(name)
    channel.on_broadcast("ping", inbox.put_nowait)
    await channel.subscribe(lambda state, err: states.append((state.value, err)))
    return channel, states, inbox


async def broadcast(receiver: AsyncClient, sender: AsyncClient, name: str) -> dict[str, Any]:
    """``receiver`` listens on ``name``, ``sender`` broadcasts there: what arrived."""
    _, r_states, inbox = await subscribe(receiver, name)
    s_channel, s_states, _ = await subscribe(sender, name)
    await s_channel.send_broadcast("ping", {"n": 1, "from": "supabase-py"})
    message = await asyncio.wait_for(inbox.get(), 5)
    return {"receiver": r_states, "sender": s_states, "message": message}


async def broadcast_with_key(url: str, key: str) -> tuple[dict[str, Any], str]:
    """Two clients on ``key`` meet in a fresh room: what arrived, and the room."""
    receiver, sender = await acreate_client(url, key), await acreate_client(url, key)
    room = topic()
    try:
        return await broadcast(receiver, sender, room), room
    finally:
        await close(receiver, sender)


async def close(*clients: AsyncClient) -> None:
    for c in clients:
        await c.remove_all_channels()
        await c.realtime.close()


@pytest.mark.parametrize("which, role", [("publishable", "anon"), ("secret", "service_role")])
async def test_realtime_broadcast_with_a_key(gateway: Gateway, keys: ApiKeys, stack: Stack, which: str,
                                             role: str) -> None:
    out, room = await broadcast_with_key(gateway.url, getattr(keys, which))
    assert out["receiver"] == out["sender"] == [("SUBSCRIBED", None)]
    assert out["message"]["event"] == "ping"
    assert out["message"]["payload"] == {"n": 1, "from": "supabase-py"}
    joins = [j for j in stack.realtime.joins if j.topic == f"realtime:{room}"]
    # realtime-py sends its key as the join's access_token: Realtime got the minted JWT instead
    assert [(j.role, j.sub, j.vsn, j.connection_role, j.token_from) for j in joins] == [
        (role, None, "1.0.0", role, "access_token")] * 2
    assert stack.realtime.refused == []
    assert not any(t.startswith("sb_") for t in stack.realtime.received_tokens)


async def test_realtime_as_signed_in_user_and_token_updates(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    # signed in before joining: the join carries the user's JWT
    alice = await acreate_client(gateway.url, keys.publishable)
    await alice.auth.sign_in_with_password({"email": ALICE.email, "password": ALICE.password})
    await asyncio.sleep(0.1)  # the client hands the new token to realtime-py in a task
    other = await acreate_client(gateway.url, keys.publishable)
    room = topic()
    try:
        out = await broadcast(alice, other, room)
    finally:
        await close(alice, other)
    assert out["receiver"] == out["sender"] == [("SUBSCRIBED", None)]
    assert out["message"]["payload"] == {"n": 1, "from": "supabase-py"}
    assert {(j.role, j.sub) for j in stack.realtime.joins if j.topic == f"realtime:{room}"} == {
        ("authenticated", ALICE.id), ("anon", None)}

    # joined with the key, then signing in pushes the user's JWT, signing out the key again
    client = await acreate_client(gateway.url, keys.publishable)
    room = topic()
    try:
        await subscribe(client, room)
        await client.auth.sign_in_with_password({"email": ALICE.email, "password": ALICE.password})
        await _until(lambda: len(_updates(stack, room)) >= 1)
        await client.auth.sign_out({"scope": "local"})
        await _until(lambda: len(_updates(stack, room)) >= 2)
    finally:
        await close(client)
    assert _updates(stack, room) == [("authenticated", ALICE.id), ("anon", None)]
    assert stack.realtime.refused == []


def _updates(stack: Stack, room: str) -> list[tuple[str | None, str | None]]:
    return [(u["role"], u["sub"]) for u in stack.realtime.token_updates if u["topic"] == f"realtime:{room}"]


async def _until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


# --- legacy keys, deleted keys ------------------------------------------------------------------------


async def test_legacy_keys_while_enabled(gateway: Gateway, stack: Stack) -> None:
    anon = create_client(gateway.url, ANON_KEY)
    assert ids(anon) == ANON_ROWS
    assert whoami(anon)["db_role"] == "anon"
    assert_function_saw(invoke(anon), "anon")
    service = create_client(gateway.url, SERVICE_ROLE_KEY)
    assert ids(service) == ALL_ROWS
    assert whoami(service)["db_role"] == "service_role"
    assert_function_saw(invoke(service), "service_role")

    for key, role in ((ANON_KEY, "anon"), (SERVICE_ROLE_KEY, "service_role")):
        out, room = await broadcast_with_key(gateway.url, key)
        assert out["message"]["payload"] == {"n": 1, "from": "supabase-py"}
        # the legacy JWT itself is the join's access_token (a JWT: the gateway leaves it alone)
        assert {(j.role, j.token_from) for j in stack.realtime.joins if j.topic == f"realtime:{room}"} == {
            (role, "access_token")}


async def assert_refused(gateway: Gateway, key: str, message: str) -> None:
    client = create_client(gateway.url, key)
    with pytest.raises(APIError) as select:
        client.table("todos").select("*").execute()
    assert select.value.message == message
    with pytest.raises(APIError) as rpc:
        client.rpc("whoami", {"tag": "refused"}).execute()
    assert rpc.value.message == message
    with pytest.raises(FunctionsHttpError) as function:
        invoke(client)
    assert function.value.status == 401
    # Realtime: the WebSocket handshake is refused with the same 401
    rt = await acreate_client(gateway.url, key, AsyncClientOptions(realtime={"max_retries": 1}))
    with pytest.raises(Exception) as handshake:
        await rt.channel(topic()).subscribe()
    assert "401" in str(handshake.value)
    await rt.realtime.close()


async def test_legacy_keys_refused_after_disabling(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    r = gateway.admin("PUT", "/api-keys/legacy", params={"enabled": "false"})
    assert r.status_code == 200, r.text
    try:
        for key in (ANON_KEY, SERVICE_ROLE_KEY):
            await assert_refused(gateway, key, "Legacy API keys are disabled")
        assert stack.realtime.joins == [] and not [e for e in stack.log if e.service == "rest"]
        assert ids(create_client(gateway.url, keys.publishable)) == ANON_ROWS  # new keys unaffected
    finally:
        gateway.admin("PUT", "/api-keys/legacy", params={"enabled": "true"})


async def test_deleting_a_key_closes_its_socket_and_mints_nothing_more(gateway: Gateway, stack: Stack,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Deleting a key closes the sockets it opened (1008 with the reason) within a second, and
    nothing more is minted for it: a channel joined afterwards never reaches Realtime."""
    created = gateway.create_key("publishable", "compat_doomed_socket")
    client = await acreate_client(gateway.url, created["api_key"])
    first, second = topic(), topic()

    def closed() -> bool:
        return any("1008" in r.getMessage() and "Invalid API key" in r.getMessage() for r in caplog.records)

    try:
        await subscribe(client, first)
        while not any(j.topic == f"realtime:{first}" for j in stack.realtime.joins):
            await asyncio.sleep(0.05)
        assert gateway.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
        deadline = time.monotonic() + 1.5
        while not closed():
            assert time.monotonic() < deadline, "the socket of a deleted key is still open"
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):  # realtime-py reconnects: refused (401) with the deleted key
            await subscribe(client, second)
        await asyncio.sleep(0.5)
    finally:
        with contextlib.suppress(Exception):
            await close(client)
    joins = {j.topic: j.token_from for j in stack.realtime.joins}
    assert joins == {f"realtime:{first}": "access_token"}


async def test_deleted_key_fails_with_the_gateways_401(gateway: Gateway, stack: Stack) -> None:
    created = gateway.create_key("secret", "compat_doomed_py")
    key = created["api_key"]
    assert ids(create_client(gateway.url, key)) == ALL_ROWS
    assert gateway.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
    deadline = time.monotonic() + 3
    while httpx.get(gateway.url + "/rest/v1/todos", headers={"apikey": key}).status_code != 401:
        assert time.monotonic() < deadline, "the deleted key is still accepted"
        time.sleep(0.1)
    stack.log.clear()
    await assert_refused(gateway, key, "Invalid API key")
    assert not stack.log and stack.realtime.joins == []
