"""The admin API's network-bans and network-restrictions (docs/protection.md) through a real gateway:
the Management API's paths, statuses and shapes, our own fields beside them, bad input refused with
the field named and never echoed, every change audited, the OpenAPI document."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import store_ban
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, Gateway, create_database
from tests.upstreams import db_query

EVERYONE = {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}


@pytest.fixture(scope="module")
def gw(pg_server) -> Iterator[Gateway]:
    env = {"GATEWAY_DATABASE_URL": create_database(pg_server), "GATEWAY_JWT__SECRET": JWT_SECRET,
           "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN, "GATEWAY_PROTECTION__BLOCK_AFTER": "3/m"}
    with Gateway(env) as g:
        yield g


@pytest.fixture
def everyone(gw) -> Iterator[None]:
    yield
    assert gw.admin("POST", "/network-restrictions/apply", json=EVERYONE).status_code == 201


def audit(gw: Gateway, action: str) -> list[dict]:
    rows = db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT actor, action, details::text FROM gateway.audit_log"
                    " WHERE action = $1 ORDER BY id", action)
    return [{"actor": r[0], "details": json.loads(r[2])} for r in rows]


def ban(gw: Gateway, address: str, seconds: float = 600) -> None:
    store_ban(gw.env["GATEWAY_DATABASE_URL"], address, seconds, refusals=3,
              reason="3 refused requests (block_after 3/m); the last: UNAUTHORIZED_INVALID_API_KEY")


def test_bans_listed_in_the_management_apis_shape_with_when_and_why(gw):
    empty = gw.admin("POST", "/network-bans/retrieve")
    assert (empty.status_code, empty.json()) == (201, {"banned_ipv4_addresses": [], "bans": []})
    assert empty.headers["content-type"] == "application/json; charset=utf-8"
    ban(gw, "203.0.113.9")
    ban(gw, "2001:db8:1:2::/64")
    ban(gw, "198.51.100.1", seconds=-1)  # over already: not listed
    body = gw.admin("POST", "/network-bans/retrieve").json()
    assert body["banned_ipv4_addresses"] == ["203.0.113.9", "2001:db8:1:2::/64"]
    first, second = body["bans"]
    assert (first["address"], first["family"], second["family"], first["refusals"]) == (
        "203.0.113.9", "ipv4", "ipv6", 3)
    assert first["reason"] == "3 refused requests (block_after 3/m); the last: UNAUTHORIZED_INVALID_API_KEY"
    assert first["started_at"] < first["ends_at"] and first["ends_at"].endswith("Z")
    enriched = gw.admin("POST", "/network-bans/retrieve/enriched")
    assert enriched.status_code == 201
    assert [(b["banned_address"], b["identifier"], b["type"]) for b in enriched.json()["banned_ipv4_addresses"]] == [
        ("203.0.113.9", "default", "ipv4"), ("2001:db8:1:2::/64", "default", "ipv6")]

    # Lifted by address: an IPv6 address inside the /64 names its block; a mapped IPv4 address is IPv4.
    r = gw.admin("DELETE", "/network-bans", json={"ipv4_addresses": ["::ffff:203.0.113.9", "2001:db8:1:2::77",
                                                                     "192.0.2.1"], "requester_ip": False})
    assert (r.status_code, r.json()) == (200, {"lifted": ["2001:db8:1:2::/64", "203.0.113.9"]})
    assert gw.admin("POST", "/network-bans/retrieve").json()["banned_ipv4_addresses"] == []
    [row] = audit(gw, "network_ban.lift")
    assert row["actor"].startswith("admin-api@") and row["details"]["lifted"] == ["2001:db8:1:2::/64", "203.0.113.9"]


def test_requester_ip_lifts_the_callers_own_block(gw):
    ban(gw, "127.0.0.1")
    r = gw.admin("DELETE", "/network-bans", json={"ipv4_addresses": [], "requester_ip": True})
    assert r.json() == {"lifted": ["127.0.0.1"]}


def test_a_lifted_block_lets_the_client_in_at_once(gw):
    ban(gw, "127.0.0.1")
    deadline = time.monotonic() + 1
    while httpx.get(gw.url + "/rest/v1/todos").status_code != 429:
        assert time.monotonic() < deadline
    assert gw.admin("DELETE", "/network-bans", json={"ipv4_addresses": ["127.0.0.1/32"]}).json() == {
        "lifted": ["127.0.0.1"]}
    deadline = time.monotonic() + 1
    while httpx.get(gw.url + "/rest/v1/todos").status_code != 401:
        assert time.monotonic() < deadline


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"ipv4_addresses": ["203.0.113.9", "not-an-ip"]}, "ipv4_addresses", "entry 1 is not an IP address"),
    ({"ipv4_addresses": ["203.0.113.0/24"]}, "ipv4_addresses", "entry 0 is not an IP address"),  # no ranges
    ({"ipv4_addresses": ["2001:db8::/48"]}, "ipv4_addresses", "entry 0 is not an IP address"),
    ({"ipv4_addresses": ["fe80::1%eth0"]}, "ipv4_addresses", "entry 0 is not an IP address"),
    ({"ipv4_addresses": [7]}, "ipv4_addresses", None),
    ({"ipv4_addresses": ["1.2.3.4"] * 1001}, "ipv4_addresses", None),
    ({}, "ipv4_addresses", None),
    ({"ipv4_addresses": "203.0.113.9"}, "ipv4_addresses", None),
    ({"ipv4_addresses": [], "requester_ip": 0}, "requester_ip", None),  # a boolean, not something like one
])
def test_lifts_with_bad_input_name_the_field_never_the_list(gw, body, field, message):
    r = gw.admin("DELETE", "/network-bans", json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    if message is not None:
        assert r.json()["message"] == f"{field}: {message}"
    assert "not-an-ip" not in r.text and "fe80" not in r.text and "203.0.113" not in r.text


def test_restrictions_in_the_management_apis_shapes(gw, everyone):
    r = gw.admin("GET", "/network-restrictions")
    assert r.status_code == 200
    assert r.json() == {"entitlement": "allowed", "config": EVERYONE, "status": "applied"}  # never set: no times
    r = gw.admin("POST", "/network-restrictions/apply", json={
        "dbAllowedCidrs": ["203.0.113.7/24", "2001:db8::/32", "::ffff:198.51.100.0/120", "203.0.113.0/24"],
        "dbAllowedCidrsV6": ["2001:DB8:1::/48"], "expose_unknown": True})
    assert r.status_code == 201
    applied = r.json()
    # Canonical: host bits cleared, a mapped CIDR as IPv4, each family in its own list, no duplicates.
    assert applied["config"] == {"dbAllowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
                                 "dbAllowedCidrsV6": ["2001:db8::/32", "2001:db8:1::/48"]}
    assert applied["status"] == "applied" and applied["updated_at"]
    assert gw.admin("GET", "/network-restrictions").json() == applied
    r = gw.admin("PATCH", "/network-restrictions", json={"add": {"dbAllowedCidrs": ["192.0.2.0/24"]},
                                                         "remove": {"dbAllowedCidrsV6": ["2001:db8::/32"]}})
    assert r.status_code == 200
    patched = r.json()
    assert patched["config"]["dbAllowedCidrs"] == [
        {"address": "203.0.113.0/24", "type": "v4"}, {"address": "198.51.100.0/24", "type": "v4"},
        {"address": "192.0.2.0/24", "type": "v4"}, {"address": "2001:db8:1::/48", "type": "v6"}]
    assert {"address": "2001:db8::/32", "type": "v6"} in patched["old_config"]["dbAllowedCidrs"]
    assert patched["status"] == "applied" and patched["entitlement"] == "allowed"
    assert [row["actor"][:10] for row in audit(gw, "network_restrictions.apply")][-2:] == ["admin-api@"] * 2
    assert audit(gw, "network_restrictions.apply")[-1]["details"]["old"] == [
        "203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32", "2001:db8:1::/48"]


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/network-restrictions/apply", {"dbAllowedCidrs": ["10.0.0.0/8", "10.0.0.0/33"]}, "dbAllowedCidrs"),
    ("POST", "/network-restrictions/apply", {"dbAllowedCidrsV6": ["secret-list-entry"]}, "dbAllowedCidrsV6"),
    ("POST", "/network-restrictions/apply", {"dbAllowedCidrs": "10.0.0.0/8"}, "dbAllowedCidrs"),
    ("POST", "/network-restrictions/apply", {"dbAllowedCidrs": [f"10.{i // 256}.{i % 256}.0/24" for i in range(1001)]},
     "dbAllowedCidrs"),
    ("PATCH", "/network-restrictions", {"add": {"dbAllowedCidrs": ["secret-list-entry"]}}, "add.dbAllowedCidrs"),
    ("PATCH", "/network-restrictions", {"remove": {"dbAllowedCidrsV6": [None]}}, "remove.dbAllowedCidrsV6"),
    ("PATCH", "/network-restrictions", {"add": []}, "add"),
])
def test_restrictions_with_bad_input_name_the_field_never_the_list(gw, method, path, body, field):
    before = gw.admin("GET", "/network-restrictions").json()
    r = gw.admin(method, path, json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert "secret-list-entry" not in r.text and "10.0.0.0" not in r.text
    assert gw.admin("GET", "/network-restrictions").json() == before  # nothing written


def test_token_ref_and_openapi(gw):
    for method, path in (("POST", "/network-bans/retrieve"), ("DELETE", "/network-bans"),
                         ("GET", "/network-restrictions"), ("POST", "/network-restrictions/apply"),
                         ("PATCH", "/network-restrictions")):
        r = httpx.request(method, f"{gw.admin_url}/v1/projects/default{path}", json={})
        assert r.status_code == 401
        r = httpx.request(method, f"{gw.admin_url}/v1/projects/nosuchref{path}", json={},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 404
    doc = httpx.get(gw.admin_url + "/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/v1/projects/{ref}/network-bans/retrieve"]["post"]["responses"]) >= {"201", "401", "404", "503"}
    assert "delete" in paths["/v1/projects/{ref}/network-bans"]
    assert {"get", "patch"} <= set(paths["/v1/projects/{ref}/network-restrictions"])
    assert "201" in paths["/v1/projects/{ref}/network-restrictions/apply"]["post"]["responses"]
    assert "400" in paths["/v1/projects/{ref}/network-restrictions/apply"]["post"]["responses"]
    assert doc["components"]["schemas"]["NetworkBanResponse"]["properties"]["bans"]
