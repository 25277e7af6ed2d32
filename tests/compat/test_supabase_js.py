"""supabase-js (run by Node) through the gateway: keys, a signed-in user, rpc, the Deno Edge
Function, Realtime broadcast (realtime-js), legacy keys, a deleted key (and its open channel).

Each scenario is one run of ``client.mjs`` that uses the library as an application does; the
row sets come from Postgres under Row Level Security, so a wrong role minted by the gateway
shows up as a wrong set of ids.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.compat.conftest import ApiKeys
from tests.compat.node import run_js
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
from tests.upstreams import within

pytestmark = pytest.mark.compat


def ids(result: dict) -> set[int]:
    assert result["error"] is None, result
    return set(result["ids"])


def topic() -> str:
    return "room-" + uuid.uuid4().hex[:8]


def assert_invoke_saw(invoke: dict, role: str, sub: str | None = None, key_role: str | None = None) -> None:
    assert invoke["error"] is None, invoke
    assert_function_saw(invoke["data"], role, sub, key_role)


def test_publishable_key_sees_only_public_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    out = run_js(gateway.url, "key", keys.publishable)
    assert ids(out["select"]) == ANON_ROWS
    assert out["rpc"]["data"] == {"db_role": "anon", "uid": None, "claims_role": "anon",
                                  "visible_todos": len(ANON_ROWS), "tag": "js"}
    # anon may not write: Postgres refuses, PostgREST answers 401 with the SQL state
    assert out["insert"]["status"] == 401 and out["insert"]["error"]["code"] == "42501"
    assert_invoke_saw(out["invoke"], "anon")
    assert {e.role for e in stack.log if e.service == "rest"} == {"anon"}


def test_secret_key_sees_all_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    out = run_js(gateway.url, "key", keys.secret)
    assert ids(out["select"]) == ALL_ROWS
    assert out["rpc"]["data"] == {"db_role": "service_role", "uid": None, "claims_role": "service_role",
                                  "visible_todos": len(ALL_ROWS), "tag": "js"}
    assert out["insert"]["status"] == 201 and out["insert"]["data"][0]["title"] == "from a key"
    assert_invoke_saw(out["invoke"], "service_role")
    assert {e.role for e in stack.log if e.service == "rest"} == {"service_role"}


def test_signed_in_user_sees_and_adds_only_own_rows(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    out = run_js(gateway.url, "user", keys.publishable, email=ALICE.email, password=ALICE.password,
                 other_owner=BOB.id)
    assert out["signin"] == {"user_id": ALICE.id, "email": ALICE.email, "token_type": "bearer",
                             "has_access_token": True, "error": None}
    assert out["get_user"] == {"id": ALICE.id, "error": None}
    assert ids(out["before"]) == ALICE_ROWS
    (row,) = out["insert_own"]["data"]
    assert out["insert_own"]["status"] == 201
    assert row == {"id": 6, "owner": ALICE.id, "title": "written by the user", "is_public": False}
    assert out["insert_other"]["status"] == 403
    assert out["insert_other"]["error"]["code"] == "42501"
    assert "row-level security" in out["insert_other"]["error"]["message"]
    assert ids(out["after"]) == ALICE_ROWS | {6}
    assert out["rpc"]["data"] == {"db_role": "authenticated", "uid": ALICE.id, "claims_role": "authenticated",
                                  "visible_todos": 3, "tag": "user"}
    # the Edge Function gets the user's ES256 JWT, verified against Auth's JWKS in Deno
    assert_invoke_saw(out["invoke"], "authenticated", ALICE.id, key_role="anon")
    assert out["wrong_password"]["status"] == 400
    assert out["wrong_password"]["message"] == "Invalid login credentials"
    rest = [e for e in stack.log if e.service == "rest"]
    assert {(e.role, e.sub) for e in rest} == {("authenticated", ALICE.id)}
    assert all(e.claims and e.claims.get("session_id") for e in rest)


def test_bob_does_not_see_alices_rows(gateway: Gateway, keys: ApiKeys) -> None:
    out = run_js(gateway.url, "user", keys.publishable, email=BOB.email, password=BOB.password,
                 other_owner=ALICE.id)
    assert ids(out["before"]) == {3, 4}
    assert ids(out["after"]) == {3, 4, 6}
    assert out["insert_other"]["status"] == 403


@pytest.mark.parametrize("which, role", [("publishable", "anon"), ("secret", "service_role")])
def test_realtime_broadcast_with_a_key(gateway: Gateway, keys: ApiKeys, stack: Stack, which: str, role: str) -> None:
    room = topic()
    out = run_js(gateway.url, "realtime", getattr(keys, which), topic=room)
    assert out["lobby"]["status"] == "SUBSCRIBED"
    assert out["receiver"] == {"status": "SUBSCRIBED", "error": None}
    assert out["sender"] == {"status": "SUBSCRIBED", "error": None}
    assert out["sent"] == "ok"
    assert out["message"] == {"type": "broadcast", "event": "ping", "payload": {"n": 1, "from": "supabase-js"}}
    assert out["heartbeats"] == ["ok", "sent"]  # heartbeats on topic "phoenix", answered through the gateway
    joins = [j for j in stack.realtime.joins if j.topic == f"realtime:{room}"]
    assert len(joins) == 2 and {(j.role, j.sub, j.vsn, j.connection_role) for j in joins} == {
        (role, None, "2.0.0", role)}
    # realtime-js sent its sb_ key as the join's access_token; Realtime got the minted JWT instead
    assert "access_token" in {j.token_from for j in joins}
    assert stack.realtime.refused == []
    assert not any(t.startswith("sb_") for t in stack.realtime.received_tokens)


def test_realtime_as_signed_in_user_and_token_updates(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    room = topic()
    out = run_js(gateway.url, "realtime", keys.publishable, topic=room, email=ALICE.email,
                 password=ALICE.password)
    assert out["message"]["payload"] == {"n": 1, "from": "supabase-js"}
    roles = {(j.role, j.sub) for j in stack.realtime.joins if j.topic == f"realtime:{room}"}
    assert roles == {("authenticated", ALICE.id), ("anon", None)}  # receiver signed in, sender not

    # joined as anon, then signing in pushes the user's JWT, signing out the key again
    room = topic()
    stack.realtime.token_updates.clear()
    out = run_js(gateway.url, "realtime", keys.publishable, topic=room, email=ALICE.email,
                 password=ALICE.password, sign_in_after_join=True)
    assert out["message"]["payload"] == {"n": 1, "from": "supabase-js"}
    assert out["signin"]["user_id"] == ALICE.id
    updates = [(u["role"], u["sub"]) for u in stack.realtime.token_updates if u["topic"] == f"realtime:{room}"]
    assert updates == [("authenticated", ALICE.id), ("anon", None)]
    assert stack.realtime.refused == []


def test_legacy_keys_while_enabled(gateway: Gateway, stack: Stack) -> None:
    anon = run_js(gateway.url, "key", ANON_KEY)
    assert ids(anon["select"]) == ANON_ROWS
    assert anon["rpc"]["data"]["db_role"] == "anon"
    assert_invoke_saw(anon["invoke"], "anon")
    service = run_js(gateway.url, "key", SERVICE_ROLE_KEY)
    assert ids(service["select"]) == ALL_ROWS
    assert service["rpc"]["data"]["db_role"] == "service_role"
    assert_invoke_saw(service["invoke"], "service_role")
    for key, role in ((ANON_KEY, "anon"), (SERVICE_ROLE_KEY, "service_role")):
        room = topic()
        rt = run_js(gateway.url, "realtime", key, topic=room)
        assert rt["message"]["payload"] == {"n": 1, "from": "supabase-js"}
        assert {j.role for j in stack.realtime.joins if j.topic == f"realtime:{room}"} == {role}


def test_legacy_keys_refused_after_disabling(gateway: Gateway, keys: ApiKeys, stack: Stack) -> None:
    r = gateway.admin("PUT", "/api-keys/legacy", params={"enabled": "false"})
    assert r.status_code == 200, r.text
    try:
        for key in (ANON_KEY, SERVICE_ROLE_KEY):
            out = run_js(gateway.url, "refused", key, topic=topic())
            assert out["select"]["status"] == 401
            assert out["select"]["ids"] is None
            assert out["select"]["error"]["message"] == "Legacy API keys are disabled"
            assert out["rpc"]["error"]["message"] == "Legacy API keys are disabled"
            assert out["invoke"]["status"] == 401
            assert out["invoke"]["message"] == "Legacy API keys are disabled"
            assert out["realtime"]["status"] == "CHANNEL_ERROR"  # the handshake got the 401
        assert not [e for e in stack.log if e.service == "rest"] and stack.realtime.joins == []
        # the new keys are unaffected
        assert ids(run_js(gateway.url, "key", keys.publishable)["select"]) == ANON_ROWS
    finally:
        gateway.admin("PUT", "/api-keys/legacy", params={"enabled": "true"})


def test_deleted_key_fails_with_the_gateways_401(gateway: Gateway, stack: Stack) -> None:
    created = gateway.create_key("secret", "compat_doomed_js")
    key = created["api_key"]
    assert ids(run_js(gateway.url, "key", key)["select"]) == ALL_ROWS
    assert gateway.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
    _wait_refused(gateway, key)
    stack.log.clear()
    out = run_js(gateway.url, "refused", key, topic=topic())
    assert out["select"]["status"] == 401 and out["select"]["ids"] is None
    assert out["select"]["error"]["message"] == "Invalid API key"
    assert out["select"]["error"]["hint"] == "Double check your API key."
    assert out["rpc"]["error"]["message"] == "Invalid API key"
    assert out["invoke"]["status"] == 401 and out["invoke"]["message"] == "Invalid API key"
    assert out["realtime"]["status"] == "CHANNEL_ERROR"
    assert not stack.log and stack.realtime.joins == []  # nothing reached a service


def test_a_deleted_keys_realtime_channel_is_closed(gateway: Gateway, stack: Stack) -> None:
    """realtime-js holding a channel joined with a key: deleting the key closes its socket within a
    second, with 1008 and the reason realtime-js's logger shows (docs/protection.md)."""
    created = gateway.create_key("publishable", "compat_doomed_socket")
    room = topic()
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(run_js, gateway.url, "held", created["api_key"], topic=room, wait_ms=5000)
        within(30, lambda: any(j.topic == f"realtime:{room}" for j in stack.realtime.joins) or held.done())
        deleted_at = time.time()
        assert gateway.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
        out = held.result(timeout=60)
    assert out["joined"]["status"] == "SUBSCRIBED"
    assert out["closes"], out
    first = out["closes"][0]
    assert (first["code"], first["reason"]) == (1008, "Invalid API key")
    assert first["at"] / 1000 - deleted_at < 1.0


def _wait_refused(gateway: Gateway, key: str, within: float = 3.0) -> None:
    """Deletion reaches the request path within a second (docs/requests.md); don't race it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if httpx.get(gateway.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 401:
            return
        time.sleep(0.1)
    raise AssertionError("the deleted key is still accepted")
