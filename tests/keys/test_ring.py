"""The key ring against races between its reads and the notifications of changes: a read that
began before a key was deleted or changed must not bring the old state back (it would stay until
the next full refresh, 30 s later). In-process, on the real KeyRing, with a store whose reads
we can hold open while notifications arrive."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timezone

from gateway.config import Settings
from gateway.keys.ring import KeyRing
from gateway.keys.store import Legacy
from tests.upstreams import JWT_SECRET


def row(role: str = "service_role") -> dict:
    h = uuid.uuid4().hex[:43].ljust(43, "x")
    return {"id": uuid.uuid4(), "type": "secret", "prefix": "sb_secret_abcdef", "hash": h,
            "secret_jwt_template": {"role": role}}


class HeldStore:
    """Reads see the data as it was when they began, and finish only when released."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.hold = False
        self.released = asyncio.Event()
        self.legacy_answers: list[Legacy] = []

    async def _held(self) -> None:
        if self.hold:
            await self.released.wait()

    @contextlib.asynccontextmanager
    async def ring_rows(self):
        snapshot = list(self.rows.values())
        await self._held()

        async def rows():
            for r in snapshot:
                yield r

        async def packed():  # none: every row comes whole (and is packed by the key table)
            for _ in ():
                yield []

        yield (len(snapshot), None), packed(), rows()

    async def key_fingerprint(self):
        return len(self.rows), None

    async def lookup_hash(self, key_hash: str):
        found = self.rows.get(key_hash)
        await self._held()
        return found

    async def legacy(self) -> Legacy:
        answer = self.legacy_answers.pop(0) if self.legacy_answers else Legacy(True, None)
        await self._held()
        return answer

    async def admin_token_hash(self):
        return None


def notify(ring: KeyRing, **event) -> None:
    ring.heard(event)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def ring_with(store: HeldStore) -> KeyRing:
    return KeyRing(store, Settings(jwt={"secret": JWT_SECRET}))  # type: ignore[arg-type]


async def test_delete_during_a_full_reload_stays_deleted():
    store = HeldStore()
    r = row()
    store.rows[r["hash"]] = r
    ring = ring_with(store)
    await ring.reload()
    assert r["hash"] in ring.by_hash
    store.hold = True
    reload = asyncio.ensure_future(ring.reload())  # reads the table, still with the key
    await settle()
    del store.rows[r["hash"]]
    notify(ring, table="api_keys", op="DELETE", hash=r["hash"])
    assert r["hash"] not in ring.by_hash
    store.released.set()
    await reload
    assert r["hash"] not in ring.by_hash


async def test_delete_during_a_lookup_is_not_cached():
    store = HeldStore()
    r = row()
    store.rows[r["hash"]] = r
    ring = ring_with(store)
    store.hold = True
    lookup = asyncio.ensure_future(ring.fetch(r["hash"]))
    await settle()
    del store.rows[r["hash"]]
    notify(ring, table="api_keys", op="DELETE", hash=r["hash"])
    store.released.set()
    assert await lookup is None
    assert r["hash"] not in ring.by_hash


async def test_change_during_a_full_reload_is_not_undone():
    store = HeldStore()
    r = row("service_role")
    store.rows[r["hash"]] = r
    ring = ring_with(store)
    await ring.reload()
    store.hold = True
    reload = asyncio.ensure_future(ring.reload())  # snapshot: service_role
    await settle()
    store.rows[r["hash"]] = {**r, "secret_jwt_template": {"role": "authenticated"}}
    store.hold = False
    notify(ring, table="api_keys", op="UPDATE", hash=r["hash"])
    await settle()
    assert ring.by_hash[r["hash"]].role == "authenticated"
    store.released.set()
    await reload
    assert ring.by_hash[r["hash"]].role == "authenticated"


