"""Configuration: a TOML file, overridden by ``GATEWAY_*`` variables, plus Supabase's own names.

Precedence, highest first: ``GATEWAY_*`` environment variables, the aliases a self-hosted
Supabase ``.env`` already has (``JWT_SECRET``, ``JWT_KEYS``, ``ANON_KEY``, ``SERVICE_ROLE_KEY``,
``DATABASE_URL``, ``DASHBOARD_USERNAME``, ``DASHBOARD_PASSWORD``), the TOML file (``--config`` or ``GATEWAY_CONFIG``), the defaults.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from gateway.config.problems import describe
from gateway.config.sections import (
    AdminSettings,
    CorsSettings,
    DashboardSettings,
    FunctionsSettings,
    JwtSettings,
    KeysSettings,
    LegacySettings,
    LimitsSettings,
    LogSettings,
    ProtectionSettings,
    RealtimeSettings,
    RestSettings,
    ServerSettings,
    UpstreamSettings,
)

# Environment names a self-hosted Supabase stack already uses, mapped to our keys.
ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database_url",),
    "JWT_SECRET": ("jwt", "secret"),
    "JWT_KEYS": ("jwt", "signing_keys"),
    "ANON_KEY": ("legacy", "anon_key"),
    "SERVICE_ROLE_KEY": ("legacy", "service_role_key"),
    "DASHBOARD_USERNAME": ("dashboard", "username"),
    "DASHBOARD_PASSWORD": ("dashboard", "password"),
}


ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"
# GATEWAY_* variables that are not options: the configuration file's path.
NOT_OPTIONS = frozenset({"GATEWAY_CONFIG"})


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


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
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    rest: RestSettings = Field(default_factory=RestSettings)
    functions: FunctionsSettings = Field(default_factory=FunctionsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    protection: ProtectionSettings = Field(default_factory=ProtectionSettings)

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


def one_line(text: str, limit: int = 500) -> str:
    """Whatever a message quotes (an id, a path, a parser's words), it stays one line, and a short one."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


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


def relative_to_file(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """A relative ``data_dir`` written in a configuration file is taken from the file's folder, as
    compose files do with their paths: ``gateway --config /srv/gw/gateway.toml keys list`` finds
    the database of ``serve`` from any directory. (The default and ``GATEWAY_DATA_DIR`` are
    relative to the current directory, as paths on a command line are.)"""
    data_dir = values.get("data_dir")
    if not isinstance(data_dir, str) or not data_dir or Path(data_dir).is_absolute():
        return values
    return {**values, "data_dir": str(path.parent.absolute() / data_dir)}


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
            raise ConfigError(f"config file {path}: invalid TOML ({one_line(str(e))})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path}: invalid TOML (not UTF-8 text)") from None
        except OSError as e:
            raise ConfigError(f"config file {path}: {e.strerror}") from None
        file_values = relative_to_file(file_values, Path(path))
    unknown = unknown_variable(os.environ, Settings)
    if unknown:
        raise ConfigError(f"invalid configuration: {one_line(unknown)}")
    token = _file_values.set(file_values)
    try:
        return Settings()
    except ValidationError as e:
        problem = describe(e, os.environ, ALIASES, file_values, str(path) if path else None)
        raise ConfigError(f"invalid configuration: {one_line(problem)}") from None
    except SettingsError as e:  # a GATEWAY_* variable that should hold JSON does not
        raise ConfigError(f"invalid configuration: {_env_json_problem(e)}") from None
    finally:
        _file_values.reset(token)
