"""``Gateway.judge``: an open connection's key judged again from memory, by the rules an HTTP
request with it would meet now (docs/protection.md): each case of the table names the change and the
refusal it brings, or None. A judgement records no use and mints nothing. In-process, on the
real Gateway, Authenticator and KeyRing, the key's entry swapped as an edit or a reload would."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway import routes
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.decide import Admission, Decider
from gateway.keys import apikeys
from gateway.keys.entries import ANON_CLAIMS, KeyEntry, legacy_entries
from gateway.keys.ring import KeyRing
from gateway.keys.store import Legacy
from gateway.keys.tokens import JwtVerifier, Minter
from gateway.keys.usage import KeyUsage
from gateway.rules.restrictions import restrictions_for
from tests.factories import LEGACY_ANON, LEGACY_SERVICE_ROLE, hs256, user_claims
from tests.upstreams import JWT_SECRET

REF = "supabase-self-hosted"
ID = "00000000-0000-0000-0000-00000000000a"
NOW = 1_900_000_000.0
ORIGIN = "https://app.example.com"
INVALID, EXPIRED, LEGACY_OFF = "UNAUTHORIZED_INVALID_API_KEY", "UNAUTHORIZED_API_KEY_EXPIRED", \
    "UNAUTHORIZED_LEGACY_API_KEY_DISABLED"


class NoStore:
    async def lookup_hash(self, key_hash: str) -> None:
        return None


@pytest.fixture
def gw() -> Decider:
    settings = Settings(jwt={"secret": JWT_SECRET}, key_checksum_ref=REF,
                        legacy={"anon_key": LEGACY_ANON, "service_role_key": LEGACY_SERVICE_ROLE})
    ring = KeyRing(NoStore(), settings)  # type: ignore[arg-type]
    ring._legacy_by_token = legacy_entries(settings)
    return Decider(settings, Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None),
                                           "default", REF))


def with_key(gw: Decider, **fields) -> tuple[str, KeyEntry]:
    key = apikeys.generate("publishable", REF)
    entry = KeyEntry(ID, "publishable", apikeys.display_prefix(key), "anon", ANON_CLAIMS, **fields)
    gw.auth.ring.by_hash[apikeys.hash_key(key)] = entry
    return key, entry


async def admitted(gw: Decider, key: str, *extra: tuple[bytes, bytes], query: bool = False) -> Admission:
    """A Realtime handshake from 127.0.0.1 with ``Origin: ORIGIN`` admitted with ``key``."""
    headers = [(b"origin", ORIGIN.encode()), *extra] + ([] if query else [(b"apikey", key.encode())])
    req = gw.request("WEBSOCKET", "/realtime/v1/websocket", b"apikey=" + key.encode() if query else b"vsn=2.0.0",
                     headers, "127.0.0.1", False, None, websocket=True)
    assert gw.route(req, ws=True) is None and req.route is routes.REALTIME
    req.grant = await gw.grant(req)
    a = gw.admission(req)
    assert a is not None
    return a


def edit(**fields):
    """The key's row edited: a new entry in the ring (as a refetch or a reload puts it)."""
    def change(gw: Decider, key: str, entry: KeyEntry) -> None:
        gw.auth.ring.by_hash[apikeys.hash_key(key)] = replace(entry, **fields)
    return change


def deleted(gw: Decider, key: str, entry: KeyEntry) -> None:
    gw.auth.ring.by_hash.pop(apikeys.hash_key(key))


def another_key(gw: Decider, key: str, entry: KeyEntry) -> None:
    gw.auth.ring.by_hash[apikeys.hash_key(key)] = replace(entry, id="00000000-0000-0000-0000-00000000000b")


def legacy_off(gw: Decider, key: str, entry: KeyEntry) -> None:
    gw.auth.ring.switches.legacy = Legacy(False, None)


def nothing(gw: Decider, key: str, entry: KeyEntry) -> None:
    pass


