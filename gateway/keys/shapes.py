"""What the admin API and the CLI take: the request models, with the rules of gateway.keys.checks
and the JSON Schema the OpenAPI document shows; checked before anything is written.

A new key field is a rule (in gateway.keys.checks, if it needs one), a line in ``KeyFields``
(create and update), one in ``ApiKeyResponse`` and one in ``key_json`` (gateway.keys.answers),
and its column: the store writes the fields a model holds.
"""

from __future__ import annotations

from datetime import datetime
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
from gateway.keys.checks import (
    MAX_LIST,
    MAX_TEMPLATE_DEPTH,
    MAX_TEXT,
    RESERVED_CLAIMS,
    ROLE_PATTERN,
    InvalidInput,
    check_expiry,
    check_ips,
    check_limit,
    check_name,
    check_origins,
    check_services,
    check_template,
    check_text,
)
from gateway.keys.ruleshapes import Methods, QuotaText, Resources
from gateway.routes import SERVICES

DEFAULT_TEMPLATE: dict[str, Any] = {"role": "service_role"}

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


