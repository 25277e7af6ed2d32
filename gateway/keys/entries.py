"""What the request path knows of one key: a ``KeyEntry``, made from a row of the key table or
from a legacy JWT key of the configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt

from gateway.config import Settings
from gateway.rules.keyrules import KeyRules, rules_for
from gateway.rules.limits import Limit, parse_limit
from gateway.rules.quota import Quota, parse_quota
from gateway.rules.restrictions import Restrictions, restrictions_for

T = TypeVar("T")

log = logging.getLogger("gateway")


@dataclass(slots=True, eq=False)
class KeyEntry:
    """One key as the request path needs it. Its minted JWT is cached on it (see tokens)."""

    id: str
    type: str  # publishable | secret | legacy
    prefix: str
    role: str
    claims: dict[str, Any]
    per_key: Limit | None = None  # its own limits; None: the configured default, if any
    per_ip: Limit | None = None
    expires_at: float | None = None  # epoch seconds; None: never
    restrictions: Restrictions | None = None  # None: usable from anywhere, for anything
    rules: KeyRules | None = None  # allowed resources and methods; None: every one
    quota: Quota | None = None  # None: no quota
    token: str = ""
    token_renew_at: float = 0.0

    def same(self, other: "KeyEntry") -> bool:
        """Nothing the request path reads differs (the cached token may be kept)."""
        return (self.id == other.id and self.prefix == other.prefix and self.claims == other.claims
                and self.type == other.type and self.per_key == other.per_key
                and self.per_ip == other.per_ip and self.expires_at == other.expires_at
                and self.restrictions is other.restrictions and self.rules is other.rules
                and self.quota == other.quota)

    @property
    def is_secret(self) -> bool:
        return self.type == "secret" or (self.type == "legacy" and self.role == "service_role")


ANON_CLAIMS: dict[str, Any] = {"role": "anon"}
SERVICE_ROLE_CLAIMS: dict[str, Any] = {"role": "service_role"}
_TYPES = {"publishable": "publishable", "secret": "secret"}  # one string object per type


def entry_from_row(row: Any) -> KeyEntry:
    """Claims dicts are shared between keys with the same template (never mutated)."""
    key_type = _TYPES[row["type"]]
    if key_type == "secret":
        template = row["secret_jwt_template"]
        claims = SERVICE_ROLE_CLAIMS if not template or template == SERVICE_ROLE_CLAIMS else dict(template)
    else:
        claims = ANON_CLAIMS
    limits = row.get("limits") or {}
    expires = row.get("expires_at")
    return KeyEntry(str(row["id"]), key_type, row["prefix"], claims["role"], claims,
                    _limit(limits.get("per_key")), _limit(limits.get("per_ip")),
                    None if expires is None else expires.timestamp(),
                    restrictions_for(row.get("allowed_origins"), row.get("allowed_ips"), row.get("allowed_services")),
                    rules_for(row.get("allowed_resources"), row.get("allowed_methods")), _quota(row.get("quota")))


def _limit(text: Any) -> Limit | None:
    return _parsed(text, parse_limit, "rate limit")


def _quota(text: Any) -> Quota | None:
    return _parsed(text, parse_quota, "quota")


def _parsed(text: Any, parse: Callable[[Any], T], what: str) -> T | None:
    """One object per notation (the parser remembers them), shared by the keys that use it."""
    if not text:
        return None
    try:
        return parse(text)
    except ValueError:  # the admin API never stores one; a hand-edited row is ignored
        log.warning("ignoring an invalid %s stored for a key", what)
        return None


def legacy_entries(settings: Settings) -> dict[str, KeyEntry]:
    """The configured legacy JWT keys that really verify with ``jwt.secret``, by value.

    Keyed by the token itself (the configuration holds it anyway): recognising a legacy key, as
    ``apikey`` or as bearer, then costs a dict lookup instead of a hash per request."""
    out: dict[str, KeyEntry] = {}
    secret = settings.jwt.secret
    for name, value in (("anon", settings.legacy.anon_key), ("service_role", settings.legacy.service_role_key)):
        if value is None:
            continue
        if secret is None:
            log.warning("legacy.%s_key is set but jwt.secret is not: the legacy key is ignored", name)
            continue
        try:
            claims = jwt.decode(value.get_secret_value(), secret.get_secret_value(), algorithms=["HS256"],
                                options={"verify_aud": False})
        except jwt.PyJWTError as e:
            log.warning("legacy.%s_key does not verify with jwt.secret (%s): the legacy key is ignored", name,
                        type(e).__name__)
            continue
        if claims.get("role") != name:
            log.warning("legacy.%s_key carries role %r: the legacy key is ignored", name, claims.get("role"))
            continue
        out[value.get_secret_value()] = KeyEntry(name, "legacy", "", name, {"role": name})
    return out
