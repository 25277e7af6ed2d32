"""Realtime frames: the minted JWT in place of an API key sent as a channel's ``access_token``.

The official clients send their API key as the channel token when no user is signed in; the
relay swaps it for a JWT of the connection's own key while that key is valid (else removes it),
and pushes channels joined that way a fresh JWT every half lifetime. Frames other than
``phx_join``/``access_token`` with an ``sb_`` token pass byte for byte. A connection ends when
its key expires, and one that never carried a user JWT after ``realtime.max_key_only_seconds``
(SPEC section 12). See the README's "Realtime channel tokens".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.keys.apikeys import hash_key
from gateway.rules.frames import refused_send

KEY_PREFIX = "sb_"
EVENTS = ("phx_join", "access_token")


def _parse(text: str) -> tuple[Any, Any, Any, Any, Any] | None:
    """``(message, join_ref, topic, event, payload)`` of a Phoenix text frame, or None."""
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, list) and len(message) == 5:  # [join_ref, ref, topic, event, payload]
        return message, message[0], message[2], message[3], message[4]
    if isinstance(message, dict):  # {"topic", "event", "payload", "ref", "join_ref"}
        return (message, message.get("join_ref", message.get("ref")), message.get("topic"),
                message.get("event"), message.get("payload"))
    return None


def rewrite_frame(text: str, token: Callable[[str], str | None],
                  joined: Callable[[str, Any, bool], None] | None = None,
                  other: Callable[[str], None] | None = None) -> str:
    """``text`` with an ``sb_`` ``access_token`` replaced by ``token(key)``, or removed when that is
    None; any other frame is returned as it is (the same object). ``joined(topic, join_ref,
    array_format)`` hears of each channel joined with a replaced token, ``other(value)`` of an
    ``access_token`` that is no API key (a JWT)."""
    if '"access_token"' not in text or (other is None and KEY_PREFIX not in text):
        return text
    parsed = _parse(text)
    if parsed is None:
        return text
    message, join_ref, topic, event, payload = parsed
    if event not in EVENTS or not isinstance(payload, dict):
        return text
    value = payload.get("access_token")
    if not isinstance(value, str):
        return text
    if not value.startswith(KEY_PREFIX):
        if other is not None and value:
            other(value)
        return text
    replacement = token(value)
    if replacement is None:
        del payload["access_token"]
    else:
        payload["access_token"] = replacement
        if event == "phx_join" and joined is not None and isinstance(topic, str):
            joined(topic, join_ref, isinstance(message, list))
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def token_push(topic: str, join_ref: Any, array_format: bool, token: str) -> str:
    """An ``access_token`` message for a joined channel, in the serializer the client uses."""
    payload = {"access_token": token}
    if array_format:
        return json.dumps([join_ref, None, topic, "access_token", payload], separators=(",", ":"))
    return json.dumps({"topic": topic, "event": "access_token", "payload": payload, "ref": None,
                       "join_ref": join_ref}, separators=(",", ":"))


KEY_EXPIRED = (1008, "API key expired")


def key_only_limit(seconds: float) -> tuple[int, str]:
    return 1008, f"Public connection limit of {seconds:g} s reached: join with a user access token to stay"


class ChannelTokens:
    """The client-to-Realtime filter of one relayed connection, the refresher of the channels it
    joined with a replaced key, and the clock of its lifetime."""

    def __init__(self, entry: Any, auth: Any, key_only_seconds: float | None = None, user: bool = False) -> None:
        self.entry = entry
        self.auth = auth
        self.key_hash: str | None = None  # of the connection's key, once a frame carried it
        self.channels: dict[str, tuple[Any, bool]] = {}  # topic -> (join_ref, array format)
        self.key_only_seconds = key_only_seconds
        self.user = user or key_only_seconds is None  # a user JWT lifts the cap on public connections
        self.opened = time.monotonic()
        self._checking: set[str] = set()
        self._wake = asyncio.Event()

    def _current(self, key_hash: str | None) -> Any:
        """The connection's key as it is now (deleted: None; template changed: the new entry)."""
        current = None if key_hash is None else self.auth.ring.by_hash.get(key_hash)
        return current if current is not None and current.id == self.entry.id else None

    def _token(self, key: str) -> str | None:
        key_hash = hash_key(key)
        current = self._current(key_hash)
        if current is None:
            return None
        self.key_hash = key_hash
        return self.auth.minter.token_for(current)  # minted when needed: a late join gets a fresh JWT

    def _joined(self, topic: str, join_ref: Any, array_format: bool) -> None:
        self.channels[topic] = (join_ref, array_format)

    def __call__(self, text: str) -> str:
        if self.channels and '"phx_leave"' in text:
            parsed = _parse(text)
            if parsed is not None and parsed[3] == "phx_leave":
                self.channels.pop(parsed[2], None)
        return rewrite_frame(text, self._token, self._joined, None if self.user else self._other)

    def refuse(self, text: str | None, data: bytes | None) -> str | None:
        """A frame the key may not send (gateway.rules.frames): the reply for the client instead."""
        return refused_send(self._current(self.key_hash) or self.entry, text, data)

    def _other(self, token: str) -> None:
        """A JWT sent as a channel token: if it is a user's, the cap on public connections goes."""
        if token not in self._checking and len(self._checking) < 4:
            self._checking.add(token)
            asyncio.get_running_loop().create_task(self._check_user(token))

    async def _check_user(self, token: str) -> None:
        try:
            claims = await self.auth.verifier.verify(token)
        except Exception:  # not a JWT we accept: Realtime will refuse its channel too
            return
        finally:
            self._checking.discard(token)
        if claims.get("sub") and self.auth.ring.legacy_entry(token) is None:  # not the legacy anon key
            self.user = True
            self._wake.set()

    async def closing(self) -> tuple[int, str]:
        """Returns (close code, reason) when the gateway ends the connection: its key expired, or
        the cap on connections without a user JWT was reached."""
        while True:
            waits = []
            entry = self._current(self.key_hash) or self.entry
            if entry.expires_at is not None:
                left = entry.expires_at - time.time()
                if left <= 0:
                    return KEY_EXPIRED
                waits.append(left)
            if not self.user:
                left = self.opened + self.key_only_seconds - time.monotonic()  # type: ignore[operator]
                if left <= 0:
                    return key_only_limit(self.key_only_seconds)  # type: ignore[arg-type]
                waits.append(left)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(waits) if waits else None)
            except asyncio.TimeoutError:
                pass

    async def keep_fresh(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Every half token lifetime, a fresh JWT for each channel joined with the key, while the
        key is valid (a deleted key's channels are left to expire)."""
        while True:
            await asyncio.sleep(self.auth.minter.ttl / 2)
            current = self._current(self.key_hash)
            if current is None or not self.channels:
                continue
            token = self.auth.minter.token_for(current)
            for topic, (join_ref, array_format) in list(self.channels.items()):
                await send(token_push(topic, join_ref, array_format, token))


def frame_rewriter(route: Any, grant: Any, auth: Any, key_only_seconds: float | None = None) -> ChannelTokens | None:
    """The client-to-Realtime text frame filter of a relayed connection, or None (other routes,
    no key). ``auth`` is the gateway's Authenticator (its key ring, minter and JWT verifier)."""
    if not route.channel_tokens or grant.entry is None:
        return None
    user = bool(grant.claims and grant.claims.get("sub"))  # the handshake carried a user JWT
    return ChannelTokens(grant.entry, auth, key_only_seconds, user)
