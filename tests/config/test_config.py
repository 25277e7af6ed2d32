"""Configuration (docs/configuration.md): TOML file, GATEWAY_* variables, Supabase's own names, and
one clear line naming the key for every invalid setting."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import ALIASES, ConfigError, load_settings
from tests.helpers import run_cli

SECRET_A = "a" * 40
SECRET_B = "b" * 40
SECRET_C = "c" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the machine running the tests has set must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("GATEWAY_") or name in ALIASES:
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ec_private_jwk(kid: str = "k1") -> dict:
    """An EC P-256 private JWK shaped like the ones docker/utils/add-new-auth-keys.sh writes."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "use": "sig", "key_ops": ["sign", "verify"], "alg": "ES256", "ext": True}


def config_error(*args, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kw)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# --- defaults and sources --------------------------------------------------------------------


def test_defaults_without_any_source():
    s = load_settings()
    assert s.database_url is None
    assert s.data_dir == Path(".gateway")
    assert s.project_ref == "default"
    assert s.key_checksum_ref == "supabase-self-hosted"
    assert (s.server.host, s.server.port, s.server.workers) == ("0.0.0.0", 8000, None)
    assert (s.admin.host, s.admin.port, s.admin.token) == ("127.0.0.1", 8001, None)
    assert s.jwt.secret is None and s.jwt.signing_keys == []
    assert (s.jwt.ttl_seconds, s.jwt.issuer, s.jwt.user_roles) == (300, "supabase", ["authenticated", "anon"])
    assert s.legacy.anon_key is None and s.legacy.service_role_key is None
    assert all(s.upstreams.base(u) is None for u in ("rest", "realtime", "functions", "auth", "storage", "meta"))
    assert s.upstreams.realtime_host == "realtime-dev.supabase-realtime"
    assert "http://localhost:*" in s.cors.meta_origins and "http://127.0.0.1:*" in s.cors.meta_origins


def test_toml_file_is_read(tmp_path):
    path = write(tmp_path, f"""
database_url = "postgresql://u:p@db:5432/postgres"
data_dir = "/var/lib/gw"
project_ref = "abcdefghij"
[server]
port = 9000
workers = 3
[admin]
token = "0123456789abcdef0123"
[jwt]
secret = "{SECRET_A}"
ttl_seconds = 120
user_roles = ["authenticated"]
[upstreams]
rest = "http://rest:3000/"
""")
    s = load_settings(path)
    assert s.database_url.get_secret_value() == "postgresql://u:p@db:5432/postgres"
    assert s.data_dir == Path("/var/lib/gw")
    assert s.project_ref == "abcdefghij"
    assert (s.server.port, s.server.workers, s.server.host) == (9000, 3, "0.0.0.0")
    assert s.admin.token.get_secret_value() == "0123456789abcdef0123"
    assert s.jwt.secret.get_secret_value() == SECRET_A
    assert (s.jwt.ttl_seconds, s.jwt.user_roles) == (120, ["authenticated"])
    assert s.upstreams.base("rest") == "http://rest:3000"


def test_gateway_config_variable_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_CONFIG", str(write(tmp_path, "[server]\nport = 9100\n")))
    assert load_settings().server.port == 9100
    # an explicit --config wins over GATEWAY_CONFIG
    assert load_settings(write(tmp_path, "[server]\nport = 9200\n", "other.toml")).server.port == 9200


@pytest.mark.parametrize(("alias", "gateway_var", "read"), [
    ("JWT_SECRET", "GATEWAY_JWT__SECRET", lambda s: s.jwt.secret.get_secret_value()),
    ("DATABASE_URL", "GATEWAY_DATABASE_URL", lambda s: s.database_url.get_secret_value()),
    ("ANON_KEY", "GATEWAY_LEGACY__ANON_KEY", lambda s: s.legacy.anon_key.get_secret_value()),
    ("SERVICE_ROLE_KEY", "GATEWAY_LEGACY__SERVICE_ROLE_KEY", lambda s: s.legacy.service_role_key.get_secret_value()),
])
def test_precedence_gateway_env_over_alias_over_toml_over_default(tmp_path, monkeypatch, alias, gateway_var, read):
    section, _, key = gateway_var.removeprefix("GATEWAY_").lower().rpartition("__")
    toml = f'[{section}]\n{key} = "{SECRET_A}"\n' if section else f'{key} = "{SECRET_A}"\n'
    path = write(tmp_path, toml)
    assert read(load_settings(path)) == SECRET_A  # TOML over the default
    monkeypatch.setenv(alias, SECRET_B)
    assert read(load_settings(path)) == SECRET_B  # the alias over TOML
    monkeypatch.setenv(gateway_var, SECRET_C)
    assert read(load_settings(path)) == SECRET_C  # GATEWAY_* over the alias
    monkeypatch.delenv(alias)
    assert read(load_settings(path)) == SECRET_C


