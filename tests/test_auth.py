"""The request path's performance design, checked by counting (never by timing): for a key the
gateway knows, no database round trip, no JWT signing and exactly one SHA256 per request; a
malformed or badly checksummed key never reaches the database; an unknown one costs at most
one lookup per second. In-process, on the real Authenticator, KeyRing, Minter and JwtVerifier."""

from __future__ import annotations

import pytest

from gateway.auth import Authenticator, Credentials
from gateway.config import Settings
from gateway.errors import Refusal
from gateway.keys import apikeys
from gateway.keys.entries import KeyEntry, legacy_entries
from gateway.keys.ring import KeyRing
from gateway.keys.tokens import JwtVerifier, Minter
from gateway.routes import Policy
from tests.factories import LEGACY_SERVICE_ROLE, hs256, user_claims
from tests.upstreams import JWT_SECRET

REF = "supabase-self-hosted"


class CountingStore:
    """Stands in for the database: counts lookups, knows no key."""

    def __init__(self) -> None:
        self.lookups = 0

    async def lookup_hash(self, key_hash: str):
        self.lookups += 1
        return None


class Counters:
    """SHA256s through the Authenticator's ``digest``, signatures as the Minter counts them."""

    def __init__(self, minter: Minter) -> None:
        self.sha256 = 0
        self.minter = minter
        self.signed_before = minter.signed

    def digest(self, key: str) -> bytes:
        self.sha256 += 1
        return apikeys.digest(key)

    @property
    def signatures(self) -> int:
        return self.minter.signed - self.signed_before

    def reset(self) -> None:
        self.sha256 = 0
        self.signed_before = self.minter.signed


@pytest.fixture
def setup():
    settings = Settings(jwt={"secret": JWT_SECRET}, legacy={"service_role_key": LEGACY_SERVICE_ROLE})
    store = CountingStore()
    ring = KeyRing(store, settings)  # type: ignore[arg-type]
    ring._legacy_by_token = legacy_entries(settings)
    minter = Minter.from_settings(settings)
    counters = Counters(minter)
    auth = Authenticator(ring, minter, JwtVerifier(settings, None), "default", REF, counters.digest)
    return auth, ring, store, counters


def known(ring: KeyRing, key_type: str, role: str) -> str:
    key = apikeys.generate(key_type, REF)  # type: ignore[arg-type]
    ring.by_hash[apikeys.hash_key(key)] = KeyEntry("00000000-0000-0000-0000-000000000001", key_type,
                                                    apikeys.display_prefix(key), role, {"role": role})
    return key


async def check(auth: Authenticator, key: str | None, authorization: str | None = None,
                policy: Policy = Policy.KEY):
    return await auth.check(policy, Credentials([key] if key else [], [], authorization, "curl/8"))


async def test_known_key_one_sha256_no_database_no_signing(setup):
    auth, ring, store, counters = setup
    key = known(ring, "secret", "service_role")
    first = await check(auth, key)  # mints once
    counters.reset()
    for _ in range(50):
        grant = await check(auth, key)
        assert grant.token == first.token
    assert counters.sha256 == 50
    assert counters.signatures == 0
    assert store.lookups == 0


async def test_known_key_with_bearer_of_itself_or_a_user_jwt(setup):
    auth, ring, store, counters = setup
    key = known(ring, "publishable", "anon")
    user = hs256(user_claims())
    await check(auth, key, f"Bearer {key}")
    await check(auth, key, f"Bearer {user}")  # verifies once, then remembered
    counters.reset()
    for _ in range(20):
        assert (await check(auth, key, f"Bearer {key}")).role == "anon"
        assert (await check(auth, key, f"Bearer {user}")).role == "authenticated"
    assert counters.sha256 == 40
    assert counters.signatures == 0
    assert store.lookups == 0


async def test_legacy_key_costs_no_hash(setup):
    auth, ring, store, counters = setup
    await check(auth, LEGACY_SERVICE_ROLE)
    counters.reset()
    for _ in range(10):
        assert (await check(auth, LEGACY_SERVICE_ROLE)).role == "service_role"
    assert counters.sha256 == counters.signatures == store.lookups == 0


async def test_bad_keys_never_reach_the_database(setup):
    auth, ring, store, counters = setup
    good = apikeys.generate("secret", REF)
    for bad in ("sb_secret_x", good[:-1] + ("A" if good[-1] != "A" else "B"), apikeys.generate("secret", "other"),
                "sb_publishable_" + "A" * 22 + "_" + "A" * 8):
        with pytest.raises(Refusal) as e:
            await check(auth, bad)
        assert e.value.status == 401
    assert store.lookups == 0


async def test_unknown_key_looked_up_once_then_remembered(setup):
    auth, ring, store, counters = setup
    unknown = apikeys.generate("publishable", REF)
    for _ in range(20):
        with pytest.raises(Refusal):
            await check(auth, unknown)
    assert store.lookups == 1


