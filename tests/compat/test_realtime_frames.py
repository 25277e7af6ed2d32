"""gateway.serve.realtime: which WebSocket frames get the minted JWT in place of an API key, and
the guard of a connection whose key is refused while it is open (closed, nothing minted).

The frames are the ones realtime-js (serializer 2.0.0, JSON arrays) and realtime-py (1.0.0,
JSON objects) send; the end-to-end proof with the real libraries is in test_supabase_js/py.
The judge itself (``Gateway.judge``) is tested in tests/test_judge.py; here it is a stand-in.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from gateway import errors, routes
from gateway.auth import Grant, KeyHold
from gateway.keys.apikeys import digest
from gateway.keys.entries import KeyEntry
from gateway.serve.realtime import ChannelTokens, channel_guard, rewrite_frame

pytestmark = pytest.mark.compat

PUB = "sb_publishable_AAAAAAAAAAAAAAAAAAAAAA_abcdefgh"
SECRET = "sb_secret_BBBBBBBBBBBBBBBBBBBBBB_abcdefgh"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln"


def k1(expires_at: float | None = None) -> KeyEntry:
    """The connection's key, as the ring holds it (a new object each time: a changed row)."""
    return KeyEntry("k1", "publishable", PUB[:22], "anon", {"role": "anon"}, expires_at=expires_at)


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


class Key:
    """The connection's key as the judge finds it: an entry, a refusal (an ErrorSpec), or None
    (undecided: its row is being read again)."""

    def __init__(self, state: object) -> None:
        self.state = state
        self.judged = 0

    def judge(self, admission: object) -> object:
        self.judged += 1
        if isinstance(self.state, errors.ErrorSpec):
            raise self.state()
        return self.state


class Minter:
    """gateway.keys.tokens.Minter's ``token_for``: the entry's JWT, renewed once half of ``ttl`` has passed."""

    ttl = 0.1

    def token_for(self, entry) -> str:
        if time.time() >= entry.token_renew_at:
            entry.token_renew_at = time.time() + self.ttl / 2
        return f"jwt-of-{entry.id}"


def guarded(key: str = PUB, entry: object = None, user: bool = False, cap: float | None = None):
    """A guard of a connection opened with ``key`` (its entry ``k1``), the judge's stand-in, the sends."""
    entry = entry or k1()
    state = Key(entry)
    admission = SimpleNamespace(key=KeyHold(entry, digest(key)))  # type: ignore[arg-type]
    auth = SimpleNamespace(minter=Minter(), ring=SimpleNamespace(legacy_entry=lambda token: None))
    return ChannelTokens(admission, state.judge, auth, cap, user), state


def _join(key: str, ref: str = "1") -> str:
    return json.dumps([ref, ref, "realtime:r", "phx_join", {"access_token": key}])


def test_a_guard_only_for_realtime_routes_with_a_key() -> None:
    entry = k1()
    held = SimpleNamespace(key=KeyHold(entry, digest(PUB)))  # type: ignore[arg-type]
    gateway = SimpleNamespace(admission=lambda x: None if x.grant.entry is None else held, judge=lambda a: entry)
    auth = SimpleNamespace(minter=SimpleNamespace(token_for=lambda e: f"jwt-of-{e.id}"))
    with_key = Grant(entry, None, None, "anon")  # type: ignore[arg-type]
    assert channel_guard(SimpleNamespace(route=routes.REST, grant=with_key), gateway, auth) is None
    assert channel_guard(SimpleNamespace(route=routes.REALTIME, grant=Grant(None, None, None, "anon")), gateway,
                         auth) is None
    guard = channel_guard(SimpleNamespace(route=routes.REALTIME, grant=with_key), gateway, auth)
    assert guard is not None
    assert json.loads(guard.client_text(_join(PUB)))[4] == {"access_token": "jwt-of-k1"}


def test_only_the_connections_own_key_while_admitted_gets_a_jwt() -> None:
    guard, key = guarded()
    # another valid key in a frame: no JWT of its own (that would bypass the handshake's checks)
    assert json.loads(guard.client_text(_join(SECRET)))[4] == {}
    # the key's template changed: a new entry, same id, minted anew
    key.state = k1()
    assert json.loads(guard.client_text(_join(PUB)))[4] == {"access_token": "jwt-of-k1"}
    # its row being read again after a change: nothing minted, the connection stays
    key.state = None
    assert json.loads(guard.client_text(_join(PUB)))[4] == {}
    assert guard.refused is None


@pytest.mark.parametrize("refusal", [errors.INVALID_API_KEY, errors.API_KEY_EXPIRED, errors.LEGACY_KEYS_DISABLED,
                                     errors.FORBIDDEN_ORIGIN, errors.FORBIDDEN_IP, errors.FORBIDDEN_SERVICE])
async def test_a_refused_key_gets_nothing_minted_and_its_connection_closes(refusal: errors.ErrorSpec) -> None:
    guard, key = guarded(cap=3600)
    closing = asyncio.ensure_future(guard.closing())
    await asyncio.sleep(0.01)
    assert not closing.done()
    key.state = refusal
    # a join that arrives before the change reached the registry: judged as it is handled
    assert json.loads(guard.client_text(_join(PUB)))[4] == {}
    assert guard.refused == (1008, refusal.message)
    assert guard.client_text(_join(PUB, "2")) is None  # closing: nothing more is relayed
    assert await asyncio.wait_for(closing, 1) == (1008, refusal.message)
    assert PUB not in refusal.message and len(refusal.message.encode()) <= 123


