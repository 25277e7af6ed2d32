"""The admin API (docs/management-clients.md) through a real ``gateway serve`` process: the Management
API's paths and shapes, token enforcement, 404s, bodies refused with the field named."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import partial

import asyncpg
import httpx
import jwt
import pytest

from gateway.keys import apikeys
from tests.factories import nested_template
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, Gateway, create_database

REF = "supabase-self-hosted"
KEY_FIELDS = {"id", "type", "prefix", "name", "description", "hash", "secret_jwt_template", "inserted_at",
              "updated_at", "api_key"}


def legacy_jwt(role: str) -> str:
    now = int(time.time())
    return jwt.encode({"role": role, "iss": "supabase", "iat": now, "exp": now + 5 * 365 * 86400}, JWT_SECRET,
                      algorithm="HS256")


ANON = legacy_jwt("anon")
SERVICE_ROLE = legacy_jwt("service_role")


@pytest.fixture(scope="module")
def gw(pg_server) -> Iterator[Gateway]:
    env = {
        "GATEWAY_DATABASE_URL": create_database(pg_server),
        "GATEWAY_JWT__SECRET": JWT_SECRET,
        "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
        "GATEWAY_LEGACY__ANON_KEY": ANON,
        "GATEWAY_LEGACY__SERVICE_ROLE_KEY": SERVICE_ROLE,
        "GATEWAY_KEYS__LAST_USED_FLUSH_SECONDS": "0.5",
    }
    with Gateway(env) as g:
        yield g


@pytest.fixture
def legacy_enabled(gw) -> Iterator[None]:
    """Leave legacy keys enabled for the next test, whatever this one did."""
    yield
    assert gw.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).status_code == 200


def fetch_audit(gw: Gateway) -> list[dict]:
    async def go() -> list[dict]:
        conn = await asyncpg.connect(gw.env["GATEWAY_DATABASE_URL"])
        try:
            rows = await conn.fetch("SELECT actor, action, target, details::text AS details FROM gateway.audit_log"
                                    " ORDER BY id")
        finally:
            await conn.close()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    return asyncio.run(go())


def raw(gw: Gateway, method: str, path: str, token: str | None = ADMIN_TOKEN, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, gw.admin_url + path, headers=headers, timeout=10, **kw)


def assert_masked(key: dict) -> None:
    prefix = apikeys.PREFIXES[key["type"]]
    assert key["api_key"].startswith(prefix)
    assert set(key["api_key"].removeprefix(prefix)) == {apikeys.MASK_CHAR}


def public_status(gw: Gateway, key: str) -> int:
    return httpx.get(gw.url + "/rest/v1/x", headers={"apikey": key}).status_code


def wait_public_status(gw: Gateway, key: str, want: set[int], timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while (status := public_status(gw, key)) not in want and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


# --- the admin token --------------------------------------------------------------------------

KEY_ID = "00000000-0000-4000-8000-000000000001"
PROTECTED = [
    ("GET", "/v1/projects/default/api-keys"),
    ("GET", "/v1/projects/default/api-keys?reveal=true"),
    ("POST", "/v1/projects/default/api-keys"),
    ("GET", f"/v1/projects/default/api-keys/{KEY_ID}"),
    ("PATCH", f"/v1/projects/default/api-keys/{KEY_ID}"),
    ("DELETE", f"/v1/projects/default/api-keys/{KEY_ID}"),
    ("GET", "/v1/projects/default/api-keys/anon"),
    ("GET", "/v1/projects/default/api-keys/legacy"),
    ("PUT", "/v1/projects/default/api-keys/legacy?enabled=false"),
    ("GET", "/v1/projects/unknown/api-keys"),
    ("GET", "/metrics"),
    ("GET", "/no/such/path"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789abcdef", f"Basic {ADMIN_TOKEN}", "Bearer",
                                  f"Bearer {ADMIN_TOKEN}x", ADMIN_TOKEN])
def test_missing_or_wrong_token_is_401(gw, method, path, auth):
    headers = {"Authorization": auth} if auth is not None else {}
    body = {"json": {"type": "secret", "name": "should_not_exist"}} if method in ("POST", "PATCH") else {}
    r = httpx.request(method, gw.admin_url + path, headers=headers, timeout=10, **body)
    assert r.status_code == 401, r.text
    assert r.json() == {"message": "Missing or invalid admin token"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_401_comes_before_looking_at_the_body(gw):
    r = raw(gw, "POST", "/v1/projects/default/api-keys", token=None, content=b"{not json",
            headers={"content-type": "application/json"})
    assert r.status_code == 401
    r = raw(gw, "POST", "/v1/projects/default/api-keys", token="wrong-token-0123456789abcdef", json=[])
    assert r.status_code == 401
    assert "should_not_exist" not in {k["name"] for k in gw.admin("GET", "/api-keys").json()}


def test_health_is_open_and_metrics_need_the_token(gw):
    assert httpx.get(gw.admin_url + "/health").json() == {"status": "ok"}
    r = raw(gw, "GET", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in r.text


def test_the_token_is_accepted_with_any_case_of_bearer(gw):
    assert httpx.get(gw.admin_url + "/v1/projects/default/api-keys",
                     headers={"Authorization": f"bearer {ADMIN_TOKEN}"}).status_code == 200


def test_openapi_document(gw):
    r = raw(gw, "GET", "/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert {"get", "post"} <= paths["/v1/projects/{ref}/api-keys"].keys()
    assert {"get", "patch", "delete"} <= paths["/v1/projects/{ref}/api-keys/{key_id}"].keys()
    assert {"get", "put"} <= paths["/v1/projects/{ref}/api-keys/legacy"].keys()
    assert ADMIN_TOKEN not in r.text


# --- 404s -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api-keys"), ("POST", "/api-keys"), ("GET", "/api-keys/legacy"), ("PUT", "/api-keys/legacy?enabled=true"),
    ("GET", f"/api-keys/{KEY_ID}"), ("PATCH", f"/api-keys/{KEY_ID}"), ("DELETE", f"/api-keys/{KEY_ID}"),
])
def test_unknown_ref_is_404(gw, method, path):
    body = {"json": {"type": "secret", "name": "wrong_ref"}} if method in ("POST", "PATCH") else {}
    r = raw(gw, method, "/v1/projects/otherproject" + path, **body)
    assert r.status_code == 404, r.text
    assert "message" in r.json()
    assert "wrong_ref" not in {k["name"] for k in gw.admin("GET", "/api-keys").json()}


@pytest.mark.parametrize("key_id", ["6f1c1d2e-0b7a-4c3e-9d52-3a1f0e8b7c64", "not-a-uuid", "12345", "%20", "anon'--"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_or_malformed_id_is_404(gw, method, key_id):
    body = {"json": {"description": "x"}} if method == "PATCH" else {}
    r = gw.admin(method, f"/api-keys/{key_id}", **body)
    assert r.status_code == 404, r.text
    assert r.json()["message"]


def test_legacy_ids_cannot_be_patched_or_deleted(gw):
    for method in ("PATCH", "DELETE"):
        body = {"json": {"description": "x"}} if method == "PATCH" else {}
        assert gw.admin(method, "/api-keys/service_role", **body).status_code in (404, 405)
    assert gw.admin("GET", "/api-keys/service_role").status_code == 200


# --- create, read -----------------------------------------------------------------------------


def test_create_shows_the_key_once(gw):
    r = gw.admin("POST", "/api-keys", json={"type": "secret", "name": "backend_job", "description": "nightly"})
    assert r.status_code == 201
    created = r.json()
    assert KEY_FIELDS <= created.keys()
    key = created["api_key"]
    assert apikeys.parse(key, REF) == "secret"
    assert (created["type"], created["name"], created["description"]) == ("secret", "backend_job", "nightly")
    assert created["prefix"] == apikeys.display_prefix(key)
    assert created["hash"] == apikeys.hash_key(key)
    assert created["secret_jwt_template"] == {"role": "service_role"}
    assert created["inserted_at"] and created["updated_at"]

    for reveal in (None, "false", "true"):
        params = {"reveal": reveal} if reveal else {}
        got = gw.admin("GET", f"/api-keys/{created['id']}", params=params)
        assert got.status_code == 200
        body = got.json()
        assert_masked(body)
        assert {k: v for k, v in body.items() if k != "api_key"} == \
            {k: v for k, v in created.items() if k != "api_key"}
        listing = gw.admin("GET", "/api-keys", params=params)
        assert key not in listing.text
        [mine] = [k for k in listing.json() if k["id"] == created["id"]]
        assert_masked(mine)
    assert key not in gw.logs()


def test_publishable_keys_are_shown_in_full_in_every_listing(gw):
    created = gw.create_key("publishable", "shown_in_full")
    key = created["api_key"]
    for reveal in (None, "false", "true"):
        params = {"reveal": reveal} if reveal else {}
        assert gw.admin("GET", f"/api-keys/{created['id']}", params=params).json()["api_key"] == key
        [mine] = [k for k in gw.admin("GET", "/api-keys", params=params).json() if k["id"] == created["id"]]
        assert mine == created | {"api_key": key}
    changed = gw.admin("PATCH", f"/api-keys/{created['id']}", json={"description": "d"}).json()
    assert changed["api_key"] == key
    assert gw.admin("DELETE", f"/api-keys/{created['id']}").json()["api_key"] == key  # it is public anyway


def test_listing_order_legacy_then_publishable_then_secret(gw, legacy_enabled):
    gw.create_key("secret", "order_secret")
    gw.create_key("publishable", "order_pub")
    kinds = [k["type"] for k in gw.admin("GET", "/api-keys").json()]
    assert kinds == sorted(kinds, key=["legacy", "publishable", "secret"].index)
    assert kinds[:2] == ["legacy", "legacy"] and {"publishable", "secret"} <= set(kinds)


def test_legacy_entries_carry_prefix_and_hash(gw, legacy_enabled):
    legacy = {k["id"]: k for k in gw.admin("GET", "/api-keys").json() if k["type"] == "legacy"}
    for name, token in (("anon", ANON), ("service_role", SERVICE_ROLE)):
        assert legacy[name]["hash"] == apikeys.hash_key(token)
        assert legacy[name]["prefix"] == token.rsplit(".", 1)[1][:5]
        assert legacy[name]["description"] == f"Legacy {name} API key"
    assert SERVICE_ROLE not in json.dumps(legacy)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/projects/default/api-keys", 200), ("GET", "/v1/projects/default", 200),
    ("GET", "/v1/projects/default/api-keys/legacy", 200), ("GET", "/v1/projects/nope/api-keys", 404),
    ("POST", "/v1/projects/default/api-keys", 400), ("PUT", "/v1/projects/default/api-keys", 405),
    ("GET", "/metrics", 200), ("GET", "/health", 200),
])
def test_answers_are_json_in_utf_8(gw, method, path, status):
    r = raw(gw, method, path, json=[] if method == "POST" else None)
    assert r.status_code == status
    expected = "text/plain; version=0.0.4; charset=utf-8" if path == "/metrics" else "application/json; charset=utf-8"
    assert r.headers["content-type"] == expected
    assert raw(gw, "GET", path, token=None).headers["content-type"] == "application/json; charset=utf-8" \
        or path == "/health"


@pytest.mark.parametrize("path", ["//v1/projects/default/api-keys", "/v1//projects/default///api-keys",
                                  "//v1/projects/default", "//health"])
def test_a_doubled_slash_is_one(gw, path):
    """What a client with a trailing slash in its base URL sends."""
    assert raw(gw, "GET", path).status_code == 200
    if "health" not in path:
        assert raw(gw, "GET", path, token=None).status_code == 401


def test_the_project_object(gw):
    r = gw.admin("GET", "")
    assert r.status_code == 200, r.text
    project = r.json()
    assert (project["id"], project["ref"], project["name"], project["status"]) == \
        ("default", "default", "default", "ACTIVE_HEALTHY")
    assert project["organization_id"] and project["organization_slug"]
    assert datetime.fromisoformat(project["created_at"])
    assert project["database"]["version"].split(".")[0] == project["database"]["postgres_engine"]
    assert "password" not in r.text and gw.env["GATEWAY_DATABASE_URL"] not in r.text
    assert raw(gw, "GET", "/v1/projects/otherproject").status_code == 404
    assert raw(gw, "GET", "/v1/projects/default", token=None).status_code == 401


def test_created_keys_work_at_once(gw):
    created = gw.create_key("publishable", "mobile_app")
    assert created["secret_jwt_template"] is None
    assert public_status(gw, created["api_key"]) in (502, 503)


def test_create_with_template(gw):
    template = {"role": "reporting", "app_metadata": {"team": "data"}}
    created = gw.create_key("secret", "reporting", secret_jwt_template=template)
    assert created["secret_jwt_template"] == template
    assert gw.admin("GET", f"/api-keys/{created['id']}").json()["secret_jwt_template"] == template


# --- legacy keys ------------------------------------------------------------------------------


def test_legacy_keys_listed_while_enabled(gw, legacy_enabled):
    assert gw.admin("GET", "/api-keys/legacy").json() == {"enabled": True, "configured": ["anon", "service_role"]}
    listing = gw.admin("GET", "/api-keys").json()
    legacy = {k["id"]: k for k in listing if k["type"] == "legacy"}
    assert set(legacy) == {"anon", "service_role"}
    assert legacy["anon"]["name"] == "anon" and legacy["service_role"]["name"] == "service_role"
    assert legacy["anon"]["api_key"] == ANON  # public anyway
    assert SERVICE_ROLE not in json.dumps(listing)  # not without reveal
    assert gw.admin("GET", "/api-keys/anon").json()["id"] == "anon"
    assert public_status(gw, ANON) in (502, 503)

    r = gw.admin("PUT", "/api-keys/legacy", params={"enabled": "false"})
    assert r.status_code == 200 and r.json() == {"enabled": False, "configured": ["anon", "service_role"]}
    assert gw.admin("GET", "/api-keys/legacy").json() == {"enabled": False, "configured": ["anon", "service_role"]}
    listing = gw.admin("GET", "/api-keys", params={"reveal": "true"}).json()
    assert [k for k in listing if k["type"] == "legacy"] == []
    assert gw.admin("GET", "/api-keys/anon").status_code == 404
    assert public_status(gw, ANON) == 401
    assert public_status(gw, SERVICE_ROLE) == 401

    r = gw.admin("PUT", "/api-keys/legacy", params={"enabled": "true"})
    assert r.json() == {"enabled": True, "configured": ["anon", "service_role"]}
    assert {k["id"] for k in gw.admin("GET", "/api-keys").json() if k["type"] == "legacy"} == {"anon", "service_role"}
    assert public_status(gw, ANON) in (502, 503)

    actions = [a["action"] for a in fetch_audit(gw) if a["action"].startswith("legacy.")]
    assert actions[-2:] == ["legacy.disable", "legacy.enable"]


@pytest.mark.parametrize("query", [{}, {"enabled": "maybe"}])
def test_legacy_put_needs_a_boolean(gw, query):
    r = gw.admin("PUT", "/api-keys/legacy", params=query)
    assert r.status_code in (400, 422)
    assert r.json()["field"] == "enabled" and "enabled" in r.json()["message"]
    assert gw.admin("GET", "/api-keys/legacy").json() == {"enabled": True, "configured": ["anon", "service_role"]}


@pytest.mark.parametrize("configured", [["anon"], []])
def test_the_legacy_answer_names_the_configured_keys(pg_server, configured):
    """``configured``, this gateway's addition to the Management API's answer: the legacy keys set,
    enabled or not (the API Keys page asks for the last use of those only)."""
    env = {"GATEWAY_DATABASE_URL": create_database(pg_server), "GATEWAY_JWT__SECRET": JWT_SECRET,
           "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN, **({"GATEWAY_LEGACY__ANON_KEY": ANON} if configured else {})}
    with Gateway(env) as g:
        assert g.admin("GET", "/api-keys/legacy").json() == {"enabled": True, "configured": configured}
        assert [k["id"] for k in g.admin("GET", "/api-keys").json() if k["type"] == "legacy"] == configured
        assert g.admin("GET", "/api-keys/service_role/usage").status_code == 404
        r = g.admin("PUT", "/api-keys/legacy", params={"enabled": "false"})
        assert r.json() == {"enabled": False, "configured": configured}
        assert g.admin("GET", "/api-keys/legacy").json() == {"enabled": False, "configured": configured}
        assert (g.admin("GET", "/api-keys/anon/usage").status_code == 200) is bool(configured)


# --- update -----------------------------------------------------------------------------------


def test_patch_name_description_template(gw):
    created = gw.create_key("secret", "to_rename", description="before")
    r = gw.admin("PATCH", f"/api-keys/{created['id']}",
                 json={"name": "renamed", "description": "after", "secret_jwt_template": {"role": "authenticated"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["description"], body["secret_jwt_template"]) == \
        ("renamed", "after", {"role": "authenticated"})
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(created["updated_at"])
    assert body["inserted_at"] == created["inserted_at"]
    assert (body["hash"], body["prefix"]) == (created["hash"], created["prefix"])
    assert_masked(body)
    got = gw.admin("GET", f"/api-keys/{created['id']}").json()
    assert (got["name"], got["description"]) == ("renamed", "after")
    # clearing the description, leaving the rest
    body = gw.admin("PATCH", f"/api-keys/{created['id']}", json={"description": None}).json()
    assert (body["name"], body["description"]) == ("renamed", None)
    updates = [a for a in fetch_audit(gw) if a["action"] == "api_key.update" and a["target"] == created["id"]]
    assert [u["details"]["fields"] for u in updates] == [["description", "name", "secret_jwt_template"],
                                                         ["description"]]
    assert all(u["actor"].startswith("admin-api") for u in updates)


# --- delete -----------------------------------------------------------------------------------


def test_delete_is_final_and_audited(gw):
    created = gw.create_key("secret", "leaked_key")
    key = created["api_key"]
    assert wait_public_status(gw, key, {502, 503}) in (502, 503)
    r = gw.admin("DELETE", f"/api-keys/{created['id']}",
                 params={"was_compromised": "true", "reason": "committed to a public repo"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == created["id"] and body["name"] == "leaked_key"
    assert key not in r.text
    assert public_status(gw, key) == 401  # this instance drops it at once
    assert gw.admin("GET", f"/api-keys/{created['id']}").status_code == 404
    assert gw.admin("DELETE", f"/api-keys/{created['id']}").status_code == 404
    assert gw.admin("PATCH", f"/api-keys/{created['id']}", json={"name": "revived"}).status_code == 404
    assert created["id"] not in {k["id"] for k in gw.admin("GET", "/api-keys").json()}
    [entry] = [a for a in fetch_audit(gw) if a["action"] == "api_key.delete" and a["target"] == created["id"]]
    assert entry["details"]["was_compromised"] is True
    assert entry["details"]["reason"] == "committed to a public repo"
    assert entry["actor"].startswith("admin-api")
    assert key not in json.dumps(entry)


def test_delete_without_compromise_flag(gw):
    created = gw.create_key("publishable", "rotated_out")
    assert gw.admin("DELETE", f"/api-keys/{created['id']}").status_code == 200
    [entry] = [a for a in fetch_audit(gw) if a["action"] == "api_key.delete" and a["target"] == created["id"]]
    assert entry["details"]["was_compromised"] is False and entry["details"]["reason"] is None


# --- bad bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "bogus", "name": "abcd"}, "type"),
    ({"type": "legacy", "name": "abcd"}, "type"),
    ({"name": "abcd"}, "type"),
    ({"type": "secret"}, "name"),
    ({"type": "secret", "name": "AB"}, "name"),
    ({"type": "secret", "name": "has-dash"}, "name"),
    ({"type": "secret", "name": "1abc"}, "name"),
    ({"type": "secret", "name": "a" * 65}, "name"),
    ({"type": "secret", "name": 1234}, "name"),
    ({"type": "secret", "name": "abcd", "description": 5}, "description"),
    ({"type": "secret", "name": "abcd", "secret_jwt_template": "service_role"}, "secret_jwt_template"),
    ({"type": "secret", "name": "abcd", "secret_jwt_template": ["role"]}, "secret_jwt_template"),
    ({"type": "secret", "name": "abcd", "secret_jwt_template": {"exp": 1}}, "secret_jwt_template"),
    ({"type": "secret", "name": "abcd", "secret_jwt_template": {"role": "anon", "exp": 1}}, "secret_jwt_template"),
    ({"type": "publishable", "name": "abcd", "secret_jwt_template": {"role": "anon"}}, "secret_jwt_template"),
    ([], "body"),
    ("a string", "body"),
])
def test_bad_create_bodies_name_the_field(gw, body, field):
    before = len(gw.admin("GET", "/api-keys").json())
    r = gw.admin("POST", "/api-keys", json=body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["field"] == field
    assert field in r.json()["message"]
    assert len(gw.admin("GET", "/api-keys").json()) == before


@pytest.mark.parametrize("content", [b"{not json", b"", b"{\"type\": \"secret\", \"name\": \"abcd\""])
def test_unparsable_bodies(gw, content):
    r = gw.admin("POST", "/api-keys", content=content, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    assert r.json()["field"] == "body"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "NO"}, "name"),
    ({"name": None}, "name"),
    ({"name": 5}, "name"),
    ({"description": ["x"]}, "description"),
    ({"secret_jwt_template": None}, "secret_jwt_template"),
    ({"secret_jwt_template": []}, "secret_jwt_template"),
    ({"secret_jwt_template": {"role": "x", "iss": "me"}}, "secret_jwt_template"),
    ([], "body"),
])
def test_bad_patch_bodies_name_the_field(gw, body, field):
    created = gw.create_key("secret", f"patch_{uuid.uuid4().hex[:6]}")
    r = gw.admin("PATCH", f"/api-keys/{created['id']}", json=body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["field"] == field and field in r.json()["message"]
    after = gw.admin("GET", f"/api-keys/{created['id']}").json()
    assert {k: v for k, v in after.items() if k != "api_key"} == {k: v for k, v in created.items() if k != "api_key"}


def test_publishable_keys_take_no_template_on_patch(gw):
    created = gw.create_key("publishable", "pub_patch")
    r = gw.admin("PATCH", f"/api-keys/{created['id']}", json={"secret_jwt_template": {"role": "anon"}})
    assert r.status_code == 400 and r.json()["field"] == "secret_jwt_template"


# --- nothing secret leaks ---------------------------------------------------------------------


def test_audit_and_logs_hold_no_key_material(gw):
    created = gw.create_key("secret", "canary_key")
    key = created["api_key"]
    gw.admin("PATCH", f"/api-keys/{created['id']}", json={"description": "canary"})
    assert wait_public_status(gw, key, {502, 503}) in (502, 503)
    gw.admin("DELETE", f"/api-keys/{created['id']}", params={"was_compromised": "true"})
    text = json.dumps(fetch_audit(gw))
    assert key not in text and key[len(created["prefix"]):] not in text
    logs = gw.logs()
    for secret in (key, ADMIN_TOKEN, SERVICE_ROLE):
        assert secret not in logs
    metrics = raw(gw, "GET", "/metrics").text
    assert key not in metrics and ADMIN_TOKEN not in metrics


def test_last_used_at_is_shown_for_keys_and_legacy_keys(gw):
    created = gw.create_key("publishable", "usage_tracked")
    assert created["last_used_at"] is None
    assert wait_public_status(gw, created["api_key"], {502, 503}) in (502, 503)
    assert public_status(gw, ANON) in (502, 503)
    deadline = time.monotonic() + 5
    while True:
        listing = {k["id"]: k for k in gw.admin("GET", "/api-keys").json()}
        if (listing[created["id"]]["last_used_at"] and listing["anon"]["last_used_at"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listing[created["id"]]["last_used_at"]
    assert listing["anon"]["last_used_at"]
    for key in listing.values():  # one shape for every key, legacy ones included
        assert KEY_FIELDS | {"last_used_at"} <= key.keys()


# --- hostile bodies: validated before anything is written, 400 naming the field -----------------


nested = partial(nested_template, role="service_role")


def names(gw: Gateway) -> set[str]:
    return {k["name"] for k in gw.admin("GET", "/api-keys").json()}


@pytest.mark.parametrize(("content", "field"), [
    (json.dumps({"type": "secret", "name": "deep_254", "secret_jwt_template": nested(254)}), "secret_jwt_template"),
    (json.dumps({"type": "secret", "name": "deep_17", "secret_jwt_template": nested(17)}), "secret_jwt_template"),
    (json.dumps({"type": "secret", "name": "deep_list", "secret_jwt_template": {"role": "x", "a": [[[[[[[[[[[[[[[[
        [1]]]]]]]]]]]]]]]]]}}), "secret_jwt_template"),
    ('{"type": "secret", "name": "nul_description", "description": "a\\u0000b"}', "description"),
    ('{"type": "secret", "name": "surrogate_desc", "description": "\\ud800"}', "description"),
    ('{"type": "secret", "name": "nul_template", "secret_jwt_template": {"role": "x", "c": "a\\u0000b"}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "nul_template_key", "secret_jwt_template": {"role": "x", "a\\u0000": 1}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "surrogate_tpl", "secret_jwt_template": {"role": "x", "c": "\\udfff"}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "nan_template", "secret_jwt_template": {"role": "x", "n": NaN}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "inf_template", "secret_jwt_template": {"role": "x", "n": 1e400}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "neg_inf_templ", "secret_jwt_template": {"role": "x", "n": -Infinity}}',
     "secret_jwt_template"),
    ('{"type": "secret", "name": "nul_role", "secret_jwt_template": {"role": "x\\u0000"}}', "secret_jwt_template"),
    ("[" * 100_000 + "]" * 100_000, "body"),  # too deep for any JSON parser's recursion
    ('{"type": "secret", "name": "\\ud800abc"}', "name"),
])
def test_hostile_create_bodies_are_refused_and_write_nothing(gw, content, field):
    before = names(gw)
    r = gw.admin("POST", "/api-keys", content=content.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and field in r.json()["message"]
    assert names(gw) == before
    assert gw.admin("GET", "/api-keys").status_code == 200  # and every listing still answers


def test_the_deepest_allowed_template_is_saved_and_answered(gw):
    created = gw.create_key("secret", "deep_16", secret_jwt_template=nested(16))
    assert created["secret_jwt_template"] == nested(16)
    assert gw.admin("GET", f"/api-keys/{created['id']}").json()["secret_jwt_template"] == nested(16)
    assert gw.admin("GET", "/api-keys").status_code == 200
    assert wait_public_status(gw, created["api_key"], {502, 503}) in (502, 503)  # it mints


@pytest.mark.parametrize(("content", "field"), [
    (json.dumps({"secret_jwt_template": nested(300)}), "secret_jwt_template"),
    ('{"description": "a\\u0000b"}', "description"),
    ('{"description": "\\udbff"}', "description"),
    ('{"secret_jwt_template": {"role": "x", "n": NaN}}', "secret_jwt_template"),
    ('{"secret_jwt_template": {"role": "x", "n": 1e400}}', "secret_jwt_template"),
])
def test_hostile_patch_bodies_change_nothing(gw, content, field):
    created = gw.create_key("secret", f"hostile_{uuid.uuid4().hex[:6]}")
    r = gw.admin("PATCH", f"/api-keys/{created['id']}", content=content.encode(),
                 headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    after = gw.admin("GET", f"/api-keys/{created['id']}").json()
    assert {k: v for k, v in after.items() if k != "api_key"} == {k: v for k, v in created.items() if k != "api_key"}


@pytest.mark.parametrize("reason", ["a%00b", "%ED%A0%80", "x" * 1025])
def test_a_delete_reason_that_cannot_be_stored_is_400_and_deletes_nothing(gw, reason):
    created = gw.create_key("publishable", f"keep_{uuid.uuid4().hex[:6]}")
    r = httpx.delete(f"{gw.admin_url}/v1/projects/default/api-keys/{created['id']}?reason={reason}",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    if reason == "%ED%A0%80":  # not UTF-8: decoded with a replacement character, which is storable
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "reason"
    assert gw.admin("GET", f"/api-keys/{created['id']}").status_code == 200  # still there
    assert public_status(gw, created["api_key"]) in (502, 503)


def test_unknown_body_fields_are_ignored(gw):
    """As the Management API does: the dashboard sends expose_as_env, newer clients send more."""
    body = {"type": "secret", "name": "with_extras", "expose_as_env": True, "api_key": "sb_secret_not_mine",
            "id": KEY_ID, "hash": "x" * 43, "type_": 1}
    r = gw.admin("POST", "/api-keys", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] != KEY_ID and created["api_key"] != "sb_secret_not_mine"
    assert apikeys.parse(created["api_key"], REF) == "secret"
    r = gw.admin("PATCH", f"/api-keys/{created['id']}", json={"description": "d", "expose_as_env": False,
                                                                "type": "publishable", "prefix": "sb_x"})
    assert r.status_code == 200, r.text
    assert (r.json()["type"], r.json()["description"], r.json()["prefix"]) == ("secret", "d", created["prefix"])
    # a key no JSON encoder could echo back is ignored too
    r = gw.admin("POST", "/api-keys", content=b'{"type": "secret", "name": "odd_extra", "\\ud800": 1}',
                 headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


# --- the admin token: a strict prefix is not the token ------------------------------------------


def prefixes(token: str) -> list[str]:
    return [token[:n] for n in (1, 8, len(token) // 2, len(token) - 1)]


@pytest.mark.parametrize("path", ["/v1/projects/default/api-keys", "/metrics"])
def test_a_strict_prefix_of_the_configured_token_is_refused(gw, path):
    for prefix in prefixes(ADMIN_TOKEN):
        r = raw(gw, "GET", path, token=prefix)
        assert r.status_code == 401, prefix
    assert raw(gw, "GET", path).status_code == 200


def test_a_strict_prefix_of_the_generated_token_is_refused(dsn):
    env = {"GATEWAY_DATABASE_URL": dsn, "GATEWAY_JWT__SECRET": JWT_SECRET}
    with Gateway(env) as g:
        token = json.loads((g.workdir / "data" / "initial-keys.json").read_text())["admin_token"]
        assert re.fullmatch(r"sbp_[a-f0-9]{40}", token)  # the form the Supabase CLI insists on
        url = g.admin_url + "/v1/projects/default/api-keys"
        for prefix in prefixes(token):
            assert httpx.get(url, headers={"Authorization": f"Bearer {prefix}"}).status_code == 401, prefix
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert token not in g.logs()


# --- 405: the Allow header names every method of the path ---------------------------------------


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", f"/api-keys/{KEY_ID}", {"GET", "PATCH", "DELETE"}),
    ("OPTIONS", f"/api-keys/{KEY_ID}", {"GET", "PATCH", "DELETE"}),
    ("DELETE", "/api-keys", {"GET", "POST"}),
    ("OPTIONS", "/api-keys", {"GET", "POST"}),
    ("POST", "/api-keys/legacy", {"GET", "PUT"}),
])
def test_405_lists_every_method_of_the_path(gw, method, path, allowed):
    r = gw.admin(method, path)
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
    assert r.json()["message"]


def test_options_without_the_token_is_401(gw):
    assert raw(gw, "OPTIONS", "/v1/projects/default/api-keys", token=None).status_code == 401


# --- the database unavailable (the whole outage is in test_database_outage) -----------------------


def test_503_is_documented_and_named(gw):
    doc = raw(gw, "GET", "/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path.startswith("/v1/"):
                assert {"401", "404", "503"} <= op["responses"].keys(), (method, path)
                assert "422" not in op["responses"]
                assert op["security"] == [{"HTTPBearer": []}]


def test_openapi_states_the_name_rule_and_the_bearer_scheme(gw):
    doc = raw(gw, "GET", "/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["HTTPBearer"]
        ["description"]}
    schemas = doc["components"]["schemas"]
    create_name = schemas["CreateApiKeyBody"]["properties"]["name"]
    assert (create_name["minLength"], create_name["maxLength"], create_name["pattern"]) == (4, 64, "^[a-z_][a-z0-9_]+$")
    assert schemas["UpdateApiKeyBody"]["properties"]["name"]["pattern"] == "^[a-z_][a-z0-9_]+$"
    assert schemas["CreateApiKeyBody"]["properties"]["secret_jwt_template"]["anyOf"][0]["required"] == ["role"]
    assert "HTTPValidationError" not in schemas


# --- schemathesis: the API against its own OpenAPI document -------------------------------------


# Every check; on PATCH, a schema-valid body may still be refused: a template on a publishable
# key is 400, which depends on the stored key's type and no schema can say.
SCHEMATHESIS_CONFIG = """
[checks]
enabled = true

