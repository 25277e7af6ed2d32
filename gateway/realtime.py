"""Realtime frames: the minted JWT in place of an API key sent as a channel's ``access_token``.

With no user signed in, the official clients hand their API key to Realtime as the channel
access token: supabase-js's ``_getAccessToken()`` falls back to ``supabaseKey`` and realtime-js
puts that value in ``phx_join`` payloads and ``access_token`` pushes; realtime-py starts with
``access_token = apikey``. So an ``sb_publishable_...`` or ``sb_secret_...`` key travels inside
WebSocket frames, where the handshake's key check never sees it. Realtime verifies access
tokens as JWTs (recent versions fall back to the connection's own token for an ``sb_`` value),
and a secret key's plaintext must never reach a service (SPEC 6.5). The relay therefore puts a
freshly minted JWT of the key the connection was opened with in place of that key: the channel
gets exactly the role the connection's key has, as recent Realtime would give it, and no key
leaves the gateway. Only while that key is still valid, though: once it is deleted (or when a
frame holds some other key) the ``access_token`` is removed instead, so Realtime falls back to
the JWT the connection was opened with, which expires (``jwt.ttl_seconds``) — an open socket
cannot keep a deleted key alive by joining again.

Frames are left byte for byte as they are unless they are a ``phx_join`` or ``access_token``
message (Phoenix serializer 1.0.0 objects or 2.0.0 arrays) whose ``access_token`` starts with
``sb_``; a cheap substring test skips the JSON parse for every other frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from gateway.apikeys import hash_key

KEY_PREFIX = "sb_"
EVENTS = ("phx_join", "access_token")


def rewrite_frame(text: str, token: Callable[[str], str | None]) -> str:
    """``text`` with an ``sb_`` ``access_token`` replaced by ``token(key)``, or removed when that is
    None; any other frame is returned as it is (the same object)."""
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
    replacement = token(value)
    if replacement is None:
        del payload["access_token"]
    else:
        payload["access_token"] = replacement
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def frame_rewriter(route: Any, grant: Any, auth: Any) -> Callable[[str], str] | None:
    """The client-to-Realtime text frame filter of a relayed connection, or None (other routes,
    no key). ``auth`` is the gateway's Authenticator (its key ring and minter)."""
    entry = getattr(grant, "entry", None)
    if not getattr(route, "realtime", False) or entry is None:
        return None

    def token(key: str) -> str | None:
        # The key as it is now (deleted: gone; template changed: a new entry with the same id).
        current = auth.ring.by_hash.get(hash_key(key))
        if current is None or current.id != entry.id:
            return None
        return auth.minter.token_for(current)  # minted when needed: a late join gets a fresh JWT

    return lambda text: rewrite_frame(text, token)