def test_jwt_keys_alias_and_its_gateway_name(tmp_path, monkeypatch):
    first, second = ec_private_jwk("first"), ec_private_jwk("second")
    path = write(tmp_path, f"[jwt]\nsigning_keys = '{json.dumps([first])}'\n")
    assert load_settings(path).jwt.signing_keys[0]["kid"] == "first"
    monkeypatch.setenv("JWT_KEYS", json.dumps([second]))
    assert load_settings(path).jwt.signing_keys[0]["kid"] == "second"
    monkeypatch.setenv("GATEWAY_JWT__SIGNING_KEYS", json.dumps([first]))
    assert load_settings(path).jwt.signing_keys[0]["kid"] == "first"


def test_jwt_keys_as_written_by_the_supabase_script_are_accepted(monkeypatch):
    """add-new-auth-keys.sh writes JWT_KEYS = [EC private key, oct key of JWT_SECRET]."""
    oct_key = {"kty": "oct", "k": jwt.utils.base64url_encode(SECRET_A.encode()).decode(), "alg": "HS256"}
    monkeypatch.setenv("JWT_KEYS", json.dumps([ec_private_jwk("script"), oct_key]))
    keys = load_settings().jwt.signing_keys
    assert [k["kty"] for k in keys] == ["EC", "oct"]
    # a JWKS object ({"keys": [...]}) is taken too
    monkeypatch.setenv("JWT_KEYS", json.dumps({"keys": [ec_private_jwk("set")]}))
    assert load_settings().jwt.signing_keys[0]["kid"] == "set"


def test_nested_delimiter_merges_with_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, f'[server]\nhost = "10.0.0.1"\nport = 9000\n[jwt]\nsecret = "{SECRET_A}"\n')
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "9500")
    monkeypatch.setenv("GATEWAY_JWT__TTL_SECONDS", "60")
    monkeypatch.setenv("GATEWAY_JWT__USER_ROLES", '["authenticated"]')
    monkeypatch.setenv("GATEWAY_UPSTREAMS__REST", "http://rest:3000")
    monkeypatch.setenv("GATEWAY_CORS__META_ORIGINS", '["https://studio.example.com"]')
    monkeypatch.setenv("GATEWAY_PROJECT_REF", "myproject")
    s = load_settings(path)
    assert (s.server.host, s.server.port) == ("10.0.0.1", 9500)  # one field overridden, its sibling kept
    assert (s.jwt.secret.get_secret_value(), s.jwt.ttl_seconds) == (SECRET_A, 60)
    assert s.jwt.user_roles == ["authenticated"]
    assert s.upstreams.base("rest") == "http://rest:3000"
    assert s.cors.meta_origins == ["https://studio.example.com"]
    assert s.project_ref == "myproject"


