"""What the admin API and the CLI take and give, web-free: the request models with their rules,
checked before anything is written, and the Management API's answer shapes.

A new key field is a rule (if it needs one), a line in ``KeyFields`` (create and update), one in
``ApiKeyResponse`` and one in ``key_json``, and its column: the store writes the fields a model holds.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from gateway.keys import apikeys
from gateway.keys.ruleshapes import Methods, QuotaAnswer, QuotaText, Resources, rules_json

DEFAULT_TEMPLATE: dict[str, Any] = {"role": "service_role"}
RESERVED_CLAIMS = frozenset({"iss", "ref", "iat", "exp", "nbf"})  # the gateway sets them
MAX_TEXT = 1024  # description, deletion reason
MAX_TEMPLATE_BYTES = 4096
MAX_TEMPLATE_DEPTH = 16  # nesting of objects and arrays in a JWT template
ROLE_PATTERN = r"[A-Za-z_][A-Za-z0-9_$-]{0,62}"
_ROLE_RE = re.compile(ROLE_PATTERN)
# What Postgres ``text`` and ``jsonb`` cannot hold: NUL, and UTF-16 surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class InvalidInput(ValueError):
    """Bad input, with the field it concerns; the message never holds key material."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- the rules ---------------------------------------------------------------------------------


def storable_text(field: str, value: str) -> str:
    if _UNSTORABLE.search(value):
        raise InvalidInput(field, "may not contain NUL characters or unpaired surrogates")
    return value


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not apikeys.valid_name(name):
        raise InvalidInput("name", "must be 4 to 64 characters of a-z, 0-9 and _, not starting with a digit")
    return name


def check_text(field: str, value: Any) -> str | None:
    """An optional free text (description, reason): a string Postgres can store, of bounded size."""
    if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
        raise InvalidInput(field, f"must be a string of at most {MAX_TEXT} characters")
    return None if value is None else storable_text(field, value)


def check_json(field: str, value: Any, max_depth: int) -> None:
    """JSON that jsonb stores and an answer can serialize: bounded nesting, storable strings
    (keys too), finite numbers. Walked without recursion, so any depth is refused cleanly."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise InvalidInput(field, f"is nested deeper than {max_depth} levels")
            if isinstance(node, list):
                stack.extend((v, depth + 1) for v in node)
                continue
            for k, v in node.items():
                if not isinstance(k, str):
                    raise InvalidInput(field, "object keys must be strings")
                storable_text(field, k)
                stack.append((v, depth + 1))
        elif isinstance(node, str):
            storable_text(field, node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidInput(field, "numbers must be finite (no NaN or Infinity)")
        elif not (node is None or isinstance(node, bool | int)):
            raise InvalidInput(field, "must be JSON")


def check_template(template: Any) -> dict[str, Any]:
    """A secret key's JWT template: an object with a ``role``; the gateway owns the time claims."""
    field = "secret_jwt_template"
    if not isinstance(template, dict):
        raise InvalidInput(field, "must be an object")
    check_json(field, template, MAX_TEMPLATE_DEPTH)
    role = template.get("role")
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role):
        raise InvalidInput(field, "must have a 'role' that is a valid Postgres role name")
    reserved = sorted(RESERVED_CLAIMS & template.keys())
    if reserved:
        raise InvalidInput(field, f"may not set {', '.join(reserved)}")
    if len(json.dumps(template).encode()) > MAX_TEMPLATE_BYTES:
        raise InvalidInput(field, "is larger than 4 KiB")
    return template


def check_limit(value: str) -> str:
    """A rate limit in the ``COUNT/WINDOW`` notation (SPEC section 10)."""
    from gateway.rules.limits import parse_limit

    try:
        return parse_limit(value).text
    except ValueError as e:
        raise InvalidInput("limits", str(e)) from None


MAX_LIST = 100  # entries of an allowed_* list
SERVICES = ("rest", "graphql", "realtime", "functions", "auth", "storage", "meta")


def _unique(field: str, values: list[str]) -> list[str]:
    if len(values) > MAX_LIST:
        raise InvalidInput(field, f"may hold at most {MAX_LIST} entries")
    return list(dict.fromkeys(values))


