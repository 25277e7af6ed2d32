"""The rules of what the admin API and the CLI take, as plain functions: names, texts, JWT
templates, limits, origins, addresses, services, expiry, imported keys. Each raises
``InvalidInput`` naming the field; nothing is written before every rule holds."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from gateway.keys import apikeys
from gateway.routes import SERVICES

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
    """A rate limit in the ``COUNT/WINDOW`` notation."""
    from gateway.rules.limits import parse_limit

    try:
        return parse_limit(value).text
    except ValueError as e:
        raise InvalidInput("limits", str(e)) from None


MAX_LIST = 100  # entries of an allowed_* list


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