def test_empty_variables_count_as_unset(tmp_path, monkeypatch):
    """Compose files pass ``${VAR:-}`` through as empty strings: that must mean "not set"."""
    path = write(tmp_path, f'[jwt]\nsecret = "{SECRET_A}"\n')
    for name in ("GATEWAY_DATABASE_URL", "DATABASE_URL", "GATEWAY_ADMIN__TOKEN", "GATEWAY_JWT__SECRET",
                 "JWT_SECRET", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_KEYS"):
        monkeypatch.setenv(name, "")
    s = load_settings(path)
    assert s.database_url is None  # embedded Postgres, not an empty DSN
    assert s.admin.token is None
    assert s.jwt.secret.get_secret_value() == SECRET_A
    assert s.legacy.anon_key is None and s.jwt.signing_keys == []
    assert load_settings(write(tmp_path, 'database_url = ""\n', "empty.toml")).database_url is None


# --- invalid configuration: one line naming the key ------------------------------------------


def test_missing_file(tmp_path):
    message = config_error(tmp_path / "nope.toml")
    assert "nope.toml" in message and "not found" in message


def test_bad_toml(tmp_path):
    message = config_error(write(tmp_path, "[server\nport = = 1\n"))
    assert "gateway.toml" in message and "invalid TOML" in message


def test_toml_that_is_not_utf8(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"port = \xff\xfe\n")
    message = config_error(path)
    assert "binary.toml" in message and "invalid TOML" in message


def test_jwk_without_private_part(tmp_path, monkeypatch):
    public = {k: v for k, v in ec_private_jwk("pub").items() if k != "d"}
    message = config_error(write(tmp_path, f"[jwt]\nsigning_keys = '{json.dumps([public])}'\n"))
    assert "jwt.signing_keys" in message and "private" in message
    monkeypatch.setenv("JWT_KEYS", json.dumps([public]))
    assert "jwt.signing_keys" in config_error()
    monkeypatch.setenv("GATEWAY_JWT__SIGNING_KEYS", json.dumps([public]))
    assert "jwt.signing_keys" in config_error()


@pytest.mark.parametrize("keys", [
    [{"kty": "EC", "alg": "ES256", "crv": "P-256", "x": "AAAA", "y": "AAAA", "d": "AAAA"}],  # not a real key
    [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "AAAA"}],
    [{"kty": "oct"}],
    [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB", "d": "AQAB"}],
])
def test_unusable_signing_keys(monkeypatch, keys):
    monkeypatch.setenv("GATEWAY_JWT__SIGNING_KEYS", json.dumps(keys))
    assert "jwt.signing_keys" in config_error()


def test_signing_keys_that_are_not_json_name_the_variable_not_its_value(monkeypatch):
    monkeypatch.setenv("GATEWAY_JWT__SIGNING_KEYS", "not-json-private-material")
    message = config_error()
    assert "GATEWAY_JWT__SIGNING_KEYS" in message and "not-json-private-material" not in message
    monkeypatch.delenv("GATEWAY_JWT__SIGNING_KEYS")
    monkeypatch.setenv("JWT_KEYS", "not-json-private-material")
    message = config_error()
    assert "jwt.signing_keys" in message and "not-json-private-material" not in message


@pytest.mark.parametrize(("var", "key"), [
    ("GATEWAY_JWT__USER_ROLES", "GATEWAY_JWT__USER_ROLES"),
    ("GATEWAY_CORS__META_ORIGINS", "GATEWAY_CORS__META_ORIGINS"),
    ("GATEWAY_SERVER", "GATEWAY_SERVER"),
])
def test_other_json_variables_that_are_not_json(monkeypatch, var, key):
    monkeypatch.setenv(var, "{nope")
    assert key in config_error()


@pytest.mark.parametrize("service", ["rest", "realtime", "functions", "auth", "storage", "meta"])
def test_upstream_that_is_no_url(tmp_path, monkeypatch, service):
    assert f"upstreams.{service}" in config_error(write(tmp_path, f'[upstreams]\n{service} = "rest:3000 nope"\n'))
    monkeypatch.setenv(f"GATEWAY_UPSTREAMS__{service.upper()}", "not a url")
    assert f"upstreams.{service}" in config_error()


@pytest.mark.parametrize(("toml", "key"), [
    ("bogus = 1\n", "bogus"),
    ("[server]\nbogus = 1\n", "server.bogus"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[jwt]\nsecrett = 'x'\n", "jwt.secrett"),
])
def test_unknown_option(tmp_path, toml, key):
    path = write(tmp_path, toml)
    message = config_error(path)
    assert f"{key} (in {path}): unknown option" in message


def test_unknown_nested_variable(monkeypatch):
    monkeypatch.setenv("GATEWAY_SERVER__BOGUS", "1")
    assert "server.bogus: unknown option" in config_error()


def test_short_jwt_secret_names_the_key_not_the_value(tmp_path, monkeypatch):
    short = "short-secret-xyz"
    message = config_error(write(tmp_path, f'[jwt]\nsecret = "{short}"\n'))
    assert "jwt.secret" in message and "32" in message and short not in message
    monkeypatch.setenv("JWT_SECRET", short)
    message = config_error()
    assert "jwt.secret" in message and short not in message
    monkeypatch.setenv("GATEWAY_JWT__SECRET", short + "2")
    assert "jwt.secret" in config_error()


@pytest.mark.parametrize(("toml", "key", "problem"), [
    ("[server]\nport = 70000\n", "server.port", "must be at most 65535"),
    ("[server]\nport = 'eighty'\n", "server.port", "must be a whole number"),
    ("[server]\nworkers = 0\n", "server.workers", "must be at least 1"),
    ("[server]\nfast_path = 'yes please'\n", "server.fast_path", "must be true or false"),
    ("[admin]\nport = -1\n", "admin.port", "must be at least 0"),
    ("[admin]\ntoken = 'short'\n", "admin.token", "must be at least 16 characters"),
    ("[jwt]\nttl_seconds = 1\n", "jwt.ttl_seconds", "must be at least 10"),
    ("[jwt]\nuser_roles = 'authenticated'\n", "jwt.user_roles", "must be a list (in a variable: a JSON array)"),
    ("[log]\nlevel = 'loud'\n", "log.level", "must be debug, info, warning or error"),
    ("project_ref = 'Not A Ref'\n", "project_ref", "must be lower-case letters, digits, '-' or '_'"),
    ("[upstreams]\ntimeout = 0\n", "upstreams.timeout", "must be more than 0"),
    ("[upstreams]\ntimeout = 'soon'\n", "upstreams.timeout", "must be a number"),
    ("[upstreams]\nrest = 'ftp://rest'\n", "upstreams.rest", "must be an http:// or https:// URL"),
    ("[limits]\nstore = 'memory'\n", "limits.store", "must be 'postgres' or 'redis'"),
    ("server = 5\n", "server", "must be a section of options (in a variable: a JSON object)"),
])
def test_other_invalid_values_name_their_key_and_file_in_plain_words(tmp_path, toml, key, problem):
    path = write(tmp_path, toml)
    assert config_error(path) == f"invalid configuration: {key} (in {path}): {problem}"


@pytest.mark.parametrize(("env", "said"), [
    ({"GATEWAY_SERVER__PORT": "abc"}, "server.port (GATEWAY_SERVER__PORT): must be a whole number"),
    ({"gateway_server__port": "abc"}, "server.port (gateway_server__port): must be a whole number"),
    ({"GATEWAY_SERVER": '{"port": "abc"}'}, "server.port (GATEWAY_SERVER): must be a whole number"),
    ({"GATEWAY_SERVER__WORKERS": "many"}, "server.workers (GATEWAY_SERVER__WORKERS): must be a whole number"),
    ({"GATEWAY_JWT__TTL_SECONDS": "1.5"}, "jwt.ttl_seconds (GATEWAY_JWT__TTL_SECONDS): must be a whole number"),
    ({"GATEWAY_LOG__ACCESS": "2"}, "log.access (GATEWAY_LOG__ACCESS): must be true or false"),
    ({"GATEWAY_UPSTREAMS__REST_REPLICAS": '["nope"]'},
     "upstreams.rest_replicas (GATEWAY_UPSTREAMS__REST_REPLICAS): must be an http:// or https:// URL"),
    ({"GATEWAY_SERVER__TRUSTED_PROXIES": "[1]"},
     "server.trusted_proxies (GATEWAY_SERVER__TRUSTED_PROXIES): must be text"),
    ({"JWT_SECRET": "short"}, "jwt.secret (JWT_SECRET): must be at least 32 characters (as Supabase requires)"),
    ({"JWT_SECRET": "x" * 40, "GATEWAY_JWT__SECRET": "short"},
     "jwt.secret (GATEWAY_JWT__SECRET): must be at least 32 characters (as Supabase requires)"),
    ({"GATEWAY_LIMITS__STORE": "redis"}, "limits: limits.store = 'redis' needs limits.redis_url"),
])
def test_a_wrongly_typed_variable_is_named_in_plain_words(monkeypatch, env, said):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert config_error() == f"invalid configuration: {said}"


def test_the_variable_wins_over_the_file_it_overrides(tmp_path, monkeypatch):
    path = write(tmp_path, "[server]\nport = 'eighty'\n")
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "abc")
    assert "server.port (GATEWAY_SERVER__PORT): must be a whole number" in config_error(path)


@pytest.mark.parametrize(("error", "said"), [
    ({"type": "int_parsing", "msg": "Input should be a valid integer"}, "must be a whole number"),
    ({"type": "greater_than_equal", "ctx": {"ge": 0.0}}, "must be at least 0"),
    ({"type": "greater_than", "ctx": {"gt": 0.5}}, "must be more than 0.5"),
    ({"type": "less_than_equal", "ctx": {"le": 65535}}, "must be at most 65535"),
    ({"type": "less_than", "ctx": {"lt": 3}}, "must be less than 3"),
    ({"type": "value_error", "msg": "Value error, must be a CIDR"}, "must be a CIDR"),
    ({"type": "greater_than", "ctx": {}}, "is not a valid value"),
    ({"type": "something_new", "msg": "Input should be a frobnicated thing"}, "is not a valid value"),
])
def test_plain_words(error, said):
    from gateway.config.problems import plain

    assert plain(error) == said


@pytest.mark.parametrize(("path", "environ", "file_values", "source"), [
    (["server", "port"], {"GATEWAY_SERVER__PORT": "x"}, {}, "GATEWAY_SERVER__PORT"),
    (["server", "port"], {"GATEWAY_SERVER__PORT": ""}, {"server": {"port": "x"}}, "in g.toml"),  # empty: unset
    (["server", "port"], {"GATEWAY_SERVER": "{}"}, {}, "GATEWAY_SERVER"),
    (["jwt", "secret"], {"JWT_SECRET": "x"}, {}, "JWT_SECRET"),
    (["jwt", "secret"], {}, {"jwt": {"secret": "x"}}, "in g.toml"),
    (["server"], {}, {"server": 5}, "in g.toml"),
    (["limits"], {}, {}, None),
])
def test_where_a_value_came_from(path, environ, file_values, source):
    from gateway.config.problems import source as where

    assert where(path, environ, ALIASES, file_values, "g.toml") == source


def test_a_wrongly_typed_port_stops_every_command_with_one_line(tmp_path):
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "d"), "GATEWAY_SERVER__PORT": "abc"}
    for command in (("serve",), ("keys", "list")):
        result = run_cli(*command, cwd=tmp_path, env=env, timeout=30)
        assert_one_line_failure(result, "server.port (GATEWAY_SERVER__PORT): must be a whole number")
        assert "Input should be" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_invalid_admin_token_is_not_echoed(monkeypatch):
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "tiny-tok")
    message = config_error()
    assert "admin.token" in message and "tiny-tok" not in message


