"""The key fields of docs/protection.md in the admin API: allowed_resources, allowed_methods and quota
on create, PATCH (merged as the others: a field given replaces, null clears) and every answer,
with their rules in the OpenAPI document; bad input a 400 naming the field, echoing no list,
writing nothing; changes audited; used and left as the workers last wrote them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.upstreams import db_query, within

NONE = {"allowed_resources": [], "allowed_methods": [], "quota": None}


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_KEYS__QUOTA_FLUSH_SECONDS="0.2")


def rules(answer: dict) -> dict:
    return {k: answer[k] for k in NONE}


def next_month_start() -> str:
    now = datetime.now(timezone.utc)
    first = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    return first.isoformat()


def test_every_answer_carries_the_fields(gw):
    plain = gw.create_key("publishable")
    assert rules(plain) == NONE
    every = gw.admin("GET", "/api-keys").json()
    assert every and all(rules(k) == NONE for k in every if k["id"] != plain["id"] and k["type"] == "legacy")
    assert all(set(NONE) <= set(k) for k in every)  # legacy entries too


def test_create_get_patch(gw):
    made = gw.create_key("secret", allowed_resources=["todos", "rpc/search_*", "todos"],
                         allowed_methods=["get", "HEAD"], quota="1000/month")
    assert made["allowed_resources"] == ["todos", "rpc/search_*"]  # each once
    assert made["allowed_methods"] == ["GET", "HEAD"]  # upper case
    assert made["quota"] == {"limit": "1000/month", "used": 0, "left": 1000, "resets_at": next_month_start()}
    path = f"/api-keys/{made['id']}"
    assert rules(gw.admin("GET", path).json()) == rules(made)
    r = gw.admin("PATCH", path, json={"allowed_methods": ["GET"]})  # the others stay
    assert r.status_code == 200 and rules(r.json()) == {**rules(made), "allowed_methods": ["GET"]}
    r = gw.admin("PATCH", path, json={"quota": "5/day", "allowed_resources": []})
    assert r.json()["allowed_resources"] == [] and r.json()["quota"]["limit"] == "5/day"
    # An answer's quota object is taken back as its limit: PATCHing back what was read changes nothing.
    read = gw.admin("GET", path).json()
    back = gw.admin("PATCH", path, json={k: read[k] for k in ("allowed_resources", "allowed_methods", "quota")})
    assert back.status_code == 200 and rules(back.json()) == rules(read)
    r = gw.admin("PATCH", path, json={"quota": {"limit": "7/day"}})
    assert r.json()["quota"]["limit"] == "7/day"
    r = gw.admin("PATCH", path, json={"quota": None, "allowed_methods": None})
    assert rules(r.json()) == NONE
    stored = db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT allowed_resources, allowed_methods, quota FROM"
                      " gateway.api_keys WHERE id = $1::uuid", made["id"])[0]
    assert tuple(stored) == (None, None, None)  # nothing to check: the key is plain again


@pytest.mark.parametrize(("body", "field"), [
    ({"allowed_resources": ["a/b"]}, "allowed_resources"),
    ({"allowed_resources": ["/todos"]}, "allowed_resources"),
    ({"allowed_resources": [" todos"]}, "allowed_resources"),
    ({"allowed_resources": [""]}, "allowed_resources"),
    ({"allowed_resources": ["x\u0000"]}, "allowed_resources"),
    ({"allowed_resources": "todos"}, "allowed_resources"),
    ({"allowed_resources": [f"t{i}" for i in range(101)]}, "allowed_resources"),
    ({"allowed_resources": ["x" * 201]}, "allowed_resources"),
    ({"allowed_methods": ["FETCH"]}, "allowed_methods"),
    ({"allowed_methods": ["GET"] * 8}, "allowed_methods"),
    ({"allowed_methods": "GET"}, "allowed_methods"),
    ({"quota": "100/week"}, "quota"),
    ({"quota": "0/day"}, "quota"),
    ({"quota": 100}, "quota"),
    ({"quota": {"limit": "1/day", "per": "x"}}, "quota"),
    ({"quota": {"used": 1}}, "quota"),
])
def test_bad_fields_are_400_naming_the_field_and_write_nothing(gw, body, field):
    before = len(gw.admin("GET", "/api-keys").json())
    r = gw.admin("POST", "/api-keys", json={"type": "publishable", "name": "ruled_bad", **body})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and "\n" not in r.text
    assert "todos" not in r.text and "t100" not in r.text  # the lists are never echoed
    assert len(gw.admin("GET", "/api-keys").json()) == before
    made = gw.create_key("publishable", allowed_resources=["kept"])
    r = gw.admin("PATCH", f"/api-keys/{made['id']}", json=body)
    assert r.status_code == 400 and r.json()["field"] == field
    assert rules(gw.admin("GET", f"/api-keys/{made['id']}").json()) == {**NONE, "allowed_resources": ["kept"]}


def test_changes_are_in_the_audit_log(gw):
    made = gw.create_key("publishable", allowed_methods=["GET"])
    gw.admin("PATCH", f"/api-keys/{made['id']}", json={"allowed_methods": ["GET", "POST"], "quota": "10/day",
                                                      "allowed_resources": ["todos"]})
    rows = db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT details FROM gateway.audit_log WHERE target = $1"
                    " AND action = 'api_key.update' ORDER BY id DESC LIMIT 1", made["id"])
    details = rows[0]["details"]
    details = details if isinstance(details, dict) else __import__("json").loads(details)
    assert details["allowed_methods"] == {"from": ["GET"], "to": ["GET", "POST"]}
    assert details["quota"] == {"from": None, "to": "10/day"}
    assert details["allowed_resources"] == {"from": None, "to": ["todos"]}


def test_used_and_left_follow_the_requests(gw):
    made = gw.create_key("publishable", quota="10/day")
    for _ in range(3):
        assert httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": made["api_key"]}).status_code == 200
    path = f"/api-keys/{made['id']}"
    within(3, lambda: gw.admin("GET", path).json()["quota"]["used"] == 3)
    shown = gw.admin("GET", path).json()["quota"]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert shown["left"] == 7 and shown["resets_at"] == f"{tomorrow}T00:00:00+00:00"
    listed = {k["id"]: k for k in gw.admin("GET", "/api-keys").json()}
    assert listed[made["id"]]["quota"]["used"] == 3
    # Counted per day: a monthly quota set now includes today's.
    assert gw.admin("PATCH", path, json={"quota": "100/month"}).json()["quota"]["used"] == 3
    # Deleting the key deletes its counts.
    assert gw.admin("DELETE", path).status_code == 200
    time.sleep(0.5)
    assert db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT count(*) AS n FROM gateway.quota_usage"
                    " WHERE key_id = $1::uuid", made["id"])[0]["n"] == 0


def test_the_openapi_document_states_the_rules(gw):
    doc = httpx.get(gw.admin_url + "/openapi.json").json()
    schemas = doc["components"]["schemas"]
    create = schemas["CreateApiKeyBody"]["properties"]
    resources = create["allowed_resources"]["anyOf"][0]
    assert resources["maxItems"] == 100 and resources["items"]["maxLength"] == 200
    assert "rpc/search_*" in str(create["allowed_resources"]) and "graphql" in str(create["allowed_resources"])
    methods = create["allowed_methods"]["anyOf"][0]
    assert set(methods["items"]["enum"]) == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    quota = str(create["quota"])
    assert "^[1-9][0-9]{0,11}/(day|month)$" in quota and "UTC" in quota
    answer = schemas["ApiKeyResponse"]["properties"]
    assert {"allowed_resources", "allowed_methods", "quota"} <= answer.keys()
    assert set(schemas["QuotaAnswer"]["properties"]) == {"limit", "used", "left", "resets_at"}
    assert "allowed_resources" in schemas["UpdateApiKeyBody"]["properties"]
