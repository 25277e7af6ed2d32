"""Realtime frames: the minted JWT in place of an API key sent as a channel's ``access_token``,
and the guard of a relayed connection while it lasts.

The official clients send their API key as the channel token when no user is signed in; the
relay swaps it for a JWT of the connection's own key while that key is admitted (else removes
it), and pushes channels joined that way a fresh JWT every half lifetime. Frames other than
``phx_join``/``access_token`` with an ``sb_`` token pass byte for byte. A connection ends (1008,
with the reason) when its key is refused: deleted, expired, the legacy switch off, restrictions
no longer met (gateway.serve.sockets judges it again after every key change),
and one that never carried a user JWT after ``realtime.max_key_only_seconds`` (section 12).
See docs/decisions.md, "Realtime channel tokens".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import Refusal
from gateway.keys.apikeys import digest
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
                  other: Callable[[str, Any], None] | None = None) -> str:
    """``text`` with an ``sb_`` ``access_token`` replaced by ``token(key)``, or removed when that is
    None; any other frame is returned as it is (the same object). ``joined(topic, join_ref,
    array_format)`` hears of each channel joined with a replaced token, ``other(value, topic)`` of
    an ``access_token`` that is no API key (a JWT) and of the channel it is for."""
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
            other(value, topic)
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


def key_only_limit(seconds: float) -> tuple[int, str]:
    return 1008, f"Public connection limit of {seconds:g} s reached: join with a user access token to stay"


def refused_close(r: Refusal) -> tuple[int, str]:
    """The close of a connection whose key is refused: 1008 and the refusal's fixed message."""
    return 1008, r.spec.message.encode()[:123].decode("utf-8", "ignore")


