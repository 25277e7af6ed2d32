"""The request models and answer shapes shared by the admin API and the CLI (docs/requests.md, docs/management-clients.md):
the rules every key field follows before anything is written, and the Management API's
``ApiKeyResponse``. Pure tests, no database."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from gateway.keys import apikeys, checks, shapes
from gateway.keys.answers import ApiKeyResponse, ProjectResponse, key_json, legacy_json, project_json
from gateway.keys.checks import InvalidInput
from gateway.keys.shapes import DEFAULT_TEMPLATE, CreateApiKeyBody, UpdateApiKeyBody
from tests.factories import nested_template


def refused(model, **values) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        shapes.parse(model, **values)
    message = str(info.value)
    assert "\n" not in message and info.value.field in message
    return info.value


# --- create ------------------------------------------------------------------------------------


def test_a_new_secret_key_gets_the_default_template():
    body = shapes.parse(CreateApiKeyBody, type="secret", name="backend")
    assert body.secret_jwt_template == DEFAULT_TEMPLATE == {"role": "service_role"}
    assert body.secret_jwt_template is not DEFAULT_TEMPLATE  # never the shared dict itself
    assert body.columns() == {"description": None, "type": "secret", "name": "backend",
                              "secret_jwt_template": {"role": "service_role"}, "limits": None,
                              "expires_at": None, "allowed_origins": None, "allowed_ips": None,
                              "allowed_services": None, "allowed_resources": None, "allowed_methods": None,
                              "quota": None}
    publishable = shapes.parse(CreateApiKeyBody, type="publishable", name="web_app", description="d")
    assert publishable.columns()["secret_jwt_template"] is None


@pytest.mark.parametrize(("values", "field"), [
    ({"type": "anon", "name": "abcd"}, "type"),
    ({"type": "legacy", "name": "abcd"}, "type"),
    ({"name": "abcd"}, "type"),
    ({"type": "secret", "name": "ab"}, "name"),
    ({"type": "secret", "name": "Bad-Name"}, "name"),
    ({"type": "secret", "name": "1abc"}, "name"),
    ({"type": "secret", "name": "a" * 65}, "name"),
    ({"type": "secret", "name": "abcd\n"}, "name"),
    ({"type": "secret", "name": None}, "name"),
    ({"type": "secret", "name": 1234}, "name"),
    ({"type": "secret", "name": "abcd", "description": "x" * 1025}, "description"),
    ({"type": "secret", "name": "abcd", "description": 5}, "description"),
    ({"type": "publishable", "name": "abcd", "secret_jwt_template": {"role": "anon"}}, "secret_jwt_template"),
])
def test_create_rules(values, field):
    assert refused(CreateApiKeyBody, **values).field == field


BAD_TEMPLATES = [
    [], "service_role", 5, {}, {"role": ""}, {"role": 5}, {"role": "has space"}, {"role": "x" * 64},
    {"role": "anon", "exp": 1}, {"role": "anon", "iss": "x"}, {"role": "anon", "ref": "x"},
    {"role": "anon", "iat": 1}, {"role": "anon", "nbf": 1}, {"role": "anon", "blob": "x" * 5000},
    # what Postgres jsonb cannot hold, or an answer cannot serialize
    nested_template(17), nested_template(254), {"role": "x", "a": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]},
    {"role": "x", "c": "a\x00b"}, {"role": "x", "a\x00": 1}, {"role": "x\x00"},
    {"role": "x", "c": "\ud800"}, {"role": "x", "\udfff": 1},
    {"role": "x", "n": float("nan")}, {"role": "x", "n": float("inf")}, {"role": "x", "n": [float("-inf")]},
    {"role": "x", 1: "non-string key"}, {"role": "x", "o": object()},
]


@pytest.mark.parametrize("template", BAD_TEMPLATES)
def test_template_rules_on_create_and_update(template):
    assert refused(CreateApiKeyBody, type="secret", name="abcd", secret_jwt_template=template).field == \
        "secret_jwt_template"
    assert refused(UpdateApiKeyBody, secret_jwt_template=template).field == "secret_jwt_template"


def test_the_deepest_and_largest_templates_allowed():
    assert checks.check_template(nested_template(16)) == nested_template(16)
    big = {"role": "x", "blob": "x" * (checks.MAX_TEMPLATE_BYTES - 40)}
    assert checks.check_template(big) == big
    assert checks.check_template({"role": "x", "unicode": "\U0001f600", "n": 1.5, "i": 10**30, "b": None})


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udcff", "x" * 1025])
def test_text_postgres_cannot_hold(text):
    assert refused(CreateApiKeyBody, type="secret", name="abcd", description=text).field == "description"
    assert refused(UpdateApiKeyBody, description=text).field == "description"
    with pytest.raises(InvalidInput) as info:
        checks.check_text("reason", text)
    assert info.value.field == "reason"


# --- update ------------------------------------------------------------------------------------


def test_an_update_holds_only_the_fields_given():
    assert shapes.parse(UpdateApiKeyBody).columns() == {}
    assert shapes.parse(UpdateApiKeyBody, description=None).columns() == {"description": None}  # clears it
    assert shapes.parse(UpdateApiKeyBody, name="renamed", secret_jwt_template={"role": "x"}).columns() == \
        {"name": "renamed", "secret_jwt_template": {"role": "x"}}


@pytest.mark.parametrize(("values", "field"), [
    ({"name": "NO"}, "name"), ({"name": None}, "name"), ({"name": 5}, "name"),
    ({"description": 7}, "description"), ({"name": "good", "description": []}, "description"),
    ({"secret_jwt_template": None}, "secret_jwt_template"),
])
def test_update_rules(values, field):
    assert refused(UpdateApiKeyBody, **values).field == field


def test_only_secret_keys_take_a_template_later():
    body = shapes.parse(UpdateApiKeyBody, secret_jwt_template={"role": "x"})
    body.check_for("secret")
    with pytest.raises(InvalidInput) as info:
        body.check_for("publishable")
    assert info.value.field == "secret_jwt_template"
    shapes.parse(UpdateApiKeyBody, name="renamed").check_for("publishable")


@pytest.mark.parametrize("model", [CreateApiKeyBody, UpdateApiKeyBody])
def test_unknown_fields_are_ignored(model):
    """As the Management API does: newer clients send more (the dashboard's expose_as_env)."""
    body = shapes.parse(model, type="secret", name="abcd", expose_as_env=True, api_key="sb_secret_x",
                        id="00000000-0000-4000-8000-000000000001", hash="x", **{"\ud800": 1, "a\x00": 2})
    assert set(body.columns()) <= set(model.model_fields)
    assert "additionalProperties" not in model.model_json_schema()


def test_errors_name_the_field_as_it_can_be_echoed():
    error = shapes.first_error([{"loc": ("body", "\ud800" + "x" * 100), "msg": "bad", "type": "x"}])
    assert len(error.field) <= 64
    error.field.encode("utf-8")  # no lone surrogate left


# --- answers -----------------------------------------------------------------------------------


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def row(key_type: str, stored: bool = True, **extra) -> dict:
    key = apikeys.generate(key_type, "ref")  # type: ignore[arg-type]
    return {"id": uuid.uuid4(), "type": key_type, "prefix": apikeys.display_prefix(key), "name": "abcd",
            "description": None, "hash": apikeys.hash_key(key),
            "secret_jwt_template": DEFAULT_TEMPLATE if key_type == "secret" else None,
            "inserted_at": NOW, "updated_at": NOW, "last_used_at": None,
            "publishable_key": key if key_type == "publishable" and stored else None, **extra}


def test_key_json_is_the_api_key_response():
    r = row("secret")
    out = key_json(r, "sb_secret_plaintext")
    assert list(out) == list(ApiKeyResponse.model_fields)  # the answer and its documented model agree
    ApiKeyResponse.model_validate(out)
    assert out["id"] == str(r["id"]) and out["inserted_at"] == NOW.isoformat() and out["last_used_at"] is None
    assert out["api_key"] == "sb_secret_plaintext"  # at creation only
    later = key_json(r)
    assert later["api_key"] == apikeys.masked("secret")
    assert later["secret_jwt_template"] == DEFAULT_TEMPLATE


def test_publishable_keys_are_shown_in_full_secret_keys_never():
    pub = row("publishable")
    assert key_json(pub)["api_key"] == pub["publishable_key"]
    assert apikeys.parse(key_json(pub)["api_key"], "ref") == "publishable"
    older = row("publishable", stored=False)  # created before migration 0002: only its hash is known
    assert key_json(older)["api_key"] == apikeys.masked("publishable")
    secret = row("secret", publishable_key="sb_secret_never_shown")  # the column's CHECK forbids it anyway
    assert key_json(secret)["api_key"] == apikeys.masked("secret")


def test_a_publishable_key_never_shows_a_template():
    assert key_json(row("publishable", secret_jwt_template={"role": "x"}))["secret_jwt_template"] is None


def test_legacy_entries_carry_prefix_and_hash_like_the_hosted_ones():
    jwt_anon, jwt_service = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.tbn2DsIgNaTuRe", "eyJh.eyJz.OxwOzSiGn"
    anon = legacy_json("anon", jwt_anon, reveal=False, last_used=None)
    assert list(anon) == list(ApiKeyResponse.model_fields)
    ApiKeyResponse.model_validate(anon)
    assert (anon["id"], anon["name"], anon["type"], anon["api_key"]) == ("anon", "anon", "legacy", jwt_anon)
    assert anon["description"] == "Legacy anon API key"
    assert anon["hash"] == apikeys.hash_key(jwt_anon) and len(anon["hash"]) == 43
    assert anon["prefix"] == "tbn2D"
    hidden = legacy_json("service_role", jwt_service, reveal=False, last_used="2026-01-01T00:00:00+00:00")
    assert jwt_service not in str(hidden) and hidden["last_used_at"] == "2026-01-01T00:00:00+00:00"
    assert (hidden["prefix"], hidden["hash"]) == ("OxwOz", apikeys.hash_key(jwt_service))
    assert legacy_json("service_role", jwt_service, reveal=True, last_used=None)["api_key"] == jwt_service


def test_the_project_object():
    out = project_json("abcdefghijklmnopqrst", "db", "17.5", NOW)
    ProjectResponse.model_validate(out)
    assert (out["id"], out["ref"], out["name"], out["status"]) == \
        ("abcdefghijklmnopqrst", "abcdefghijklmnopqrst", "abcdefghijklmnopqrst", "ACTIVE_HEALTHY")
    assert out["database"] == {"host": "db", "version": "17.5", "postgres_engine": "17", "release_channel": "ga"}
    assert out["created_at"] == NOW.isoformat()
    assert out["organization_id"] and out["organization_slug"]
