"""The sections of the configuration (``[server]``, ``[jwt]``, ``[limits]`` ...): their options,
defaults and checks. ``gateway.config`` puts them together and reads them."""

from __future__ import annotations

import json
from typing import Any, Literal

import jwt
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int | None = Field(default=None, ge=1, le=256)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keepalive_seconds: float = Field(default=75.0, gt=0)
    max_connections: int = Field(default=10_000, ge=1)
    trusted_proxies: list[str] = Field(default_factory=list)
    fast_path: bool = True
    grace_seconds: float = Field(default=10.0, ge=0, le=3600)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        from gateway.rules.clientip import parse_networks

        parse_networks(v)
        return v


class AdminSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    token: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v


class JwtSettings(_Section):
    secret: SecretStr | None = None
    signing_keys: list[dict[str, Any]] = Field(default_factory=list)
    ttl_seconds: int = Field(default=300, ge=10, le=86400)
    issuer: str = "supabase"
    user_roles: list[str] = Field(default_factory=lambda: ["authenticated", "anon"])

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (as Supabase requires)")
        return v

    @field_validator("signing_keys", mode="before")
    @classmethod
    def _parse_json(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else []
            except json.JSONDecodeError:
                raise ValueError("must be a JSON array of private JWKs") from None
        if isinstance(v, dict) and "keys" in v:  # a JWKS object is accepted too
            v = v["keys"]
        return v

    @field_validator("signing_keys")
    @classmethod
    def _private_jwks(cls, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, jwk in enumerate(keys):
            kty = jwk.get("kty")
            if kty == "oct":  # the symmetric secret, as in Supabase's JWT_KEYS: verify only
                if not jwk.get("k"):
                    raise ValueError(f"key {i}: oct key without 'k'")
                continue
            if kty not in ("EC", "RSA"):
                raise ValueError(f"key {i}: kty must be EC or RSA")
            if "d" not in jwk:
                raise ValueError(f"key {i} (kid {jwk.get('kid')!r}) has no private part")
            alg = jwk.get("alg") or ("ES256" if kty == "EC" else "RS256")
            if alg not in ("ES256", "RS256"):
                raise ValueError(f"key {i}: alg must be ES256 or RS256")
            try:
                jwt.PyJWK(jwk, algorithm=alg)
            except Exception:
                raise ValueError(f"key {i} is not a valid {alg} JWK") from None
        return keys


class LegacySettings(_Section):
    anon_key: SecretStr | None = None
    service_role_key: SecretStr | None = None


class UpstreamSettings(_Section):
    rest: AnyHttpUrl | None = None
    realtime: AnyHttpUrl | None = None
    functions: AnyHttpUrl | None = None
    auth: AnyHttpUrl | None = None
    storage: AnyHttpUrl | None = None
    meta: AnyHttpUrl | None = None
    studio: AnyHttpUrl | None = None  # the dashboard: every path no other route takes
    realtime_host: str = "realtime-dev.supabase-realtime"
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)
    functions_timeout: float = Field(default=150.0, gt=0)
    storage_timeout: float = Field(default=300.0, gt=0)
    rest_replicas: list[AnyHttpUrl] = Field(default_factory=list)
    replica_retry_seconds: float = Field(default=5.0, gt=0)

    def base(self, service: str) -> str | None:
        url = getattr(self, service)
        return None if url is None else str(url).rstrip("/")

    def timeout_for(self, service: str) -> float:
        if service == "functions":
            return self.functions_timeout
        if service == "storage":
            return self.storage_timeout
        return self.timeout


class CorsSettings(_Section):
    meta_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*"]
    )


class KeysSettings(_Section):
    refresh_seconds: float = Field(default=30.0, gt=0)
    last_used_flush_seconds: float = Field(default=10.0, gt=0)
    miss_lookups_per_second: float = Field(default=20.0, gt=0)
    quota_flush_seconds: float = Field(default=1.0, gt=0, le=60)


class LimitsSettings(_Section):
    store: Literal["postgres", "redis"] = "postgres"
    redis_url: str | None = None
    sync_ms: int = Field(default=100, ge=10, le=10_000)
    publishable_per_ip: str | None = None
    secret_per_key: str | None = None
    per_user: str | None = None
    keyless_per_ip: str | None = None

    @field_validator("publishable_per_ip", "secret_per_key", "per_user", "keyless_per_ip")
    @classmethod
    def _notation(cls, v: str | None) -> str | None:
        if v is not None:
            from gateway.rules.limits import parse_limit

            parse_limit(v)
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @model_validator(mode="after")
    def _redis_needs_url(self) -> "LimitsSettings":
        if self.store == "redis" and not self.redis_url:
            raise ValueError("limits.store = 'redis' needs limits.redis_url")
        return self


class RestSettings(_Section):
    denied_resources: list[str] = Field(default_factory=list)

    @field_validator("denied_resources")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        from gateway.rules.resources import parse_entry

        for entry in v:
            parse_entry(entry)
        return v


class FunctionsSettings(_Section):
    verify: Literal["optional", "required"] = "optional"
    open: list[str] = Field(default_factory=list)

    @field_validator("open")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or "/" in name or name in (".", ".."):
                raise ValueError("must be function names (the first path segment after /functions/v1/)")
        return v


class RealtimeSettings(_Section):
    max_key_only_seconds: float = Field(default=86400.0, gt=0)


class DashboardSettings(_Section):
    """HTTP basic auth in front of the dashboard route (upstreams.studio), as Envoy and Kong do."""

    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> "DashboardSettings":
        if (self.username is None) != (self.password is None):
            raise ValueError("dashboard.username and dashboard.password are set together (or neither)")
        if self.username is not None and ":" in self.username:
            raise ValueError("dashboard.username may not contain ':' (HTTP basic auth)")
        return self


class LogSettings(_Section):
    level: str = "info"
    access: bool = True
    format: Literal["json", "combined"] = "json"

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return v.lower()


class ProtectionSettings(_Section):
    """Blocking abusive clients and refused networks (docs/protection.md)."""

    block_after: str | None = None  # COUNT/WINDOW of refused requests from one client IP; unset: never block
    block_seconds: int = Field(600, ge=1, le=30 * 86400)
    never_block: list[str] = Field(default_factory=list)
    deny_ips: list[str] = Field(default_factory=list)

    @field_validator("block_after")
    @classmethod
    def _notation(cls, v: str | None) -> str | None:
        if v is not None:
            from gateway.rules.limits import parse_limit

            parse_limit(v)
        return v

    @field_validator("never_block", "deny_ips")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        from gateway.rules.clientip import parse_networks

        parse_networks(v)
        return v
