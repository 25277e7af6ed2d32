"""Configuration: a TOML file, overridden by ``GATEWAY_*`` variables, plus Supabase's own names.

Precedence, highest first: ``GATEWAY_*`` environment variables, the aliases a self-hosted
Supabase ``.env`` already has (``JWT_SECRET``, ``JWT_KEYS``, ``ANON_KEY``, ``SERVICE_ROLE_KEY``,
``DATABASE_URL``), the TOML file (``--config`` or ``GATEWAY_CONFIG``), the defaults.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import jwt
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

# Environment names a self-hosted Supabase stack already uses, mapped to our keys.
ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database_url",),
    "JWT_SECRET": ("jwt", "secret"),
    "JWT_KEYS": ("jwt", "signing_keys"),
    "ANON_KEY": ("legacy", "anon_key"),
    "SERVICE_ROLE_KEY": ("legacy", "service_role_key"),
}


ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"
# GATEWAY_* variables that are not options: the configuration file's path.
NOT_OPTIONS = frozenset({"GATEWAY_CONFIG"})


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    workers: int | None = Field(None, ge=1, le=256)
    header_timeout_seconds: float = Field(10.0, gt=0)
    keepalive_seconds: float = Field(75.0, gt=0)
    max_connections: int = Field(10_000, ge=1)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        from gateway.clientip import parse_networks

        parse_networks(v)
        return v


class AdminSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)
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
    ttl_seconds: int = Field(300, ge=10, le=86400)
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
    realtime_host: str = "realtime-dev.supabase-realtime"
    connect_timeout: float = Field(5.0, gt=0)
    timeout: float = Field(30.0, gt=0)
    functions_timeout: float = Field(150.0, gt=0)
    storage_timeout: float = Field(300.0, gt=0)

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
    refresh_seconds: float = Field(30.0, gt=0)
    last_used_flush_seconds: float = Field(10.0, gt=0)
    miss_lookups_per_second: float = Field(20.0, gt=0)


class LimitsSettings(_Section):
    store: Literal["postgres", "redis"] = "postgres"
    redis_url: str | None = None
    sync_ms: int = Field(100, ge=10, le=10_000)
    publishable_per_ip: str | None = None
    secret_per_key: str | None = None
    per_user: str | None = None

    @field_validator("publishable_per_ip", "secret_per_key", "per_user")
    @classmethod
    def _notation(cls, v: str | None) -> str | None:
        if v is not None:
            from gateway.limits import parse_limit

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


class LogSettings(_Section):
    level: str = "info"
    access: bool = True

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return v.lower()


class Settings(BaseSettings):
    # An empty variable counts as unset (compose files often pass ``${VAR:-}`` through).
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid",
                                      env_ignore_empty=True)

    database_url: SecretStr | None = None
    data_dir: Path = Path(".gateway")
    project_ref: str = "default"
    key_checksum_ref: str = "supabase-self-hosted"
    server: ServerSettings = Field(default_factory=ServerSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    legacy: LegacySettings = Field(default_factory=LegacySettings)
    upstreams: UpstreamSettings = Field(default_factory=UpstreamSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    keys: KeysSettings = Field(default_factory=KeysSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_dsn(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("project_ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", v):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return v

    @classmethod
    def settings_customise_sources(  # type: ignore[override]
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _AliasSource(settings_cls), _FileSource(settings_cls))


_file_values: ContextVar[dict[str, Any]] = ContextVar("gateway_config_file", default={})


class _FileSource(PydanticBaseSettingsSource):
    """The TOML file, already read by load_settings (so that its errors read well)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _file_values.get()


class _AliasSource(PydanticBaseSettingsSource):
    """Supabase's own variable names, beneath the ``GATEWAY_*`` ones."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused, required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for env, path in ALIASES.items():
            value = os.environ.get(env)
            if value:
                node = out
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = value
        return out


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown option"
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_json_target(path: list[str]) -> bool:
    """Whether ``GATEWAY_<path joined by __>`` is read as JSON: a section, a list or a dict."""
    model: Any = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if i == len(path) - 1:
                return True
            model = ann
            continue
        return i == len(path) - 1 and get_origin(ann) in (list, dict)
    return False


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``Section`` or ``Section | None``), if it is one."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_variable(environ: Mapping[str, str], settings: type[BaseModel]) -> str | None:
    """The first ``GATEWAY_*`` variable that names no option of ``settings``, described.

    pydantic-settings ignores a variable whose section does not exist (``GATEWAY_LIMIT__...``)
    or that names no field at the top level; a mistyped security setting must not be ignored.
    Derived from the model, so new sections and options are known without a list here."""
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_OPTIONS:
            continue
        path = upper.removeprefix(ENV_PREFIX).lower().split(ENV_DELIMITER)
        model: type[BaseModel] | None = settings
        for depth, part in enumerate(path):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                where = ".".join(path[:depth])
                what = "section" if depth < len(path) - 1 else "option"
                why = f"section {where} has no {what} {part!r}" if where else f"there is no {what} {part!r}"
                return f"{'.'.join(path) or name}: unknown option ({name}: {why})"
            model = _section(field.annotation)
            if model is None:  # a leaf: deeper parts only into a dict
                if depth < len(path) - 1 and get_origin(field.annotation) is not dict:
                    return f"{'.'.join(path)}: unknown option ({name}: {'.'.join(path[:depth + 1])} has no sub-options)"
                break
    return None


def _env_json_problem(err: SettingsError) -> str:
    """Name the ``GATEWAY_*`` variable whose JSON pydantic-settings could not parse (not its value)."""
    field = re.search(r'field "([^"]+)"', str(err))
    section = field.group(1) if field else ""
    prefix = f"GATEWAY_{section.upper()}"
    for name in sorted(os.environ):
        upper = name.upper()
        if section and upper != prefix and not upper.startswith(prefix + "__"):
            continue
        if not upper.startswith("GATEWAY_"):
            continue
        path = upper.removeprefix("GATEWAY_").lower().split("__")
        if not _is_json_target(path):
            continue
        try:
            json.loads(os.environ[name])
        except ValueError:
            return f"{'.'.join(path)} ({name}): must be JSON"
    return f"{section or 'environment'}: a GATEWAY_{section.upper()}* variable cannot be parsed"


def load_settings(config_file: str | os.PathLike[str] | None = None) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError with one line."""
    path = config_file or os.environ.get("GATEWAY_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                file_values = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: invalid TOML ({_one_line(str(e))})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path}: invalid TOML (not UTF-8 text)") from None
        except OSError as e:
            raise ConfigError(f"config file {path}: {e.strerror}") from None
    unknown = unknown_variable(os.environ, Settings)
    if unknown:
        raise ConfigError(f"invalid configuration: {_one_line(unknown)}")
    token = _file_values.set(file_values)
    try:
        return Settings()
    except ValidationError as e:
        raise ConfigError(f"invalid configuration: {_one_line(_describe(e))}") from None
    except SettingsError as e:  # a GATEWAY_* variable that should hold JSON does not
        raise ConfigError(f"invalid configuration: {_env_json_problem(e)}") from None
    finally:
        _file_values.reset(token)