async def test_change_during_a_lookup_is_read_again():
    store = HeldStore()
    r = row("service_role")
    store.rows[r["hash"]] = r
    ring = ring_with(store)
    store.hold = True
    lookup = asyncio.ensure_future(ring.fetch(r["hash"]))  # will answer service_role
    await settle()
    store.rows[r["hash"]] = {**r, "secret_jwt_template": {"role": "authenticated"}}
    notify(ring, table="api_keys", op="UPDATE", hash=r["hash"])
    await settle()
    store.hold = False
    store.released.set()
    await lookup
    for _ in range(20):
        await settle()
    assert ring.by_hash[r["hash"]].role == "authenticated"


async def test_key_imported_again_after_delete():
    store = HeldStore()
    r = row()
    ring = ring_with(store)
    notify(ring, table="api_keys", op="DELETE", hash=r["hash"])
    store.rows[r["hash"]] = r
    notify(ring, table="api_keys", op="INSERT", hash=r["hash"])
    await settle()
    assert ring.by_hash[r["hash"]].role == "service_role"
    await ring.reload()
    assert r["hash"] in ring.by_hash


async def test_key_imported_again_while_no_notification_came_is_found_after_a_reload():
    """The DELETE was heard, the import was not (LISTEN was down): the reload that follows the
    reconnect finds the key, and so do later lookups."""
    store = HeldStore()
    r = row()
    ring = ring_with(store)
    notify(ring, table="api_keys", op="DELETE", hash=r["hash"])
    store.rows[r["hash"]] = r  # imported again, unannounced
    await asyncio.sleep(0.01)
    await ring.reload()
    assert r["hash"] in ring.by_hash
    ring.by_hash.pop(r["hash"])
    assert (await ring.fetch(r["hash"])) is not None


async def test_a_notification_is_read_even_when_made_up_keys_spent_the_lookup_budget():
    store = HeldStore()
    r = row("service_role")
    store.rows[r["hash"]] = r
    ring = KeyRing(store, Settings(jwt={"secret": JWT_SECRET}, keys={"miss_lookups_per_second": 1}))  # type: ignore[arg-type]
    await ring.reload()
    for _ in range(5):  # a flood of well-formed keys that do not exist
        await ring.fetch(row()["hash"])
    assert (await ring.fetch(row()["hash"])) is None
    store.rows[r["hash"]] = {**r, "secret_jwt_template": {"role": "authenticated"}}
    notify(ring, table="api_keys", op="UPDATE", hash=r["hash"])
    for _ in range(20):
        await settle()
    assert ring.by_hash[r["hash"]].role == "authenticated"


async def test_an_older_settings_read_does_not_override_a_newer_one():
    store = HeldStore()
    ring = ring_with(store)
    store.hold = True
    store.legacy_answers = [Legacy(True, None), Legacy(False, datetime.now(timezone.utc))]
    older = asyncio.ensure_future(ring.switches.read(store))  # began before legacy was disabled
    await settle()
    store.hold = False
    await ring.switches.read(store)  # the read the notification triggered
    assert ring.switches.legacy.enabled is False
    store.released.set()
    await older
    assert ring.switches.legacy.enabled is False


async def test_periodic_refresh_reloads_only_when_the_table_changed():
    """The safety net: no full reload while nothing changed; a change whose notification was
    missed (here: never sent) is caught by the next refresh."""
    store = HeldStore()
    first = row()
    store.rows[first["hash"]] = first
    ring = ring_with(store)
    await ring.reload()
    calls = 0
    original = store.ring_rows

    def counted():
        nonlocal calls
        calls += 1
        return original()

    store.ring_rows = counted  # type: ignore[method-assign]
    await ring.refresh()
    assert calls == 0
    missed = row()
    store.rows[missed["hash"]] = missed  # no notification
    await ring.refresh()
    assert calls == 1 and missed["hash"] in ring.by_hash


def test_entries_share_claims_of_the_same_template():
    from gateway.keys.entries import entry_from_row

    a, b = entry_from_row(row()), entry_from_row(row())
    assert a.claims is b.claims and a.role == "service_role"
    c = entry_from_row({**row(), "type": "publishable", "secret_jwt_template": None})
    d = entry_from_row({**row(), "type": "publishable", "secret_jwt_template": None})
    assert c.claims is d.claims and c.role == "anon"
    custom = entry_from_row(row("authenticated"))
    assert custom.claims == {"role": "authenticated"} and custom.claims is not a.claims