# --- the CLI and serve stop with one line ----------------------------------------------------


BAD_CONFIGS = {
    "bad_toml": ("[server\n", "invalid TOML"),
    "private_part": ("[jwt]\nsigning_keys = '[{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"a\", \"y\": \"b\"}]'\n",
                     "jwt.signing_keys"),
    "upstream": ("[upstreams]\nrest = 'nope'\n", "upstreams.rest"),
    "unknown": ("colour = 'blue'\n", "colour"),
    "short_secret": ("[jwt]\nsecret = 'too-short'\n", "jwt.secret"),
}


def assert_one_line_failure(result, needle: str, status: int | None = None) -> None:
    assert result.returncode != 0, result
    if status is not None:
        assert result.returncode == status
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


@pytest.mark.parametrize(("case", "command"), [
    *((case, ("serve",)) for case in sorted(BAD_CONFIGS)),
    *((case, ("keys", "list")) for case in sorted(BAD_CONFIGS)),
    ("unknown", ("migrate",)),
    ("private_part", ("legacy", "status")),
    ("upstream", ("keys", "create", "--type", "secret", "--name", "abcd")),
])
def test_commands_stop_with_one_line_on_bad_config(tmp_path, case, command):
    text, needle = BAD_CONFIGS[case]
    path = write(tmp_path, text)
    result = run_cli(*command, "--config", str(path), cwd=tmp_path, env={"GATEWAY_DATA_DIR": str(tmp_path / "d")},
                     timeout=30)
    assert_one_line_failure(result, needle)
    assert not (tmp_path / "d").exists()  # it stopped before starting anything


