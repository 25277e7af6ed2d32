"""Realtime frames: the minted JWT in place of an API key sent as a channel's ``access_token``.

With no user signed in, the official clients hand their API key to Realtime as the channel
access token: supabase-js's ``_getAccessToken()`` falls back to ``supabaseKey`` and realtime-js
puts that value in ``phx_join`` payloads and ``access_token`` pushes; realtime-py starts with
``access_token = apikey``. So an ``sb_publishable_...`` or ``sb_secret_...`` key travels inside
WebSocket frames, where the handshake's key check never sees it. Realtime verifies access
tokens as JWTs (recent versions fall back to the connection's own token for an ``sb_`` value),
and a secret key's plaintext must never reach a service (SPEC 6.5). The relay therefore puts the
minted JWT of the key the connection was opened with in place of any ``sb_`` access token: the
channel gets exactly the role the connection's key already has, as recent Realtime would give
it, and no key leaves the gateway.

Frames are left byte for byte as they are unless they are a ``phx_join`` or ``access_token``
message (Phoenix serializer 1.0.0 objects or 2.0.0 arrays) whose ``access_token`` starts with
``sb_``; a cheap substring test skips the JSON parse for every other frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

KEY_PREFIX = "sb_"
EVENTS = ("phx_join", "access_token")


def rewrite_frame(text: str, token: Callable[[], str]) -> str:
    """``text`` with an ``sb_`` ``access_token`` replaced by ``token()``; else ``text`` itself."""
    if '"access_token"' not in text or KEY_PREFIX not in text:
        return text
    try:
        message: Any = json.loads(text)
    except ValueError:
        return text
    if isinstance(message, list) and len(message) == 5:  # [join_ref, ref, topic, event, payload]
        event, payload = message[3], message[4]
    elif isinstance(message, dict):  # {"topic", "event", "payload", "ref", "join_ref"}
        event, payload = message.get("event"), message.get("payload")
    else:
        return text
    if event not in EVENTS or not isinstance(payload, dict):
        return text
    value = payload.get("access_token")
    if not isinstance(value, str) or not value.startswith(KEY_PREFIX):
        return text
    payload["access_token"] = token()
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def frame_rewriter(route: Any, grant: Any, minter: Any) -> Callable[[str], str] | None:
    """The client-to-Realtime text frame filter of a relayed connection, or None (other routes,
    no key). The JWT is minted when a frame needs it, so a late join gets a fresh one."""
    entry = getattr(grant, "entry", None)
    if not getattr(route, "realtime", False) or entry is None:
        return None
    return lambda text: rewrite_frame(text, lambda: minter.token_for(entry))