def test_race_bookkeeping_stays_bounded():
    """Deleted hashes are remembered only as long as a read could still be in flight."""
    from gateway.keys.ring import NEGATIVE_MAX

    ring = ring_with(HeldStore())
    for _ in range(NEGATIVE_MAX + 10):
        notify(ring, table="api_keys", op="DELETE", hash=uuid.uuid4().hex)
    old = list(ring._announced)[:5]
    for h in old:
        ring._announced[h] -= 120  # pretend these were announced two minutes ago
    notify(ring, table="api_keys", op="DELETE", hash=uuid.uuid4().hex)
    assert not set(old) & ring._deleted and not set(old) & ring._announced.keys()
    assert len(ring._deleted) <= NEGATIVE_MAX + 11


async def test_a_full_reload_from_postgres_packs_plain_keys_and_keeps_the_rest_whole(dsn):
    """The database packs the keys with nothing but the defaults; every other key (limits, a
    template, an expiry, a row edited by hand) is read whole; each answers as its row says."""
    from gateway.keys import apikeys, shapes
    from gateway.keys.db import connect, migrate
    from gateway.keys.shapes import CreateApiKeyBody, UpdateApiKeyBody
    from gateway.keys.store import Store

    conn = await connect(dsn)
    await migrate(conn)
    store = await Store.open(dsn, "supabase-self-hosted")
    try:
        async def create(key_type: str, template: dict | None = None, **changes) -> tuple[str, dict]:
            row, key = await store.create_key(shapes.parse(CreateApiKeyBody, type=key_type, name=f"k{uuid.uuid4().hex[:8]}",
                                                           secret_jwt_template=template), actor="test")
            if changes:
                row = await store.update_key(str(row["id"]), shapes.parse(UpdateApiKeyBody, **changes), actor="test")
            return key, row

        plain_pub, plain_sec = await create("publishable"), await create("secret")
        custom = await create("secret", {"role": "authenticated", "app": 1})
        limited = await create("publishable", limits={"per_key": "10/s"})
        expiring = await create("secret", expires_at="2999-01-01T00:00:00Z")
        ruled = await create("publishable", allowed_resources=["todos"], allowed_methods=["GET"])
        quota = await create("secret", quota="100/month")
        empty_template = await create("secret")
        await conn.execute("UPDATE gateway.api_keys SET secret_jwt_template = '{}' WHERE id = $1", empty_template[1]["id"])
        broken = await create("publishable")
        await conn.execute("UPDATE gateway.api_keys SET hash = repeat('*', 43) WHERE id = $1", broken[1]["id"])

        ring = KeyRing(store, Settings(jwt={"secret": JWT_SECRET}))
        await ring.reload()
        table = ring.by_hash
        assert len(table) == 8 and len(table._pinned) == 5  # custom, limited, expiring, ruled, quota

        def found(key: str):
            return table.get_digest(apikeys.digest(key))

        for (key, row), role in [(plain_pub, "anon"), (plain_sec, "service_role"), (custom, "authenticated"),
                                 (limited, "anon"), (expiring, "service_role"), (empty_template, "service_role"),
                                 (ruled, "anon"), (quota, "service_role")]:
            entry = found(key)
            assert (entry.id, entry.type, entry.prefix, entry.role) == (str(row["id"]), row["type"], row["prefix"], role)
        assert found(custom[0]).claims == {"role": "authenticated", "app": 1}
        assert found(limited[0]).per_key is not None and found(plain_pub[0]).per_key is None
        assert found(expiring[0]).expires_at is not None
        assert found(ruled[0]).rules is not None and found(ruled[0]).rules.methods == {"GET", "HEAD"}
        assert found(quota[0]).quota.text == "100/month" and found(quota[0]).rules is None
        assert found(plain_pub[0]).rules is None and found(plain_pub[0]).quota is None
        assert found(broken[0]) is None
        again = found(plain_pub[0])
        await ring.reload()  # nothing changed: the entries in use (their minted JWTs) are kept
        assert found(plain_pub[0]) is again
    finally:
        await store.close()
        await conn.close()