def check_origins(values: list[str]) -> list[str]:
    """Origin patterns (gateway.rules.origins): exact, ``*.`` subdomains, ``:*`` any port."""
    from gateway.rules.origins import parse_pattern

    for value in values:
        if parse_pattern(value) is None or value == "*":
            raise InvalidInput("allowed_origins", "entries must be origins such as https://app.example.com, "
                                                  "https://*.example.com or http://localhost:*")
    return _unique("allowed_origins", values)


def check_ips(values: list[str]) -> list[str]:
    """CIDRs or single addresses, kept in their canonical form (``10.0.0.0/8``, ``2001:db8::/32``)."""
    import ipaddress

    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise InvalidInput("allowed_ips", "entries must be IP addresses or CIDRs") from None
    return _unique("allowed_ips", out)


def check_services(values: list[str]) -> list[str]:
    if len(values) > len(SERVICES):
        raise InvalidInput("allowed_services", f"may hold at most {len(SERVICES)} entries")
    return _unique("allowed_services", values)


def check_expiry(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("expires_at", "must be an RFC 3339 time with its offset, e.g. 2026-12-31T23:59:00Z")
    return value


def check_import(api_key: str, key_type: str, checksum_ref: str) -> str:
    """A key to adopt must be of its type and carry the checksum of this gateway's ref."""
    if apikeys.parse(api_key, checksum_ref) != key_type:
        raise InvalidInput("key", f"is not a valid {key_type} key for checksum ref {checksum_ref!r}")
    return api_key


# --- request models: the rules above, with the JSON Schema the OpenAPI document shows -----------


Name = Annotated[str, AfterValidator(check_name), Field(json_schema_extra={
    "minLength": 4, "maxLength": 64, "pattern": f"^{apikeys.NAME_RE.pattern}$"})]
Text = Annotated[str, AfterValidator(lambda v: check_text("text", v)), Field(json_schema_extra={
    "maxLength": MAX_TEXT, "pattern": "^[^\\u0000]*$"})]
Template = Annotated[dict[str, Any], AfterValidator(check_template), WithJsonSchema({
    "type": "object", "required": ["role"], "additionalProperties": True,
    "properties": {"role": {"type": "string", "pattern": f"^{ROLE_PATTERN}$"}},
    "description": "Claims of the JWTs minted for this secret key: a 'role', none of "
                   f"{', '.join(sorted(RESERVED_CLAIMS))}, at most 4 KiB and {MAX_TEMPLATE_DEPTH} levels deep.",
})]


LimitText = Annotated[str, AfterValidator(check_limit), Field(json_schema_extra={
    "pattern": "^[1-9][0-9]{0,9}/([1-9][0-9]{0,5})?[smhd]$", "examples": ["600/m", "100/5m"]})]


Origins = Annotated[list[Annotated[str, Field(max_length=255)]], AfterValidator(check_origins), Field(
    max_length=MAX_LIST, json_schema_extra={"examples": [["https://app.example.com", "https://*.example.com"]]})]
Ips = Annotated[list[Annotated[str, Field(max_length=64)]], AfterValidator(check_ips), Field(
    max_length=MAX_LIST, json_schema_extra={"examples": [["203.0.113.0/24", "2001:db8::/32"]]})]
Services = Annotated[list[Literal[SERVICES]], AfterValidator(check_services),  # type: ignore[valid-type]
                     Field(max_length=len(SERVICES))]
def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str | datetime):  # a bare number would be read as epoch seconds
        raise InvalidInput("expires_at", "must be an RFC 3339 time, e.g. 2026-12-31T23:59:00Z")
    return value


Expiry = Annotated[datetime, BeforeValidator(_rfc3339_text), AfterValidator(check_expiry),
                   Field(json_schema_extra={"format": "date-time"})]


class Limits(BaseModel):
    """A key's own rate limits; a member left out (or null) takes the configured default."""

    model_config = ConfigDict(extra="forbid")  # a mistyped limit must not pass unnoticed
    per_key: LimitText | None = None
    per_ip: LimitText | None = None

    def stored(self, current: dict[str, Any] | None = None) -> dict[str, str] | None:
        """The column's value: ``current`` with the members given here changed."""
        merged = {**(current or {}), **self.model_dump(exclude_unset=True)}
        merged = {k: v for k, v in merged.items() if v is not None}
        return merged or None


