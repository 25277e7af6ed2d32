"""What a key that may not POST may send over a Realtime socket.

Its handshake is a GET, and so are joining channels and hearing what they carry (database
changes, broadcasts, presence): a read-only key listens. Sending is writing, as it is over HTTP
(``POST /realtime/v1/api/broadcast``): a ``broadcast`` or ``presence`` frame (track, untrack) of
such a key is not forwarded, and the client gets the error reply Realtime would give a push it
refuses. Binary frames are pushes with a binary payload (realtime-js sends every broadcast so),
never forwarded either. ``phx_join``, ``phx_leave``, ``access_token`` and heartbeats pass.
"""

from __future__ import annotations

import json
from typing import Any

SENDS = frozenset({"broadcast", "presence"})
REASON = "this API key may not send: broadcast and presence need POST in its allowed_methods"


def _reply(array: bool, join_ref: Any, ref: Any, topic: Any) -> str:
    payload = {"status": "error", "response": {"reason": REASON}}
    if array:
        return json.dumps([join_ref, ref, topic, "phx_reply", payload], separators=(",", ":"))
    return json.dumps({"topic": topic, "event": "phx_reply", "payload": payload, "ref": ref, "join_ref": join_ref},
                      separators=(",", ":"))


def _text(text: str) -> str | None:
    if '"broadcast"' not in text and '"presence"' not in text and "\\" not in text:
        return None  # (an escape could spell either word: such a frame is read in full)
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None  # Realtime refuses it itself
    if isinstance(message, list) and len(message) == 5:
        join_ref, ref, topic, event, _ = message
        return _reply(True, join_ref, ref, topic) if isinstance(event, str) and event in SENDS else None
    if isinstance(message, dict) and isinstance(message.get("event"), str) and message["event"] in SENDS:
        return _reply(False, message.get("join_ref"), message.get("ref"), message.get("topic"))
    return None


_HEADERS = {0: 5, 3: 7}  # kind -> header bytes: kind and field sizes (a user broadcast push: and encoding)


def _binary(data: bytes) -> str:
    """The reply to a binary push (kind 0: push, 3: user broadcast push), or "" when unreadable."""
    start = _HEADERS.get(data[0]) if data else None
    if start is None or len(data) < start:
        return ""
    ends = []
    for size in data[1:4]:  # join_ref, ref, topic
        ends.append(start + size)
        start += size
    if ends[-1] > len(data):
        return ""
    try:
        join_ref, ref, topic = (data[end - size:end].decode("utf-8") for end, size in zip(ends, data[1:4]))
    except UnicodeDecodeError:
        return ""
    return _reply(True, join_ref or None, ref or None, topic)


def refused_send(entry: Any, text: str | None, data: bytes | None) -> str | None:
    """None: the frame may go to Realtime. Else it may not, and this is the reply for the client
    ("": none can be made)."""
    rules = entry.rules
    if rules is None or rules.may_send:
        return None
    if text is not None:
        return _text(text)
    return None if data is None else _binary(data)
