"""The packed key table (gateway.keys.keytable): it answers like a dict of entries by hash."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.keys import apikeys
from gateway.keys.entries import ANON_CLAIMS, SERVICE_ROLE_CLAIMS, KeyEntry
from gateway.keys.keytable import KeyTable
from gateway.rules.keyrules import rules_for
from gateway.rules.limits import parse_limit
from gateway.rules.quota import parse_quota
from gateway.rules.restrictions import restrictions_for

TAIL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=6, max_size=6)


@st.composite
def entries(draw) -> KeyEntry:
    key_type = draw(st.sampled_from(["publishable", "secret"]))
    claims = ANON_CLAIMS if key_type == "publishable" else draw(
        st.sampled_from([SERVICE_ROLE_CLAIMS, {"role": "authenticated"}]))
    entry = KeyEntry(str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))), key_type,
                     apikeys.PREFIXES[key_type] + draw(TAIL), claims["role"], claims)
    extra = draw(st.sampled_from(["none", "limit", "expiry", "restricted", "odd prefix", "rules", "quota"]))
    if extra == "limit":
        entry.per_key = parse_limit("100/m")
    elif extra == "expiry":
        entry.expires_at = 2e9
    elif extra == "restricted":
        entry.restrictions = restrictions_for(["https://app.example.com"], None, None)
    elif extra == "rules":
        entry.rules = rules_for(["todos"], ["GET"])
    elif extra == "quota":
        entry.quota = parse_quota("10/day")
    elif extra == "odd prefix":
        entry.prefix = entry.prefix[:-1] + "é"
    return entry


def same(a: KeyEntry, b: KeyEntry) -> bool:
    return (a.id, a.type, a.prefix, a.role) == (b.id, b.type, b.prefix, b.role) and a.same(b)


HASHES = st.builds(lambda n: apikeys.hash_key(f"key-{n}"), st.integers(0, 40))


@settings(max_examples=200)
@given(st.lists(st.tuples(HASHES, entries()), max_size=30),
       st.lists(st.tuples(st.sampled_from(["put", "pop", "get"]), HASHES, entries()), max_size=60))
def test_answers_like_a_dict(initial, operations) -> None:
    model = dict(initial)
    table = KeyTable.build(model.items())
    for op, key_hash, entry in operations:
        if op == "put":
            model[key_hash] = entry
            table[key_hash] = entry
        elif op == "pop":
            expected = model.pop(key_hash, None)
            got = table.pop(key_hash)
            assert (got is None) == (expected is None)
            assert got is None or same(got, expected)
        got = table.get(key_hash)
        assert (got is None) == (key_hash not in model)
        assert got is None or same(got, model[key_hash])
        assert len(table) == len(model)
    for key_hash, entry in model.items():
        assert same(table[key_hash], entry)


def test_plain_keys_are_packed_and_others_kept_whole() -> None:
    plain = KeyEntry(str(uuid.uuid4()), "publishable", "sb_publishable_abcdef", "anon", ANON_CLAIMS)
    limited = KeyEntry(str(uuid.uuid4()), "secret", "sb_secret_abcdef", "service_role", SERVICE_ROLE_CLAIMS,
                       per_key=parse_limit("10/s"))
    table = KeyTable.build([(apikeys.hash_key("a"), plain), (apikeys.hash_key("b"), limited)])
    assert table._pinned == {apikeys.digest("b"): limited}
    assert len(table._prefixes) == 1 and len(table._records) == 55 and not table._hot
    found = table.get_digest(apikeys.digest("a"))
    assert found is not plain and same(found, plain) and found.claims is ANON_CLAIMS
    assert table.get_digest(apikeys.digest("a")) is found  # in use: the same entry, with its minted JWT
    assert table.get_digest(apikeys.digest("b")) is limited


def test_keep_puts_back_the_entry_in_use() -> None:
    entry = KeyEntry(str(uuid.uuid4()), "publishable", "sb_publishable_abcdef", "anon", ANON_CLAIMS, token="t")
    old = KeyTable.build([(apikeys.hash_key("a"), entry)])
    in_use = old.get(apikeys.hash_key("a"))
    fresh = KeyTable.build([(apikeys.hash_key("a"), entry)])
    for digest, e in old.in_use():
        fresh.keep(digest, e)
    assert fresh.get(apikeys.hash_key("a")) is in_use
    fresh.keep(apikeys.digest("gone"), entry)  # not in the table: not brought back
    assert fresh.get(apikeys.hash_key("gone")) is None


@pytest.mark.parametrize("bad", ["", "not base64!", "abc", apikeys.hash_key("a")[:-2]])
def test_a_hash_that_is_no_sha256_is_never_found(bad: str) -> None:
    table = KeyTable()
    assert table.get(bad) is None and bad not in table and table.pop(bad) is None
    with pytest.raises(ValueError):
        table[bad] = KeyEntry(str(uuid.uuid4()), "publishable", "sb_publishable_abcdef", "anon", ANON_CLAIMS)
    with pytest.raises(KeyError):
        del table[bad]


def test_a_table_of_100k_keys_is_small() -> None:
    rows = [(apikeys.hash_key(f"k{i}"), KeyEntry(str(uuid.uuid4()), "publishable", "sb_publishable_abcdef",
                                                  "anon", ANON_CLAIMS)) for i in range(100_000)]
    table = KeyTable.build(rows)
    size = len(table._records) + table._prefixes.itemsize * len(table._prefixes)
    assert size == 63 * 100_000
    assert all(table.get(h) is not None for h, _ in rows[::997])