async def test_unexpected_error_answers_500_and_logs_no_message(caplog):
    """A bug on the request path: a JSON 500, and a log line that names the error type and where
    it happened but not its message (which could quote a header or a URL with a JWT)."""
    from gateway.serve.asgi import Proxy

    leaked = "sb_secret_" + "must_not_be_logged"

    def broken(key: str) -> bytes:
        raise RuntimeError("token " + leaked)

    settings = Settings(jwt={"secret": JWT_SECRET})
    auth = Authenticator(KeyRing(CountingStore(), settings), Minter.from_settings(settings),  # type: ignore[arg-type]
                         JwtVerifier(settings, None), "default", REF, broken)
    proxy = Proxy(settings, auth)
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/rest/v1/todos", "raw_path": b"/rest/v1/todos",
             "query_string": b"", "headers": [(b"apikey", b"sb_secret_must_not_be_logged")], "client": ("1.2.3.4", 5)}
    with caplog.at_level("INFO"):
        await proxy.http(scope, receive, send)
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"sb-error-code"] == b"INTERNAL_ERROR"
    assert b"must_not" not in sent[1]["body"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "in check" in logged
    assert "must_not_be_logged" not in logged


async def test_a_flood_of_made_up_keys_costs_a_bounded_number_of_lookups(dsn):
    """Well-formed keys with valid checksums anyone can make: each unknown one may cost a
    database lookup, but no more than keys.miss_lookups_per_second (a burst of as many) per
    worker; the rest are refused from memory. Against the real key table."""
    import asyncio
    import time

    from gateway.keys.db import connect, migrate
    from gateway.keys.store import Store

    conn = await connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await Store.open(dsn, REF)
    lookups = 0
    real_lookup = store.lookup_hash

    async def counting(key_hash):
        nonlocal lookups
        lookups += 1
        return await real_lookup(key_hash)

    store.lookup_hash = counting  # type: ignore[method-assign]
    try:
        settings = Settings(jwt={"secret": JWT_SECRET}, keys={"miss_lookups_per_second": 5})
        ring = KeyRing(store, settings)
        auth = Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None), "default", REF)
        started = time.monotonic()
        refused = 0
        for _ in range(500):
            try:
                await check(auth, apikeys.generate("publishable", REF))
            except Refusal as e:
                refused += e.status == 401
        elapsed = time.monotonic() - started
        assert refused == 500
        assert lookups <= 5 + 5 * elapsed + 1
        # A key that exists is still found once the budget has refilled.
        from gateway.keys.shapes import CreateApiKeyBody

        row, key = await store.create_key(CreateApiKeyBody(type="publishable", name="after_flood"), actor="test")
        await asyncio.sleep(0.3)  # the budget refills at 5 a second
        assert (await check(auth, key)).entry.id == str(row["id"])
    finally:
        await store.close()


@pytest.mark.parametrize("policy", [Policy.OPTIONAL, Policy.OPEN])
async def test_without_a_key_a_bearer_counts_as_what_it_is(setup, policy):
    """Where a key is optional, the client's Authorization goes on untouched; the grant says what
    it is, for the limits: a legacy key (its entry), a verified user JWT (its claims), or nothing."""
    from tests.factories import LEGACY_ANON

    auth, ring, store, counters = setup
    settings = Settings(jwt={"secret": JWT_SECRET}, legacy={"anon_key": LEGACY_ANON,
                                                             "service_role_key": LEGACY_SERVICE_ROLE})
    ring._legacy_by_token = legacy_entries(settings)
    user = hs256(user_claims(sub="user-1"))
    grant = await check(auth, None, f"Bearer {user}", policy)
    assert (grant.entry, grant.token, grant.authorization, grant.role) == (None, None, None, "authenticated")
    assert grant.claims["sub"] == "user-1"
    grant = await check(auth, None, f"Bearer {LEGACY_ANON}", policy)
    assert (grant.entry.id, grant.token, grant.authorization, grant.role) == ("anon", None, None, "anon")
    for other in (hs256(user_claims(ttl=-5)), "not-a-jwt-webhook-secret", hs256(user_claims(role="service_role"))):
        grant = await check(auth, None, f"Bearer {other}", policy)  # the service judges it; counted by address
        assert (grant.entry, grant.claims, grant.authorization) == (None, None, None)
    assert (await check(auth, None, None, policy)).entry is None
    assert counters.signatures == 0 and store.lookups == 0


async def test_without_a_key_where_one_or_a_user_is_required(setup):
    auth, ring, store, counters = setup
    with pytest.raises(Refusal) as e:
        await check(auth, None, None, Policy.KEY_OR_USER)
    assert e.value.code == "UNAUTHORIZED_MISSING_API_KEY"
    with pytest.raises(Refusal) as e:
        await check(auth, None, f"Bearer {hs256(user_claims(ttl=-5))}", Policy.KEY_OR_USER)
    assert e.value.code == "UNAUTHORIZED_INVALID_JWT"
    assert (await check(auth, None, f"Bearer {hs256(user_claims())}", Policy.KEY_OR_USER)).role == "authenticated"
