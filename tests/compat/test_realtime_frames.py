"""gateway.realtime: which WebSocket frames get the minted JWT in place of an API key.

The frames are the ones realtime-js (serializer 2.0.0, JSON arrays) and realtime-py (1.0.0,
JSON objects) send; the end-to-end proof with the real libraries is in test_supabase_js/py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gateway.realtime import frame_rewriter, rewrite_frame

pytestmark = pytest.mark.compat

PUB = "sb_publishable_AAAAAAAAAAAAAAAAAAAAAA_abcdefgh"
SECRET = "sb_secret_BBBBBBBBBBBBBBBBBBBBBB_abcdefgh"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln"


def minted() -> str:
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
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return JWT

    rewrite_frame(json.dumps([None, "1", "phoenix", "heartbeat", {}]), token)
    assert calls == []
    rewrite_frame(json.dumps(["1", "1", "realtime:r", "phx_join", {"access_token": PUB}]), token)
    assert calls == [1]


def test_rewriter_only_for_realtime_routes_with_a_key() -> None:
    entry = object()
    minter = SimpleNamespace(token_for=lambda e: JWT if e is entry else "wrong")
    realtime = SimpleNamespace(realtime=True)
    assert frame_rewriter(SimpleNamespace(realtime=False), SimpleNamespace(entry=entry), minter) is None
    assert frame_rewriter(realtime, SimpleNamespace(entry=None), minter) is None
    rewrite = frame_rewriter(realtime, SimpleNamespace(entry=entry), minter)
    assert rewrite is not None
    frame = json.dumps(["1", "1", "realtime:r", "phx_join", {"access_token": PUB}])
    assert json.loads(rewrite(frame))[4]["access_token"] == JWT