def test_serve_stops_with_one_line_on_bad_environment(tmp_path):
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "d"), "GATEWAY_JWT__SIGNING_KEYS": "[{broken",
           "GATEWAY_CONFIG": ""}
    assert_one_line_failure(run_cli("serve", cwd=tmp_path, env=env, timeout=30), "GATEWAY_JWT__SIGNING_KEYS")
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "d"), "JWT_SECRET": "tiny-secret-value"}
    result = run_cli("serve", cwd=tmp_path, env=env, timeout=30)
    assert_one_line_failure(result, "jwt.secret")
    assert "tiny-secret-value" not in result.stderr


def test_serve_rejects_bad_worker_count(tmp_path):
    result = run_cli("serve", "--workers", "0", cwd=tmp_path, env={"GATEWAY_DATA_DIR": str(tmp_path / "d")})
    assert_one_line_failure(result, "workers")


# --- config.example.toml ----------------------------------------------------------------------


def _option_paths(model, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _option_paths(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_example_config_documents_every_option_with_its_default():
    from gateway.config import Settings
    from tests.helpers import REPO

    path = REPO / "config.example.toml"
    example = load_settings(path)
    assert example.model_dump() == load_settings().model_dump()  # what it sets are the defaults
    text = path.read_text()
    sections = {"": text.split("\n[", 1)[0]}
    for chunk in text.split("\n[")[1:]:
        name, _, body = chunk.partition("]")
        sections[name] = body
    for option in _option_paths(Settings):
        section, _, key = option.rpartition(".")
        assert re.search(rf"^#? ?{key} = ", sections.get(section, ""), re.M), f"{option} is not in config.example.toml"


# --- GATEWAY_* variables that name no option ---------------------------------------------------


@pytest.mark.parametrize(("name", "key"), [
    ("GATEWAY_LIMIT__PER_USER", "limit.per_user"),  # a section that does not exist
    ("GATEWAY_LIMITS__PER_USR", "limits.per_usr"),  # an option of a section that does exist
    ("GATEWAY_ADMIN_TOKEN", "admin_token"),  # one underscore where two belong: admin.token unset
    ("GATEWAY_JWT_SECRET", "jwt_secret"),
    ("GATEWAY_BOGUS", "bogus"),
    ("GATEWAY_SERVER__BOGUS", "server.bogus"),
    ("GATEWAY_JWTT__SECRET", "jwtt.secret"),
    ("GATEWAY_SERVER__PORT__X", "server.port.x"),
    ("gateway_admin__tokn", "admin.tokn"),  # names are read case-insensitively, so are typos
    ("GATEWAY_SERVER____PORT", "server..port"),
])
def test_a_variable_that_names_no_option_stops_with_its_name(monkeypatch, name, key):
    monkeypatch.setenv(name, "1234567890abcdef-value")
    message = config_error()
    assert name in message and f"{key}: unknown option" in message
    assert "1234567890abcdef-value" not in message


def test_an_empty_variable_that_names_no_option_is_refused_too(monkeypatch):
    monkeypatch.setenv("GATEWAY_LIMIT__PER_IP", "")
    assert "GATEWAY_LIMIT__PER_IP" in config_error()


def test_known_variables_and_gateway_config_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_CONFIG", str(write(tmp_path, "")))
    monkeypatch.setenv("gateway_server__port", "9000")
    monkeypatch.setenv("GATEWAY_UPSTREAMS__REST", "http://rest:3000")
    monkeypatch.setenv("GATEWAY_SERVER", '{"host": "127.0.0.2"}')  # a whole section as JSON
    s = load_settings()
    assert (s.server.port, s.server.host, s.upstreams.base("rest")) == (9000, "127.0.0.2", "http://rest:3000")


def test_the_check_follows_the_settings_model():
    """New sections and options are known by the check without being listed anywhere."""
    from pydantic import BaseModel

    from gateway.config import Settings, unknown_variable

    class Quotas(BaseModel):
        per_month: str | None = None

    class Grown(Settings):
        quotas: Quotas | None = None
        labels: dict[str, str] = {}

    env = {"GATEWAY_QUOTAS__PER_MONTH": "10/s", "GATEWAY_LABELS__TEAM": "x", "GATEWAY_CONFIG": "f"}
    assert unknown_variable(env, Grown) is None
    assert "GATEWAY_QUOTAS__PER_MONTH" in unknown_variable({"GATEWAY_QUOTAS__PER_MONTH": "10/s"}, Settings)
    assert "quotas.per_year" in unknown_variable({"GATEWAY_QUOTAS__PER_YEAR": "1"}, Grown)


def test_serve_and_commands_stop_with_one_line_on_an_unknown_variable(tmp_path):
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "d"), "GATEWAY_LIMIT__PER_USER": "10/s"}
    for command in (("serve",), ("keys", "list")):
        assert_one_line_failure(run_cli(*command, cwd=tmp_path, env=env, timeout=30), "GATEWAY_LIMIT__PER_USER")
    assert not (tmp_path / "d").exists()