[parameters]
ref = "default"

# What a JWT template may hold (4 KiB, 16 levels, no NUL in any string) and which key types take
# one depend on more than a JSON Schema can say: valid-looking ones may be refused with 400.
[[operations]]
include-method = "PATCH"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-method = "POST"
checks.positive_data_acceptance.enabled = false
"""


def test_the_api_keeps_its_openapi_document(dsn, tmp_path):
    """schemathesis, all phases and checks, 10 examples per operation, against a gateway of its
    own (it creates, changes and deletes keys, and switches legacy keys off). Run through its
    CLI: the pytest plugin of schemathesis 4 does not run under pytest 9."""
    import subprocess
    import sys
    from pathlib import Path

    env = {"GATEWAY_DATABASE_URL": dsn, "GATEWAY_JWT__SECRET": JWT_SECRET, "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
           "GATEWAY_LEGACY__ANON_KEY": ANON}
    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
    with Gateway(env) as g:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", g.admin_url + "/openapi.json",
             "--max-examples", "10", "--seed", "1", "--workers", "1",
             "--header", f"Authorization: Bearer {ADMIN_TOKEN}", "--generation-database", "none",
             "--no-color", "--suppress-health-check", "all", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
        assert "No issues found" in result.stdout
        assert "Traceback" not in g.logs()


# --- rate limits on keys (docs/protection.md) --------------------------------------------------------


def test_limits_on_create_get_patch_and_every_answer(gw):
    made = gw.create_key("secret", limits={"per_key": "1000/m", "per_ip": "60/m"})
    assert made["limits"] == {"per_key": "1000/m", "per_ip": "60/m"}
    path = f"/api-keys/{made['id']}"
    assert gw.admin("GET", path).json()["limits"] == {"per_key": "1000/m", "per_ip": "60/m"}
    # PATCH changes the members given, keeps the others; null clears one, or all of them.
    r = gw.admin("PATCH", path, json={"limits": {"per_ip": "100/5m"}})
    assert r.status_code == 200 and r.json()["limits"] == {"per_key": "1000/m", "per_ip": "100/5m"}
    r = gw.admin("PATCH", path, json={"limits": {"per_key": None}})
    assert r.json()["limits"] == {"per_key": None, "per_ip": "100/5m"}
    r = gw.admin("PATCH", path, json={"description": "untouched limits"})
    assert r.json()["limits"] == {"per_key": None, "per_ip": "100/5m"}
    r = gw.admin("PATCH", path, json={"limits": None})
    assert r.json()["limits"] == {"per_key": None, "per_ip": None}
    listed = {k["id"]: k for k in gw.admin("GET", "/api-keys").json()}
    assert all("limits" in k for k in listed.values())  # legacy entries too
    assert listed[made["id"]]["limits"] == {"per_key": None, "per_ip": None}
    plain = gw.create_key("publishable")
    assert plain["limits"] == {"per_key": None, "per_ip": None}


@pytest.mark.parametrize(("limits", "field"), [
    ({"per_key": "1000"}, "limits.per_key"), ({"per_ip": "0/m"}, "limits.per_ip"), ({"per_ip": "10/x"}, "limits.per_ip"),
    ({"per_key": 10}, "limits.per_key"), ({"per_keys": "10/m"}, "limits.per_keys"), ("10/m", "limits"),
    ({"per_key": "10/m\u0000"}, "limits.per_key"),
])
def test_bad_limits_are_400_naming_the_field(gw, limits, field):
    before = len(gw.admin("GET", "/api-keys").json())
    r = gw.admin("POST", "/api-keys", json={"type": "publishable", "name": "limited_bad", "limits": limits})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert len(gw.admin("GET", "/api-keys").json()) == before  # nothing half-written
    made = gw.create_key("publishable")
    r = gw.admin("PATCH", f"/api-keys/{made['id']}", json={"limits": limits})
    assert r.status_code == 400 and r.json()["field"] == field
    assert gw.admin("GET", f"/api-keys/{made['id']}").json()["limits"] == {"per_key": None, "per_ip": None}


def test_limit_changes_are_in_the_audit_log(gw):
    made = gw.create_key("publishable", limits={"per_ip": "60/m"})
    gw.admin("PATCH", f"/api-keys/{made['id']}", json={"limits": {"per_ip": "30/m"}})
    entry = [a for a in fetch_audit(gw) if a["target"] == made["id"] and a["action"] == "api_key.update"][-1]
    assert entry["details"]["limits"] == {"from": {"per_ip": "60/m"}, "to": {"per_ip": "30/m"}}


# --- restrictions and expiry (docs/protection.md) ------------------------------------------------------


def test_restrictions_on_create_patch_and_every_answer(gw):
    made = gw.create_key("publishable", expires_at="2031-01-02T03:04:05Z", allowed_origins=["https://*.example.com"],
                         allowed_ips=["10.1.2.3/8", "2001:db8::1"], allowed_services=["rest", "storage", "rest"])
    assert (made["expires_at"], made["expired"]) == ("2031-01-02T03:04:05+00:00", False)
    assert made["allowed_origins"] == ["https://*.example.com"]
    assert made["allowed_ips"] == ["10.0.0.0/8", "2001:db8::1/128"]  # canonical
    assert made["allowed_services"] == ["rest", "storage"]
    path = f"/api-keys/{made['id']}"
    r = gw.admin("PATCH", path, json={"allowed_ips": [], "expires_at": None})
    assert (r.json()["allowed_ips"], r.json()["expires_at"], r.json()["allowed_origins"]) == (
        [], None, ["https://*.example.com"])
    past = gw.admin("PATCH", path, json={"expires_at": "2020-01-01T00:00:00+02:00"}).json()
    assert past["expired"] is True
    every = gw.admin("GET", "/api-keys").json()
    assert all({"expires_at", "expired", "allowed_origins", "allowed_ips", "allowed_services"} <= set(k) for k in every)


@pytest.mark.parametrize(("body", "field"), [
    ({"allowed_origins": ["app.example.com"]}, "allowed_origins"),
    ({"allowed_origins": ["https://*.*.example.com"]}, "allowed_origins"),
    ({"allowed_origins": ["https://app.example.com/path"]}, "allowed_origins"),
    ({"allowed_origins": ["*"]}, "allowed_origins"),
    ({"allowed_origins": "https://app.example.com"}, "allowed_origins"),
    ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
    ({"allowed_ips": ["not-an-ip"]}, "allowed_ips"),
    ({"allowed_services": ["rest", "nope"]}, "allowed_services"),
    ({"allowed_services": ["rest"] * 8}, "allowed_services"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no offset: which time zone?
    ({"expires_at": 1893456000}, "expires_at"),
])
def test_bad_restrictions_are_400_naming_the_field(gw, body, field):
    before = len(gw.admin("GET", "/api-keys").json())
    r = gw.admin("POST", "/api-keys", json={"type": "secret", "name": "restricted_bad", **body})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert len(gw.admin("GET", "/api-keys").json()) == before


def test_restriction_changes_are_in_the_audit_log(gw):
    made = gw.create_key("secret", allowed_services=["rest"])
    gw.admin("PATCH", f"/api-keys/{made['id']}", json={"allowed_services": ["rest", "storage"],
                                                      "expires_at": "2031-01-01T00:00:00Z"})
    entry = [a for a in fetch_audit(gw) if a["target"] == made["id"] and a["action"] == "api_key.update"][-1]
    assert entry["details"]["allowed_services"] == {"from": ["rest"], "to": ["rest", "storage"]}
    assert entry["details"]["expires_at"] == {"from": None, "to": "2031-01-01T00:00:00+00:00"}