async def test_a_key_change_wakes_the_clock_and_closes_at_the_new_expiry() -> None:
    import time

    guard, key = guarded()
    closing = asyncio.ensure_future(guard.closing())
    await asyncio.sleep(0.01)
    key.state = k1(expires_at=time.time() + 0.2)  # PATCHed: expires soon
    guard.rejudge()  # the registry, after the key-ring change
    await asyncio.sleep(0.1)
    assert not closing.done()
    key.state = errors.API_KEY_EXPIRED  # the judge, once the time has passed
    assert await asyncio.wait_for(closing, 1) == (1008, "API key expired")


async def test_the_registry_judging_a_refused_key_closes_the_connection() -> None:
    guard, key = guarded()
    closing = asyncio.ensure_future(guard.closing())
    await asyncio.sleep(0.01)
    guard.rejudge()
    await asyncio.sleep(0.01)
    assert not closing.done()  # still admitted: stays open
    key.state = errors.FORBIDDEN_SERVICE
    guard.rejudge()
    assert await asyncio.wait_for(closing, 1) == (1008, "Service not allowed for this API key")


async def test_channels_joined_with_the_key_get_fresh_tokens_pushed() -> None:
    """Realtime closes a channel whose token expired; a client whose token is its key never
    sends a newer one, so the relay does, in the client's serializer, while the key is admitted."""
    tokens, key = guarded()  # pushes every 0.05 s
    tokens.client_text(json.dumps(["4", "4", "realtime:v2", "phx_join", {"access_token": PUB}]))
    tokens.client_text(json.dumps({"topic": "realtime:v1", "event": "phx_join", "ref": "7", "join_ref": "7",
                                   "payload": {"access_token": PUB}}))
    tokens.client_text(json.dumps(["9", "9", "realtime:user", "phx_join", {"access_token": JWT}]))  # a user's own JWT
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
    # left channels are no longer refreshed
    tokens.client_text(json.dumps(["4", "5", "realtime:v2", "phx_leave", {}]))
    sent.clear()
    await asyncio.sleep(0.08)
    assert sent and not any("realtime:v2" in s for s in sent)
    # undecided (the key's row read again): nothing pushed meanwhile, then pushes again
    key.state = None
    await asyncio.sleep(0.06)
    sent.clear()
    await asyncio.sleep(0.12)
    assert sent == []
    key.state = k1()
    await asyncio.sleep(0.12)
    assert sent
    # refused: never another push
    key.state = errors.API_KEY_EXPIRED
    await asyncio.sleep(0.06)
    sent.clear()
    await asyncio.sleep(0.12)
    task.cancel()
    assert sent == []


async def test_a_push_is_always_a_newer_token_than_the_channel_holds() -> None:
    """A channel joined while the refresher sleeps gets its push when its own token is due, and
    the push is a newer token (pushing the one it holds would let it expire)."""
    tokens, _ = guarded()
    signed: list[float] = []

    def token_for(entry) -> str:
        if time.time() >= entry.token_renew_at:
            signed.append(time.time())
            entry.token_renew_at = time.time() + 0.05
        return f"jwt-{len(signed)}"

    tokens.auth.minter.token_for = token_for
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text)[4]["access_token"])

    task = asyncio.ensure_future(tokens.keep_fresh(send))
    await asyncio.sleep(0.03)  # the refresher is asleep; the join's token is signed now
    held = json.loads(tokens.client_text(_join(PUB)))[4]["access_token"]
    await asyncio.sleep(0.2)
    task.cancel()
    assert held == "jwt-1" and sent[:3] == ["jwt-2", "jwt-3", "jwt-4"]  # each one new, none repeated


async def test_a_channel_given_the_users_jwt_is_no_longer_refreshed_with_the_keys() -> None:
    """supabase-js's setAuth after a sign-in sends each channel an ``access_token`` with the user's
    JWT: from then on the channel is the user's, and the key's JWT pushed to it would downgrade it."""
    tokens, _ = guarded(user=True)  # on a connection with a user JWT too
    tokens.client_text(_join(PUB, "1").replace("realtime:r", "realtime:a"))
    tokens.client_text(_join(PUB, "2").replace("realtime:r", "realtime:b"))
    assert tokens.client_text(json.dumps(["1", "3", "realtime:a", "access_token", {"access_token": JWT}])) is not None
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    task = asyncio.ensure_future(tokens.keep_fresh(send))
    await asyncio.sleep(0.15)
    task.cancel()
    assert sent and all("realtime:b" in s for s in sent)  # never realtime:a again
    assert list(tokens.channels) == ["realtime:b"]


async def test_user_jwt_checks_end_with_the_connection() -> None:
    guard, _ = guarded(cap=3600)
    started = asyncio.Event()

    async def verify(token: str) -> dict:
        started.set()
        await asyncio.sleep(3600)
        return {}

    guard.auth.verifier = SimpleNamespace(verify=verify)
    guard.client_text(_join(JWT))
    await asyncio.wait_for(started.wait(), 1)
    (task,) = guard._checks.values()
    guard.close()
    await asyncio.sleep(0)
    assert task.cancelled() or task.done()
    await asyncio.sleep(0)
    assert guard._checks == {}
