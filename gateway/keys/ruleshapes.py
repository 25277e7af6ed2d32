"""The key fields of docs/protection.md that say what a key may do, as the admin API and the CLI
take and show them: ``allowed_resources``, ``allowed_methods`` and ``quota`` (gateway.keys.shapes
declares them on its models; the rules and answers live here).

A quota is set as its notation (``"100000/month"``) and shown as an object with what is used and
left: ``{"limit": "100000/month", "used": 1234, "left": 98766, "resets_at": "..."}``. An answer's
object is taken back as it is (its ``limit`` counts, the rest is read-only), so a client that
PATCHes back what it read changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from gateway.keys.checks import InvalidInput
from gateway.rules.keyrules import METHODS
from gateway.rules.quota import parse_quota, quota_json
from gateway.rules.resources import MAX_ENTRY, parse_entry

MAX_RESOURCES = 100
QUOTA_PATTERN = "^[1-9][0-9]{0,11}/(day|month)$"
_QUOTA_MEMBERS = frozenset({"limit", "used", "left", "resets_at"})
# What a key has used of its quota in the current period, as the store's rows say (every worker
# writes its counts every keys.quota_flush_seconds): a column of every key row the store reads.
QUOTA_USED_SQL = (
    "CASE WHEN api_keys.quota IS NULL THEN NULL ELSE (SELECT coalesce(sum(q.n), 0)::bigint FROM gateway.quota_usage q"
    " WHERE q.key_id = api_keys.id AND q.day >= CASE WHEN api_keys.quota LIKE '%/day'"
    " THEN (now() AT TIME ZONE 'UTC')::date ELSE date_trunc('month', now() AT TIME ZONE 'UTC')::date END)"
    " END AS quota_used")


def _invalid(field: str, message: str) -> Exception:
    return InvalidInput(field, message)


def check_resources(values: list[str]) -> list[str]:
    """PostgREST resources or patterns (gateway.rules.resources), each once."""
    for value in values:
        try:
            parse_entry(value)
        except ValueError as e:
            raise _invalid("allowed_resources", str(e)) from None
    if len(values) > MAX_RESOURCES:
        raise _invalid("allowed_resources", f"may hold at most {MAX_RESOURCES} entries")
    return list(dict.fromkeys(values))


def _upper(values: Any) -> Any:
    if isinstance(values, list):
        return [v.strip().upper() if isinstance(v, str) else v for v in values]
    return values


def check_methods(values: list[str]) -> list[str]:
    if len(values) > len(METHODS):
        raise _invalid("allowed_methods", f"may hold at most {len(METHODS)} entries")
    return list(dict.fromkeys(values))


def _quota_text(value: Any) -> Any:
    """The notation, from itself or from an answer's object (its ``limit``)."""
    if isinstance(value, dict):
        extra = sorted(value.keys() - _QUOTA_MEMBERS)
        if extra or "limit" not in value:
            raise _invalid("quota", "must be COUNT/day or COUNT/month, or an object with its limit")
        value = value["limit"]
    if not isinstance(value, str):
        raise _invalid("quota", "must be COUNT/day or COUNT/month, e.g. 100000/month")
    return value


def check_quota(value: str) -> str:
    try:
        return parse_quota(value).text
    except ValueError as e:
        raise _invalid("quota", str(e)) from None


Resources = Annotated[list[Annotated[str, Field(max_length=MAX_ENTRY)]], AfterValidator(check_resources), Field(
    max_length=MAX_RESOURCES, json_schema_extra={
        "examples": [["todos", "public_profiles", "rpc/search_*"]],
        "description": "PostgREST resources this key may reach below /rest/v1: tables and views by name, functions "
                       "as rpc/name, another schema's as schema.name, * for any run of characters but / and . "
                       "(rpc/search_*); 'graphql' (never a pattern) allows /graphql/v1 and the OpenAPI root. "
                       "Other resources: 403 FORBIDDEN_RESOURCE. Empty or null: every one."})]
Methods = Annotated[list[Literal[METHODS]], BeforeValidator(_upper), AfterValidator(check_methods),  # type: ignore[valid-type]
                    Field(max_length=len(METHODS), json_schema_extra={
                        "examples": [["GET", "HEAD"]],
                        "description": "HTTP methods this key may use (GET allows HEAD; a Realtime socket is a GET, "
                                       "and sending broadcasts or presence over it needs POST). Other methods: 403 "
                                       "FORBIDDEN_METHOD; preflights are never refused. Empty or null: every one."})]
QuotaText = Annotated[str, BeforeValidator(_quota_text), AfterValidator(check_quota), WithJsonSchema({
    "oneOf": [{"type": "string", "pattern": QUOTA_PATTERN, "examples": ["100000/month", "5000/day"]},
              {"type": "object", "required": ["limit"], "additionalProperties": False,
               "properties": {"limit": {"type": "string", "pattern": QUOTA_PATTERN},
                              **{m: {"readOnly": True} for m in sorted(_QUOTA_MEMBERS - {"limit"})}}}],
    "description": "Requests this key may make per calendar day or month in UTC; then 429 OVER_QUOTA until the "
                   "period ends. An answer's quota object is taken back as its limit. null: no quota."})]


class QuotaAnswer(BaseModel):
    """A key's quota with what is used of it (as of the workers' last writes) and when it resets."""

    limit: str
    used: int
    left: int
    resets_at: str = Field(json_schema_extra={"format": "date-time"})


def rules_json(row: Any) -> dict[str, Any]:
    """The section 14 fields of a stored key (a legacy key: none)."""
    return {"allowed_resources": list(row.get("allowed_resources") or []),
            "allowed_methods": list(row.get("allowed_methods") or []),
            "quota": quota_json(row.get("quota"), row.get("quota_used"))}
