"""What the admin API and the CLI give: the Management API's answer shapes (``ApiKeyResponse``,
legacy keys, usage, the project) and the functions that build them from stored rows."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.keys import apikeys
from gateway.keys.ruleshapes import QuotaAnswer, rules_json
from gateway.keys.shapes import Limits


class ApiKeyResponse(BaseModel):
    """A key as every answer shows it; ``api_key`` in full only at creation (masked afterwards)."""

    id: str
    type: Literal["publishable", "secret", "legacy"]
    prefix: str | None
    name: str
    description: str | None
    hash: str | None
    secret_jwt_template: dict[str, Any] | None
    inserted_at: str | None = Field(json_schema_extra={"format": "date-time"})
    updated_at: str | None = Field(json_schema_extra={"format": "date-time"})
    last_used_at: str | None = Field(json_schema_extra={"format": "date-time"})
    api_key: str
    limits: Limits
    expires_at: str | None = Field(json_schema_extra={"format": "date-time"})
    expired: bool
    allowed_origins: list[str]
    allowed_ips: list[str]
    allowed_services: list[str]
    allowed_resources: list[str]
    allowed_methods: list[str]
    quota: QuotaAnswer | None


LegacyName = Literal["anon", "service_role"]
LEGACY_NAMES: tuple[LegacyName, ...] = ("anon", "service_role")


class LegacyApiKeysResponse(BaseModel):
    """The legacy switch as the Management API answers it, plus ``configured`` (this gateway's own
    field; clients that do not know it ignore it): the legacy keys set in ``legacy.*``, whether
    enabled or not. Empty: there are none to enable, disable or count."""

    enabled: bool
    configured: list[LegacyName]


class ErrorBody(BaseModel):
    message: str
    field: str | None = None


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def shown_key(row: Any) -> str:
    """``api_key`` in a listing: a publishable key in full (kept since migration 0002; older ones
    were stored as hashes only and stay masked), a secret key always masked."""
    if row["type"] == "publishable" and row.get("publishable_key"):
        return row["publishable_key"]
    return apikeys.masked(row["type"])


def key_json(row: Any, api_key: str | None = None) -> dict[str, Any]:
    """A stored key as an ``ApiKeyResponse``. ``api_key``: the plaintext, given at creation."""
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "prefix": row["prefix"],
        "name": row["name"],
        "description": row["description"],
        "hash": row["hash"],
        "secret_jwt_template": row["secret_jwt_template"] if row["type"] == "secret" else None,
        "inserted_at": _iso(row["inserted_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_used_at": _iso(row["last_used_at"]),
        "api_key": api_key if api_key is not None else shown_key(row),
        "limits": limits_json(row.get("limits")),
        **restrictions_json(row),
        **rules_json(row),
    }


def restrictions_json(row: Any) -> dict[str, Any]:
    expires = row.get("expires_at")
    return {"expires_at": _iso(expires), "expired": expires is not None and expires <= datetime.now(timezone.utc),
            "allowed_origins": list(row.get("allowed_origins") or []), "allowed_ips": list(row.get("allowed_ips") or []),
            "allowed_services": list(row.get("allowed_services") or [])}


def limits_json(stored: dict[str, Any] | None) -> dict[str, str | None]:
    stored = stored or {}
    return {"per_key": stored.get("per_key"), "per_ip": stored.get("per_ip")}


# Fields whose old and new values the audit log keeps: limits and restrictions (no key material).
AUDITED = ("limits", "expires_at", "allowed_origins", "allowed_ips", "allowed_services", "allowed_resources",
           "allowed_methods", "quota")


def audit_changes(row: Any, sets: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return _iso(value) if isinstance(value, datetime) else value

    return {field: {"from": plain(row[field]), "to": plain(sets[field])} for field in AUDITED if field in sets}


def legacy_json(name: str, token: str, *, reveal: bool, last_used: str | None) -> dict[str, Any]:
    """A configured legacy JWT key as an ``ApiKeyResponse``: ``anon`` is public, ``service_role`` only
    with ``reveal`` (it is a secret key). Like the hosted entries, with a ``hash`` (SHA256 of the
    JWT) and a short ``prefix`` (the start of its signature, which tells two JWTs apart)."""
    shown = token if (reveal or name == "anon") else "eyJ" + apikeys.MASK_CHAR * 32
    return {"id": name, "type": "legacy", "prefix": token.rpartition(".")[2][:5], "name": name,
            "description": f"Legacy {name} API key", "hash": apikeys.hash_key(token), "secret_jwt_template": None,
            "inserted_at": None, "updated_at": None, "last_used_at": last_used, "api_key": shown,
            "limits": limits_json(None), **restrictions_json({}), **rules_json({})}


USAGE_HOURS = 7 * 24  # the usage chart: requests per hour over the last 7 days


class UsageHour(BaseModel):
    start: str = Field(json_schema_extra={"format": "date-time"})
    requests: int


class UsageResponse(BaseModel):
    """``GET .../api-keys/{id}/usage``: requests per hour, oldest first, the current hour last; as
    of the workers' last flush (every ``keys.last_used_flush_seconds``)."""

    id: str
    last_used_at: str | None = Field(json_schema_extra={"format": "date-time"})
    total: int
    hours: list[UsageHour]


def usage_json(key_id: str, counts: dict[int, int], now_hour: int, last_used_at: str | None) -> dict[str, Any]:
    """``counts``: requests per hour since the epoch; every one of the last ``USAGE_HOURS`` is listed."""
    hours = [{"start": datetime.fromtimestamp(h * 3600, timezone.utc).isoformat(), "requests": counts.get(h, 0)}
             for h in range(now_hour - USAGE_HOURS + 1, now_hour + 1)]
    return {"id": key_id, "last_used_at": last_used_at, "total": sum(h["requests"] for h in hours), "hours": hours}


class ProjectDatabase(BaseModel):
    host: str
    version: str
    postgres_engine: str
    release_channel: str


class ProjectResponse(BaseModel):
    """``GET /v1/projects/{ref}``: the Management API's project, as far as a self-hosted one has
    one (the Supabase CLI reads ``ref``, ``name`` and the organization)."""

    id: str
    ref: str
    organization_id: str
    organization_slug: str
    name: str
    region: str
    created_at: str | None = Field(json_schema_extra={"format": "date-time"})
    status: str
    database: ProjectDatabase


def project_json(ref: str, db_host: str, version: str, created_at: datetime | None) -> dict[str, Any]:
    return {"id": ref, "ref": ref, "organization_id": "self-hosted", "organization_slug": "self-hosted",
            "name": ref, "region": "self-hosted", "created_at": _iso(created_at), "status": "ACTIVE_HEALTHY",
            "database": {"host": db_host, "version": version, "postgres_engine": version.split(".")[0],
                         "release_channel": "ga"}}