class _Body(BaseModel):
    # Unknown fields are ignored, as the Management API does: newer clients send more
    # (the dashboard's expose_as_env, for one).
    model_config = ConfigDict(extra="ignore")

    def columns(self, *, given_only: bool = True) -> dict[str, Any]:
        """The fields (those given, or all), by column name: every field is its column, and the
        names are the model's own, never the caller's (they become SQL identifiers)."""
        values = self.model_dump(exclude_unset=given_only)
        return {name: values[name] for name in type(self).model_fields if name in values}


class KeyFields(_Body):
    """The fields a key's owner sets, at creation and later (``null`` clears them)."""

    description: Text | None = None
    limits: Limits | None = None
    expires_at: Expiry | None = None
    allowed_origins: Origins | None = None
    allowed_ips: Ips | None = None
    allowed_services: Services | None = None
    allowed_resources: Resources | None = None  # these three: gateway.keys.ruleshapes
    allowed_methods: Methods | None = None
    quota: QuotaText | None = None

    def columns(self, *, given_only: bool = True) -> dict[str, Any]:
        out = super().columns(given_only=given_only)
        if "limits" in out:
            out["limits"] = None if self.limits is None else self.limits.stored()
        for name in ("allowed_origins", "allowed_ips", "allowed_services", "allowed_resources", "allowed_methods"):
            if name in out and not out[name]:
                out[name] = None  # an empty list restricts nothing: stored as none
        return out

    def columns_for(self, row: Any) -> dict[str, Any]:
        """The columns that change on ``row``: the given fields, ``limits`` merged member by member."""
        out = self.columns()
        if self.limits is not None and "limits" in out:
            out["limits"] = self.limits.stored(row["limits"])
        return out


class CreateApiKeyBody(KeyFields):
    """``POST .../api-keys``; publishable keys always act as anon, so only secret keys take a template."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"type": {"const": "publishable"}}, "required": ["type"]},
        "then": {"properties": {"secret_jwt_template": {"type": "null"}}},
    })
    type: Literal["publishable", "secret"]
    name: Name
    secret_jwt_template: Template | None = None

    @model_validator(mode="after")
    def _template_for_secret_keys(self) -> "CreateApiKeyBody":
        if self.type == "publishable" and self.secret_jwt_template is not None:
            raise InvalidInput("secret_jwt_template", "only secret keys have a JWT template")
        if self.type == "secret" and self.secret_jwt_template is None:
            self.secret_jwt_template = dict(DEFAULT_TEMPLATE)
        return self

    def columns(self, *, given_only: bool = False) -> dict[str, Any]:
        return super().columns(given_only=given_only)  # a new key: every field, defaults included


def _no_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)  # an absent field stays as it is: there is no default


class UpdateApiKeyBody(KeyFields):
    """``PATCH .../api-keys/{id}``: the fields given change, the others stay. ``None`` defaults
    only mark a field as absent: ``name`` and ``secret_jwt_template`` may not be null."""

    model_config = ConfigDict(json_schema_extra=_no_defaults)
    name: Name = None  # type: ignore[assignment]
    secret_jwt_template: Template = None  # type: ignore[assignment]

    def check_for(self, key_type: str) -> None:
        if "secret_jwt_template" in self.model_fields_set and key_type != "secret":
            raise InvalidInput("secret_jwt_template", "only secret keys have a JWT template")


def first_error(errors: list[Any]) -> InvalidInput:
    """The first of pydantic's errors as one InvalidInput naming its field (never its input)."""
    first = errors[0]
    loc = []
    for part in first.get("loc", ()):
        if not isinstance(part, str) or not part.isidentifier():
            break  # an index or "[key]": the field named so far is the one at fault
        if part not in ("body", "query", "path"):
            loc.append(part)
    error = first.get("ctx", {}).get("error")
    if isinstance(error, InvalidInput):  # one of the rules above
        field, message = (".".join(loc) if loc else error.field), error.message
    else:  # ("body", 7) for a JSON syntax error at offset 7: "body"
        field = ".".join(loc) if loc else "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    # An unknown key may hold anything: echo it bounded and encodable.
    return InvalidInput(field[:64].encode("utf-8", "replace").decode("utf-8"), message)


def parse(model: type[_Body], **values: Any) -> Any:
    """Build a request model from plain values (the CLI's flags), or raise InvalidInput."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise first_error(e.errors()) from None


# --- answers: the Management API's ApiKeyResponse --------------------------------------------------


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