TABLE = [
    ("unchanged", nothing, None),
    ("deleted", deleted, INVALID),
    ("its hash now another key's", another_key, INVALID),
    ("renamed (a new entry, same key)", edit(prefix="sb_publishable_zzzzzz"), None),
    ("expiry set ahead", edit(expires_at=NOW + 1), None),
    ("expiry set to now", edit(expires_at=NOW), EXPIRED),
    ("expiry set in the past", edit(expires_at=NOW - 3600), EXPIRED),
    ("origins still allow it", edit(restrictions=restrictions_for([ORIGIN], None, None)), None),
    ("origins no longer allow it", edit(restrictions=restrictions_for(["https://b.example"], None, None)),
     "FORBIDDEN_ORIGIN"),
    ("IPs still allow it", edit(restrictions=restrictions_for(None, ["127.0.0.0/8"], None)), None),
    ("IPs no longer allow it", edit(restrictions=restrictions_for(None, ["10.0.0.0/8"], None)), "FORBIDDEN_IP"),
    ("services still allow realtime", edit(restrictions=restrictions_for(None, None, ["realtime"])), None),
    ("services no longer allow realtime", edit(restrictions=restrictions_for(None, None, ["rest", "storage"])),
     "FORBIDDEN_SERVICE"),
    ("legacy keys disabled (not a legacy key)", legacy_off, None),
]


@pytest.mark.parametrize("name, change, refused", TABLE, ids=[t[0] for t in TABLE])
async def test_an_sb_key_judged_again(gw: Decider, name: str, change, refused: str | None) -> None:
    key, entry = with_key(gw)
    a = await admitted(gw, key)
    assert gw.refusal_now(a, NOW) is None
    change(gw, key, entry)
    r = gw.refusal_now(a, NOW)
    assert (r.code if r else None) == refused
    if r is not None:
        assert r.spec.message and key not in r.spec.message  # the close reason: fixed wording, no key


@pytest.mark.parametrize("name, token, extra, change, refused", [
    ("legacy anon key, legacy on", LEGACY_ANON, (), nothing, None),
    ("legacy anon key, legacy off", LEGACY_ANON, (), legacy_off, LEGACY_OFF),
    ("sb_ key with the legacy service_role key as bearer, legacy off", None,
     ((b"authorization", b"Bearer " + LEGACY_SERVICE_ROLE.encode()),), legacy_off, LEGACY_OFF),
    ("sb_ key with a user JWT, key deleted", None,
     ((b"authorization", b"Bearer " + hs256(user_claims(sub="u-1")).encode()),), deleted, INVALID),
    ("sb_ key in the query, key deleted", "query", (), deleted, INVALID),
])
async def test_legacy_keys_bearers_and_users_judged_again(gw: Decider, name, token, extra, change, refused) -> None:
    key, entry = with_key(gw)
    a = await admitted(gw, key if token in (None, "query") else token, *extra, query=token == "query")
    assert gw.refusal_now(a, NOW) is None
    change(gw, key, entry)
    r = gw.refusal_now(a, NOW)
    assert (r.code if r else None) == refused


async def test_a_judgement_records_no_use_and_mints_nothing(gw: Decider) -> None:
    key, entry = with_key(gw, expires_at=NOW + 60)
    a = await admitted(gw, key)
    usage = gw.auth.ring.usage = KeyUsage()
    signed = gw.auth.minter.signed
    entry.token_renew_at = 0.0  # due for a new JWT: a judgement must still not sign one
    assert gw.judge(a, NOW) is entry
    edit(expires_at=NOW - 1)(gw, key, entry)
    assert gw.refusal_now(a, NOW) is not None
    assert gw.auth.minter.signed == signed and usage.used == {} and usage.counts == {}


async def test_the_admission_holds_the_keys_digest_never_its_plaintext(gw: Decider) -> None:
    key, _ = with_key(gw)
    a = await admitted(gw, key)
    assert a.key.digest == apikeys.digest(key) and a.key.legacy_bearer is False
    assert key not in repr(a) and key.encode() not in repr(a).encode()
    legacy = await admitted(gw, LEGACY_ANON)
    assert legacy.key.digest is None and LEGACY_ANON not in repr(legacy)