class ChannelTokens:
    """The guard of one relayed Realtime connection (gateway.serve.websocket.Guard): the filter of
    the client's text frames, the refresher of the channels joined with the key, and the clock of
    the connection's life. ``judge`` (``Gateway.judge``) gives the connection's key as it is now,
    raises the refusal an HTTP request with it would get, or gives None while undecided."""

    def __init__(self, admission: Any, judge: Callable[[Any], Any], auth: Any, key_only_seconds: float | None = None,
                 user: bool = False) -> None:
        self.admission = admission
        self.judge = judge
        self.auth = auth
        self.channels: dict[str, tuple[Any, bool]] = {}  # topic -> (join_ref, array format)
        self.key_only_seconds = key_only_seconds
        self.user = user or key_only_seconds is None  # a user JWT lifts the cap on public connections
        self.opened = time.monotonic()
        self.refused: tuple[int, str] | None = None  # the close, once the key is refused
        self._expires_at: float | None = admission.key.entry.expires_at  # as last judged
        self._checks: dict[str, asyncio.Task[None]] = {}  # user JWT checks under way, by token
        self._wake = asyncio.Event()
        self._renew_at = 0.0  # when the JWT last handed to a channel is due for renewal
        self._joined_one = asyncio.Event()  # set by a join: the refresher waits on it while no channel holds our JWT

    # --- the key, judged again ----------------------------------------------------------------

    def _current(self) -> Any:
        """The key as it is now; None when it is refused (the connection then closes) or undecided."""
        if self.refused is not None:
            return None
        try:
            return self.judge(self.admission)
        except Refusal as r:
            self.refused = refused_close(r)
            self._wake.set()
            return None

    def rejudge(self) -> None:
        """After a key-ring change: close if the key is refused now, re-arm the clock if its expiry moved."""
        current = self._current()
        if current is not None and current.expires_at != self._expires_at:
            self._wake.set()

    def close(self) -> None:
        """The connection ended: the user JWT checks still running are cancelled."""
        for task in list(self._checks.values()):
            task.cancel()

    # --- the client's frames --------------------------------------------------------------------

    def _token(self, key: str) -> str | None:
        if self.admission.key.digest is None or digest(key) != self.admission.key.digest:
            return None  # not the connection's own key: no JWT for it (that would bypass the handshake's checks)
        current = self._current()
        return None if current is None else self._hand_out(current)  # a late join gets a fresh JWT

    def _hand_out(self, current: Any) -> str:
        token = self.auth.minter.token_for(current)
        self._renew_at = current.token_renew_at
        return token

    def _joined(self, topic: str, join_ref: Any, array_format: bool) -> None:
        self.channels[topic] = (join_ref, array_format)
        self._joined_one.set()

    def client_text(self, text: str) -> str | None:
        if self.refused is not None:
            return None  # closing: nothing more reaches Realtime
        if self.channels and '"phx_leave"' in text:
            parsed = _parse(text)
            if parsed is not None and parsed[3] == "phx_leave":
                self.channels.pop(parsed[2], None)
        other = None if self.user and not self.channels else self._other  # None: no frame parsed for it
        return rewrite_frame(text, self._token, self._joined, other)

    def refuse(self, text: str | None, data: bytes | None) -> str | None:
        """A frame the key may not send (gateway.rules.frames): the reply for the client instead."""
        entry = self._current()
        if entry is None or entry.rules is None:
            return None  # refused keys' frames go nowhere anyway (client_text); no rules: every frame
        return refused_send(entry, text, data)

    def _other(self, token: str, topic: Any) -> None:
        """A JWT sent as a channel token: the channel holds the client's own token from now on (ours
        is no longer pushed to it: that would replace a user's JWT with the key's), and if it is a
        user's, the cap on public connections goes."""
        if isinstance(topic, str):
            self.channels.pop(topic, None)
        if self.user:
            return
        if token not in self._checks and len(self._checks) < 4:
            task = self._checks[token] = asyncio.get_running_loop().create_task(self._check_user(token))
            task.add_done_callback(lambda _t: self._checks.pop(token, None))

    async def _check_user(self, token: str) -> None:
        try:
            claims = await self.auth.verifier.verify(token)
        except Exception:  # not a JWT we accept: Realtime will refuse its channel too
            return
        if claims.get("sub") and self.auth.ring.legacy_entry(token) is None:  # not the legacy anon key
            self.user = True
            self._wake.set()

    # --- the connection's life --------------------------------------------------------------------

    async def closing(self) -> tuple[int, str]:
        """Returns (close code, reason) when the gateway ends the connection: its key is refused
        (expired included: the clock wakes the judge then), or the cap on connections without a
        user JWT was reached."""
        while True:
            self._wake.clear()
            current = self._current()
            if self.refused is not None:
                return self.refused
            if current is not None:
                self._expires_at = current.expires_at
            waits = []
            if self._expires_at is not None:  # the judge says when it has passed; wake just after
                waits.append(max(self._expires_at - time.time(), 0.0) + 0.001)
            if not self.user:
                left = self.opened + self.key_only_seconds - time.monotonic()  # type: ignore[operator]
                if left <= 0:
                    return key_only_limit(self.key_only_seconds)  # type: ignore[arg-type]
                waits.append(left)
            try:
                await asyncio.wait_for(self._wake.wait(), min(waits) if waits else None)
            except asyncio.TimeoutError:
                pass

    async def keep_fresh(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Once the JWT the channels hold is due for renewal (half its lifetime), a fresh one for
        each channel joined with the key, while the key is admitted: never for a refused one."""
        while True:
            if not self.channels:
                self._joined_one.clear()
                await self._joined_one.wait()
            await asyncio.sleep(max(self._renew_at - time.time(), 0.0) + 0.01)
            if not self.channels or time.time() < self._renew_at:
                continue
            current = self._current()
            if current is None:  # undecided (its row read again) or refused (closing): look again soon
                await asyncio.sleep(min(0.25, self.auth.minter.ttl / 4))
                continue
            token = self._hand_out(current)
            for topic, (join_ref, array_format) in list(self.channels.items()):
                await send(token_push(topic, join_ref, array_format, token))


def channel_guard(req: Any, decider: Any, auth: Any, key_only_seconds: float | None = None) -> ChannelTokens | None:
    """The guard of a relayed connection (``req``, a Request planned by ``decider``), or None: other
    routes, no key. ``auth`` is the gateway's Authenticator (its key ring, minter and JWT verifier)."""
    if not req.route.channel_tokens:
        return None
    admission = decider.admission(req)
    if admission is None:
        return None
    user = bool(req.grant.claims and req.grant.claims.get("sub"))  # the handshake carried a user JWT
    return ChannelTokens(admission, decider.judge, auth, key_only_seconds, user)
