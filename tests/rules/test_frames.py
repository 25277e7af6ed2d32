"""What a key that may not POST may send over Realtime (gateway.rules.frames): joins, leaves,
heartbeats and tokens pass; broadcasts and presence, as text or binary frames, are answered with
an error reply instead of being forwarded. Pure tables."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gateway.rules.frames import refused_send
from gateway.rules.keyrules import rules_for

READ_ONLY = SimpleNamespace(rules=rules_for(None, ["GET", "HEAD"]))
MAY_SEND = [SimpleNamespace(rules=None), SimpleNamespace(rules=rules_for(None, ["GET", "POST"])),
            SimpleNamespace(rules=rules_for(["todos"], None))]


def binary_push(kind: int, join_ref: str, ref: str, topic: str, event: str, payload: bytes = b"{}") -> bytes:
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode()]
    head = [kind, *(len(f) for f in fields)] + ([0, 1] if kind == 3 else [])
    return bytes(head) + b"".join(fields) + payload


PASSING = [
    '["1","1","realtime:room","phx_join",{"config":{"broadcast":{"self":true},"postgres_changes":[]}}]',
    '["1","2","realtime:room","phx_leave",{}]',
    '[null,"3","phoenix","heartbeat",{}]',
    '["1","4","realtime:room","access_token",{"access_token":"x"}]',
    '{"topic":"realtime:room","event":"phx_join","payload":{},"ref":"1"}',
    '["1","5","realtime:broadcast","phx_join",{"event":"broadcast"}]',  # the word, not the event
    "not json broadcast",
    '["broadcast"]',
    '[1,2,3,{"broadcast":1},5]',  # an event that is no string
    '{"event":["presence"]}',
]
ROOM = "realtime:room"
REFUSED = [
    ('["1","6","realtime:room","broadcast",{"type":"broadcast","event":"x","payload":{}}]', ["1", "6", ROOM]),
    ('["1","7","realtime:room","presence",{"type":"presence","event":"track","payload":{}}]', ["1", "7", ROOM]),
    ('{"topic":"realtime:room","event":"broadcast","payload":{},"ref":"8","join_ref":"1"}', ["1", "8", ROOM]),
    ('{"topic":"realtime:room","event":"presence","payload":{},"ref":"9"}', [None, "9", "realtime:room"]),
    ('["1","10","realtime:room","broadc\\u0061st",{}]', ["1", "10", ROOM]),  # spelled with an escape
    ('{"topic":"realtime:room","event":"pr\\u0065sence","payload":{},"ref":"11"}', [None, "11", ROOM]),
]


@pytest.mark.parametrize("text", PASSING)
def test_listening_passes(text):
    assert refused_send(READ_ONLY, text, None) is None


@pytest.mark.parametrize(("text", "refs"), REFUSED)
def test_sending_is_answered_with_an_error(text, refs):
    reply = json.loads(refused_send(READ_ONLY, text, None))
    if isinstance(reply, list):
        assert reply[:4] == [*refs, "phx_reply"] and reply[4]["status"] == "error"
    else:
        assert [reply["join_ref"], reply["ref"], reply["topic"], reply["event"]] == [*refs, "phx_reply"]
        assert reply["payload"]["status"] == "error"


@pytest.mark.parametrize("kind", [0, 3])
def test_binary_pushes_are_answered_with_an_error(kind):
    reply = json.loads(refused_send(READ_ONLY, None, binary_push(kind, "12", "345", "realtime:café", "broadcast")))
    assert reply[:4] == ["12", "345", "realtime:café", "phx_reply"] and reply[4]["status"] == "error"


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x03\x01\x01", b"\x07abc", b"\x00\x09\x09\x09\x09ab",
                                  bytes([0, 1, 1, 1, 1]) + b"\xff\xfe\xfd\xfc"])
def test_unreadable_binary_frames_are_dropped_without_a_reply(data):
    assert refused_send(READ_ONLY, None, data) == ""


@pytest.mark.parametrize("entry", MAY_SEND)
def test_keys_that_may_post_send_anything(entry):
    for text, _ in REFUSED:
        assert refused_send(entry, text, None) is None
    assert refused_send(entry, None, binary_push(3, "1", "2", "t", "e")) is None
