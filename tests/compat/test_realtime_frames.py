"""gateway.serve.realtime: which WebSocket frames get the minted JWT in place of an API key.

The frames are the ones realtime-js (serializer 2.0.0, JSON arrays) and realtime-py (1.0.0,
JSON objects) send; the end-to-end proof with the real libraries is in test_supabase_js/py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gateway import routes
from gateway.auth import Grant
from gateway.keys.apikeys import hash_key
from gateway.serve.realtime import frame_rewriter, rewrite_frame

pytestmark = pytest.mark.compat

PUB = "sb_publishable_AAAAAAAAAAAAAAAAAAAAAA_abcdefgh"
SECRET = "sb_secret_BBBBBBBBBBBBBBBBBBBBBB_abcdefgh"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln"


def minted(key: str) -> str:
    return JWT


def test_join_v2_array_gets_the_minted_jwt() -> None:
    frame = json.dumps(["3", "3", "realtime:room", "phx_join",
                        {"config": {"broadcast": {"self": False}}, "access_token": PUB}])
    out = json.loads(rewrite_frame(frame, minted))
    assert out == ["3", "3", "realtime:room", "phx_join",
                   {"config": {"broadcast": {"self": False}}, "access_token": JWT}]


def test_join_v1_object_and_access_token_push_get_the_minted_jwt() -> None:
    join = json.dumps({"topic": "realtime:room", "event": "phx_join", "ref": "1", "join_ref": "1",
                       "payload": {"config": {}, "access_token": SECRET}})
    assert json.loads(rewrite_frame(join, minted))["payload"]["access_token"] == JWT
    push = json.dumps(["1", "5", "realtime:room", "access_token", {"access_token": PUB}])
    assert json.loads(rewrite_frame(push, minted))[4] == {"access_token": JWT}


@pytest.mark.parametrize("frame", [
    # a user's JWT, or a legacy key (a JWT), is the client's to send
    json.dumps(["1", "1", "realtime:room", "phx_join", {"config": {}, "access_token": JWT}]),
    # other events, even when they mention a key-like string
    json.dumps(["1", "2", "realtime:room", "broadcast",
                {"type": "broadcast", "event": "x", "payload": {"access_token": PUB}}]),
    json.dumps([None, "3", "phoenix", "heartbeat", {}]),
    # a join without a token (Realtime then uses the connection's token)
    json.dumps(["1", "1", "realtime:room", "phx_join", {"config": {}}]),
    "not json sb_ \"access_token\"",
    json.dumps({"event": "phx_join", "payload": ["access_token", PUB]}),
])
def test_other_frames_pass_unchanged(frame: str) -> None:
    assert rewrite_frame(frame, minted) is frame


def test_the_token_is_minted_only_when_a_frame_needs_it() -> None:
    calls: list[str] = []

    def token(key: str) -> str:
        calls.append(key)
        return JWT

    rewrite_frame(json.dumps([None, "1", "phoenix", "heartbeat", {}]), token)
    assert calls == []
    rewrite_frame(json.dumps(["1", "1", "realtime:r", "phx_join", {"access_token": PUB}]), token)
    assert calls == [PUB]


def test_no_token_removes_the_key() -> None:
    join = json.dumps(["1", "1", "realtime:r", "phx_join", {"config": {}, "access_token": PUB}])
    assert json.loads(rewrite_frame(join, lambda key: None))[4] == {"config": {}}
    push = json.dumps({"topic": "realtime:r", "event": "access_token", "payload": {"access_token": SECRET},
                       "ref": None})
    assert json.loads(rewrite_frame(push, lambda key: None))["payload"] == {}


def _auth(*entries: tuple[str, object]) -> SimpleNamespace:
    ring = SimpleNamespace(by_hash={hash_key(key): entry for key, entry in entries})
    return SimpleNamespace(ring=ring, minter=SimpleNamespace(token_for=lambda e: f"jwt-of-{e.id}"))


def _join(key: str) -> str:
    return json.dumps(["1", "1", "realtime:r", "phx_join", {"access_token": key}])


def test_rewriter_only_for_realtime_routes_with_a_key() -> None:
    entry = SimpleNamespace(id="k1")
    auth = _auth((PUB, entry))
    realtime = routes.REALTIME
    assert frame_rewriter(routes.REST, Grant(entry, None, None, "anon"), auth) is None
    assert frame_rewriter(realtime, Grant(None, None, None, "anon"), auth) is None
    rewrite = frame_rewriter(realtime, Grant(entry, None, None, "anon"), auth)
    assert rewrite is not None
    assert json.loads(rewrite(_join(PUB)))[4] == {"access_token": "jwt-of-k1"}


def test_rewriter_mints_only_for_the_connections_key_while_it_is_valid() -> None:
    entry = SimpleNamespace(id="k1")
    auth = _auth((PUB, entry), (SECRET, SimpleNamespace(id="k2")))
    rewrite = frame_rewriter(routes.REALTIME, Grant(entry, None, None, "anon"), auth)
    assert rewrite is not None
    # another valid key in a frame: no JWT of its own (that would bypass the handshake's checks)
    assert json.loads(rewrite(_join(SECRET)))[4] == {}
    # the key's template changed: a new entry, same id, minted anew
    auth.ring.by_hash[hash_key(PUB)] = SimpleNamespace(id="k1", changed=True)
    assert json.loads(rewrite(_join(PUB)))[4] == {"access_token": "jwt-of-k1"}
    # deleted while the socket is open: nothing fresh is minted for it any more
    del auth.ring.by_hash[hash_key(PUB)]
    assert json.loads(rewrite(_join(PUB)))[4] == {}


async def test_channels_joined_with_the_key_get_fresh_tokens_pushed() -> None:
    """Realtime closes a channel whose token expired; a client whose token is its key never
    sends a newer one, so the relay does, in the client's serializer, until the key is gone."""
    import asyncio

    entry = SimpleNamespace(id="k1")
    auth = _auth((PUB, entry))
    auth.minter.ttl = 0.1  # pushes every 0.05 s
    tokens = frame_rewriter(routes.REALTIME, Grant(entry, None, None, "anon"), auth)
    assert tokens is not None
    tokens(json.dumps(["4", "4", "realtime:v2", "phx_join", {"access_token": PUB}]))
    tokens(json.dumps({"topic": "realtime:v1", "event": "phx_join", "ref": "7", "join_ref": "7",
                       "payload": {"access_token": PUB}}))
    tokens(json.dumps(["9", "9", "realtime:user", "phx_join", {"access_token": JWT}]))  # a user's own JWT
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    task = asyncio.ensure_future(tokens.keep_fresh(send))
    await asyncio.sleep(0.08)
    pushed = [json.loads(s) for s in sent]
    assert ["4", None, "realtime:v2", "access_token", {"access_token": "jwt-of-k1"}] in pushed
    assert {"topic": "realtime:v1", "event": "access_token", "payload": {"access_token": "jwt-of-k1"},
            "ref": None, "join_ref": "7"} in pushed
    assert not any("realtime:user" in s for s in sent)  # not joined with the key: not ours to refresh
    # left channels are no longer refreshed; a deleted key's channels are left to expire
    tokens(json.dumps(["4", "5", "realtime:v2", "phx_leave", {}]))
    sent.clear()
    await asyncio.sleep(0.08)
    assert sent and not any("realtime:v2" in s for s in sent)
    del auth.ring.by_hash[hash_key(PUB)]
    await asyncio.sleep(0.06)
    sent.clear()
    await asyncio.sleep(0.12)
    task.cancel()
    assert sent == []
