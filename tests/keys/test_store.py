"""The key store against a real PostgreSQL (docs/requests.md): hashes only, final deletes, the
legacy switch, the audit log, first-start keys."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime

import asyncpg
import pytest

from gateway.keys import apikeys, shapes
from gateway.keys.checks import InvalidInput
from gateway.keys.db import connect, migrate
from gateway.keys.shapes import DEFAULT_TEMPLATE, CreateApiKeyBody, UpdateApiKeyBody
from gateway.keys.store import NotFound, Store
from tests.factories import nested_template

REF = "supabase-self-hosted"


def new(key_type: str, name: str, description: str | None = None, template: dict | None = None) -> CreateApiKeyBody:
    return shapes.parse(CreateApiKeyBody, type=key_type, name=name, description=description,
                        secret_jwt_template=template)


def changes(fields: dict) -> UpdateApiKeyBody:
    return shapes.parse(UpdateApiKeyBody, **fields)


async def open_store(dsn: str) -> Store:
    conn = await connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await Store.open(dsn, REF)


@pytest.fixture
async def store(dsn):
    s = await open_store(dsn)
    yield s
    await s.close()


async def dump_database(dsn: str) -> str:
    """Every column of every row of every table, in every schema (catalogs included), as text."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'm')")
        assert len(tables) > 50  # the catalogs are in there too
        parts = []
        for t in tables:
            ident = f'"{t["nspname"]}"."{t["relname"]}"'
            parts.append(await conn.fetchval(f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {ident} t"))
        return "\n".join(parts)
    finally:
        await conn.close()


def secret_part(key: str) -> str:
    """What follows the display prefix: never stored anywhere."""
    return key[len(apikeys.display_prefix(key)):]


async def audit(store: Store) -> list[asyncpg.Record]:
    return list(reversed(await store.audit_log(1000)))


# --- create, list, get ------------------------------------------------------------------------


async def test_create_publishable(store):
    row, key = await store.create_key(new("publishable", "web_app", description="the web app"), actor="t")
    assert apikeys.parse(key, REF) == "publishable"
    assert isinstance(row["id"], uuid.UUID)
    assert (row["type"], row["name"], row["description"]) == ("publishable", "web_app", "the web app")
    assert row["prefix"] == apikeys.display_prefix(key)
    assert row["hash"] == apikeys.hash_key(key)
    assert row["secret_jwt_template"] is None
    assert isinstance(row["inserted_at"], datetime) and row["updated_at"] == row["inserted_at"]
    assert row["last_used_at"] is None


async def test_create_secret_with_default_and_custom_template(store):
    row, key = await store.create_key(new("secret", "backend"), actor="t")
    assert apikeys.parse(key, REF) == "secret"
    assert row["secret_jwt_template"] == DEFAULT_TEMPLATE == {"role": "service_role"}
    template = {"role": "reporting", "app_metadata": {"tier": "gold"}}
    row, _ = await store.create_key(new("secret", "reports", template=template), actor="t")
    assert row["secret_jwt_template"] == template


async def test_list_and_get(store):
    a, _ = await store.create_key(new("publishable", "first"), actor="t")
    b, _ = await store.create_key(new("secret", "second"), actor="t")
    assert [r["id"] for r in await store.list_keys()] == [a["id"], b["id"]]
    assert (await store.get_key(str(a["id"])))["name"] == "first"
    assert (await store.get_key(b["id"]))["name"] == "second"
    assert (await store.lookup_hash(b["hash"]))["id"] == b["id"]
    assert await store.lookup_hash(apikeys.hash_key("sb_secret_unknown")) is None
    assert await store.count_keys() == 2


@pytest.mark.parametrize("bad_id", ["6f1c1d2e-0b7a-4c3e-9d52-3a1f0e8b7c64", "not-a-uuid", "", "anon", "1' OR '1'='1"])
async def test_unknown_or_malformed_id(store, bad_id):
    with pytest.raises(NotFound):
        await store.get_key(bad_id)
    with pytest.raises(NotFound):
        await store.update_key(bad_id, changes({"name": "abcd"}), actor="t")
    with pytest.raises(NotFound):
        await store.delete_key(bad_id, actor="t")


# --- what the store checks itself (the request models' rules are in test_shapes) ----------------


async def test_the_deepest_template_allowed_is_stored(store):
    row, _ = await store.create_key(new("secret", "abcd", template=nested_template(16)), actor="t")
    assert (await store.get_key(row["id"]))["secret_jwt_template"] == nested_template(16)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udcff", "x" * 1025])
async def test_a_deletion_reason_postgres_cannot_hold_deletes_nothing(store, text):
    row, _ = await store.create_key(new("publishable", "abcd"), actor="t")
    with pytest.raises(InvalidInput) as info:
        await store.delete_key(str(row["id"]), actor="t", reason=text)
    assert info.value.field == "reason"
    assert (await store.get_key(row["id"]))["id"] == row["id"]  # not deleted
    assert len(await audit(store)) == 1
    await store.delete_key(str(row["id"]), actor="t", reason="emoji are fine \U0001f600")


async def test_publishable_keys_take_no_template_later_either(store):
    row, _ = await store.create_key(new("publishable", "abcd"), actor="t")
    with pytest.raises(InvalidInput) as info:
        await store.update_key(str(row["id"]), changes({"secret_jwt_template": {"role": "anon"}}), actor="t")
    assert info.value.field == "secret_jwt_template"
    assert (await store.get_key(row["id"]))["updated_at"] == row["updated_at"]
    assert len(await audit(store)) == 1


# --- update -----------------------------------------------------------------------------------


async def test_update_name_description_template(store):
    row, key = await store.create_key(new("secret", "before", description="old"), actor="t")
    await asyncio.sleep(0.01)
    updated = await store.update_key(str(row["id"]), changes({"name": "after", "description": None,
                                                              "secret_jwt_template": {"role": "authenticated"}}),
                                     actor="t")
    assert (updated["name"], updated["description"], updated["secret_jwt_template"]) == \
        ("after", None, {"role": "authenticated"})
    assert updated["updated_at"] > row["updated_at"] and updated["inserted_at"] == row["inserted_at"]
    assert (updated["hash"], updated["prefix"]) == (row["hash"], row["prefix"])
    assert (await store.get_key(row["id"]))["name"] == "after"
    # nothing to change: nothing changes
    same = await store.update_key(str(row["id"]), changes({}), actor="t")
    assert same["updated_at"] == updated["updated_at"]


# --- delete -----------------------------------------------------------------------------------


async def test_delete_is_final(store, dsn):
    row, key = await store.create_key(new("secret", "doomed"), actor="t")
    keep, _ = await store.create_key(new("secret", "stays"), actor="t")
    deleted = await store.delete_key(str(row["id"]), actor="t", was_compromised=True, reason="leaked in a repo")
    assert deleted["id"] == row["id"]
    with pytest.raises(NotFound):
        await store.get_key(row["id"])
    assert await store.lookup_hash(row["hash"]) is None
    with pytest.raises(NotFound):
        await store.delete_key(str(row["id"]), actor="t")
    with pytest.raises(NotFound):
        await store.update_key(str(row["id"]), changes({"name": "revived"}), actor="t")
    assert [r["id"] for r in await store.list_keys()] == [keep["id"]]
    dump = await dump_database(dsn)
    assert row["hash"] not in dump  # the hash is gone: nothing can ever match it again
    assert keep["hash"] in dump


# --- no plaintext anywhere --------------------------------------------------------------------


async def test_no_secret_plaintext_in_any_table_and_publishable_keys_only_in_their_column(store, dsn):
    secrets_: list[str] = []
    publishable: list[str] = []
    (created, token) = await store.bootstrap(need_admin_token=True)
    for r, k in created:
        (publishable if r["type"] == "publishable" else secrets_).append(k)
    for key_type, into in (("publishable", publishable), ("secret", secrets_)):
        row, key = await store.create_key(new(key_type, f"made_{key_type}", description="d"), actor="t")
        into.append(key)
        await store.update_key(str(row["id"]), changes({"name": f"renamed_{key_type}"}), actor="t")
    imported = apikeys.generate("secret", REF)
    row, key = await store.create_key(new("secret", "imported"), actor="t", api_key=imported)
    assert key == imported
    secrets_.append(imported)
    doomed, doomed_key = await store.create_key(new("publishable", "doomed"), actor="t")
    await store.delete_key(str(doomed["id"]), actor="t", reason="rotation")
    await store.touch({row["id"]: 1_700_000_000.0}, {"anon": 1_700_000_000.0})
    await store.set_legacy(False, actor="t")

    dump = await dump_database(dsn)
    assert apikeys.hash_key(secrets_[0]) in dump and "renamed_secret" in dump  # the dump does hold the store
    for key in secrets_ + [doomed_key]:  # secret keys never, a deleted key no more
        assert key not in dump
        assert secret_part(key) not in dump
    assert token not in dump and token.removeprefix("sbp_") not in dump
    assert apikeys.hash_key(token) in dump
    # publishable keys are public by design: kept in full, in their own column and nowhere else
    stored = {r["publishable_key"] for r in await store.list_keys()} - {None}
    assert stored == set(publishable)
    for key in publishable:
        assert dump.count(key) == 1
    audit_text = json.dumps([dict(r) for r in await store.audit_log(1000)], default=str)
    assert not any(k in audit_text for k in publishable)


async def test_the_database_refuses_a_secret_key_in_the_publishable_column(store, dsn):
    row, key = await store.create_key(new("secret", "backend"), actor="t")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE gateway.api_keys SET publishable_key = $1 WHERE id = $2", key, row["id"])
    finally:
        await conn.close()


async def test_publishable_keys_are_listed_before_secret_ones(store):
    s1, _ = await store.create_key(new("secret", "first_secret"), actor="t")
    p1, _ = await store.create_key(new("publishable", "first_pub"), actor="t")
    s2, _ = await store.create_key(new("secret", "second_secret"), actor="t")
    p2, _ = await store.create_key(new("publishable", "second_pub"), actor="t")
    assert [r["id"] for r in await store.list_keys()] == [p1["id"], p2["id"], s1["id"], s2["id"]]


# --- audit ------------------------------------------------------------------------------------


async def test_every_mutation_is_audited_without_key_material(store):
    row, key = await store.create_key(new("secret", "audited", description="x"), actor="alice")
    imported = apikeys.generate("publishable", REF)
    irow, _ = await store.create_key(new("publishable", "imported"), actor="bob", api_key=imported)
    await store.update_key(str(row["id"]), changes({"name": "audited_two", "description": "y"}), actor="carol")
    await store.update_key(str(row["id"]), changes({}), actor="nobody")  # no change, no row
    await store.delete_key(str(row["id"]), actor="dave", was_compromised=True, reason="posted on a forum")
    await store.set_legacy(False, actor="erin")
    await store.set_legacy(True, actor="frank")

    rows = await audit(store)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("alice", "api_key.create", str(row["id"])),
        ("bob", "api_key.create", str(irow["id"])),
        ("carol", "api_key.update", str(row["id"])),
        ("dave", "api_key.delete", str(row["id"])),
        ("erin", "legacy.disable", None),
        ("frank", "legacy.enable", None),
    ]
    assert all(isinstance(r["at"], datetime) for r in rows)
    assert rows[0]["details"] == {"type": "secret", "name": "audited", "prefix": row["prefix"]}
    assert rows[2]["details"] == {"fields": ["description", "name"]}
    assert rows[3]["details"]["was_compromised"] is True
    assert rows[3]["details"]["reason"] == "posted on a forum"
    text = repr([dict(r) for r in rows])
    for k in (key, imported):
        assert k not in text and secret_part(k) not in text


async def test_failed_mutations_write_no_audit_row(store):
    key = apikeys.generate("secret", REF)
    with pytest.raises(InvalidInput):
        await store.create_key(new("publishable", "wrong_type"), actor="t", api_key=key)
    with pytest.raises(NotFound):
        await store.delete_key(str(uuid.uuid4()), actor="t")
    assert await audit(store) == []


# --- import -----------------------------------------------------------------------------------


async def test_import_checks_type_checksum_and_duplicates(store):
    key = apikeys.generate("secret", REF)
    with pytest.raises(InvalidInput) as info:
        await store.create_key(new("publishable", "wrong_type"), actor="t", api_key=key)
    assert info.value.field == "key" and key not in str(info.value)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(InvalidInput) as info:
        await store.create_key(new("secret", "tampered"), actor="t", api_key=tampered)
    assert tampered not in str(info.value)
    with pytest.raises(InvalidInput):
        await store.create_key(new("secret", "other_ref"), actor="t", api_key=apikeys.generate("secret", "elsewhere"))
    row, shown = await store.create_key(new("secret", "adopted"), actor="t", api_key=key)
    assert shown == key and row["hash"] == apikeys.hash_key(key) and row["prefix"] == apikeys.display_prefix(key)
    with pytest.raises(InvalidInput) as info:
        await store.create_key(new("secret", "again"), actor="t", api_key=key)
    assert info.value.field == "key" and key not in str(info.value)
    assert await store.count_keys() == 1
    assert len(await audit(store)) == 1


# --- legacy switch ----------------------------------------------------------------------------


async def test_legacy_toggle(store, dsn):
    state = await store.legacy()
    assert state.enabled is True and state.changed_at is None  # enabled by default
    off = await store.set_legacy(False, actor="t")
    assert off.enabled is False and off.changed_at is not None
    assert (await store.legacy()).enabled is False
    assert (await store.legacy()).changed_at == off.changed_at
    # another store on the same database (another instance) sees the same state
    other = await Store.open(dsn, REF)
    try:
        assert (await other.legacy()).enabled is False
        on = await other.set_legacy(True, actor="t")
    finally:
        await other.close()
    assert on.enabled is True and on.changed_at >= off.changed_at
    assert (await store.legacy()).enabled is True
    assert (await store.set_legacy(True, actor="t")).enabled is True  # idempotent


# --- first start ------------------------------------------------------------------------------


async def test_bootstrap_creates_one_publishable_and_one_secret_named_default(store):
    created, token = await store.bootstrap(need_admin_token=False)
    assert token is None
    assert sorted((r["type"], r["name"]) for r, _ in created) == [("publishable", "default"), ("secret", "default")]
    for row, key in created:
        assert apikeys.parse(key, REF) == row["type"]
        assert row["hash"] == apikeys.hash_key(key)
    rows = await store.list_keys()
    assert sorted((r["type"], r["name"]) for r in rows) == [("publishable", "default"), ("secret", "default")]
    secret = next(r for r in rows if r["type"] == "secret")
    assert secret["secret_jwt_template"] == DEFAULT_TEMPLATE
    # only once
    assert await store.bootstrap(need_admin_token=False) == ([], None)
    assert await store.count_keys() == 2
    # not even after every key was deleted
    for r in rows:
        await store.delete_key(str(r["id"]), actor="t")
    assert await store.bootstrap(need_admin_token=False) == ([], None)
    assert await store.count_keys() == 0


async def test_bootstrap_leaves_a_table_with_keys_alone(store):
    await store.create_key(new("secret", "imported_first"), actor="t", api_key=apikeys.generate("secret", REF))
    assert await store.bootstrap(need_admin_token=False) == ([], None)
    assert [r["name"] for r in await store.list_keys()] == ["imported_first"]


async def test_bootstrap_generates_the_admin_token_once(store):
    created, token = await store.bootstrap(need_admin_token=True)
    assert len(created) == 2 and re.fullmatch(r"sbp_[a-f0-9]{40}", token)  # the form the Supabase CLI insists on
    assert await store.admin_token_hash() == apikeys.hash_key(token)
    assert await store.bootstrap(need_admin_token=True) == ([], None)
    assert await store.admin_token_hash() == apikeys.hash_key(token)


async def test_bootstrap_without_admin_token(store):
    await store.bootstrap(need_admin_token=False)
    assert await store.admin_token_hash() is None
    created, token = await store.bootstrap(need_admin_token=True)  # later start without admin.token
    assert created == [] and token
    assert await store.admin_token_hash() == apikeys.hash_key(token)


async def test_instances_starting_together_bootstrap_once(dsn):
    stores = [await open_store(dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.bootstrap(need_admin_token=True) for s in stores))
        assert sum(len(created) for created, _ in results) == 2
        assert sum(1 for _, token in results if token) == 1
        assert await stores[0].count_keys() == 2
    finally:
        for s in stores:
            await s.close()


async def test_bootstrap_imports_the_given_keys_as_the_defaults(store):
    publishable, secret = apikeys.generate("publishable", REF), apikeys.generate("secret", REF)
    created, token = await store.bootstrap(need_admin_token=True, imports={"publishable": publishable,
                                                                           "secret": secret})
    assert token  # the admin token is still generated
    assert [(r["type"], r["name"], key) for r, key in created] == [("publishable", "default", None),
                                                                    ("secret", "default", None)]
    rows = {r["type"]: r for r in await store.list_keys()}
    assert rows["publishable"]["hash"] == apikeys.hash_key(publishable)
    assert rows["secret"]["hash"] == apikeys.hash_key(secret)
    assert rows["secret"]["secret_jwt_template"] == DEFAULT_TEMPLATE
    assert rows["publishable"]["publishable_key"] == publishable  # public by design: listed in full
    dump = await dump_database(store.dsn)
    assert secret_part(secret) not in dump
    assert dump.count(secret_part(publishable)) == 1  # in its own column only
    # once only: later starts import nothing, whatever they are given
    assert await store.bootstrap(need_admin_token=True, imports={
        "publishable": apikeys.generate("publishable", REF)}) == ([], None)
    assert await store.count_keys() == 2


async def test_bootstrap_imports_one_key_and_creates_the_other(store):
    publishable = apikeys.generate("publishable", REF)
    created, _ = await store.bootstrap(need_admin_token=False, imports={"publishable": publishable})
    assert [(r["type"], key is None) for r, key in created] == [("publishable", True), ("secret", False)]
    made = next(key for r, key in created if r["type"] == "secret")
    assert apikeys.parse(made, REF) == "secret"


@pytest.mark.parametrize("bad", [
    apikeys.generate("publishable", "another-ref"),  # checksum of another ref
    apikeys.generate("secret", REF),  # a secret key given as the publishable one
    "sb_publishable_not-a-key",
], ids=["another-ref", "a-secret-key", "not-a-key"])
async def test_bootstrap_refuses_a_bad_key_and_writes_nothing(store, bad):
    with pytest.raises(InvalidInput) as info:
        await store.bootstrap(need_admin_token=True, imports={"publishable": bad,
                                                              "secret": apikeys.generate("secret", REF)})
    assert info.value.field == "publishable" and bad not in str(info.value)
    assert await store.count_keys() == 0
    assert await store.get_setting("bootstrapped") is None and await store.admin_token_hash() is None
    created, token = await store.bootstrap(need_admin_token=True)  # a corrected start is a first start
    assert len(created) == 2 and token


# --- last use ---------------------------------------------------------------------------------


async def test_touch_records_last_use(store):
    row, _ = await store.create_key(new("publishable", "used"), actor="t")
    other, _ = await store.create_key(new("publishable", "unused"), actor="t")
    await store.touch({row["id"]: 1_700_000_100.0}, {})
    await store.touch({row["id"]: 1_700_000_000.0}, {"service_role": 1_700_000_000.0})  # older: kept newer
    used = await store.get_key(row["id"])
    assert used["last_used_at"].timestamp() == 1_700_000_100.0
    assert used["updated_at"] == row["updated_at"]
    assert (await store.get_key(other["id"]))["last_used_at"] is None
    assert "service_role" in await store.get_setting("legacy_last_used")


# --- usage per hour ------------------------------------------------------------------------------


async def test_touch_is_one_statement_with_last_use_usage_and_pruning(dsn):
    """A flush is one statement however much it carries: last use of keys and legacy keys, the
    hours' counts (added to what other workers wrote), and old hours pruned."""
    import time

    from gateway.keys.store import USAGE_KEEP_HOURS, _init_conn

    await (await open_store(dsn)).close()  # migrated
    statements: list[str] = []  # the store's (not the pool's reset on release)

    async def init(conn):
        await _init_conn(conn)
        conn.add_query_logger(lambda record: "gateway." in record.query and statements.append(record.query))

    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2, init=init)
    store = Store(pool, dsn, REF)
    try:
        row, _ = await store.create_key(new("secret", "counted"), actor="t")
        kid, hour = str(row["id"]), int(time.time() // 3600)
        old = hour - USAGE_KEEP_HOURS - 1
        await store.touch({}, {}, {(kid, old): 7})  # an hour past keeping: written, then pruned next time
        statements.clear()
        await store.touch({row["id"]: time.time()}, {"anon": time.time()},
                          {(kid, hour): 3, (kid, hour - 1): 2, ("anon", hour): 5})
        assert len(statements) == 1
        await store.touch({}, {}, {(kid, hour): 4})  # another worker's flush adds to the hour
        assert len(statements) == 2
        assert await store.usage(kid, hour - 24) == {hour: 7, hour - 1: 2}
        assert await store.usage(kid, old) == {hour: 7, hour - 1: 2}  # pruned
        assert await store.usage("anon", hour - 24) == {hour: 5}
        assert (await store.get_key(kid))["last_used_at"] is not None
        assert "anon" in await store.get_setting("legacy_last_used")
        await store.delete_key(kid, actor="t")
        assert await store.usage(kid, old) == {}  # a deleted key's hours go with it
    finally:
        await pool.close()
