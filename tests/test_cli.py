"""The ``gateway`` command (README.md's tour), run as a real subprocess against a real Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.keys import apikeys
from tests.helpers import JWT_SECRET, Gateway, cli_error_line, cli_ok, free_port, run_cli

REF = "supabase-self-hosted"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def cli(workdir, dsn):
    """Run ``gateway ...`` against this test's database (through GATEWAY_DATABASE_URL)."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
        base = {"GATEWAY_DATABASE_URL": dsn, "GATEWAY_DATA_DIR": str(workdir / "data")}
        return run_cli(*args, env={**base, **(env or {})}, input=input, cwd=workdir)

    return run


def create(cli, key_type: str = "secret", name: str | None = None, *extra: str) -> dict:
    return json.loads(cli_ok(cli("keys", "create", "--type", key_type, "--name", name or f"k_{uuid.uuid4().hex[:8]}",
                             "--json", *extra)))


def listed(cli) -> list[dict]:
    return json.loads(cli_ok(cli("keys", "list", "--json")))


async def audit_rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT actor, action, target, details::text AS details FROM gateway.audit_log ORDER BY id")
    finally:
        await conn.close()


# --- keys create / list -----------------------------------------------------------------------


def test_create_json_and_list_with_a_config_file(workdir, dsn):
    config = workdir / "gateway.toml"
    config.write_text(f'database_url = "{dsn}"\ndata_dir = "{workdir / "data"}"\n')

    def run(*args: str):
        return run_cli(*args, "--config", str(config), cwd=workdir)

    result = run("keys", "create", "--type", "secret", "--name", "backend", "--description", "the backend", "--json")
    out = json.loads(cli_ok(result))
    assert {"id", "type", "name", "prefix", "api_key"} <= out.keys()
    assert (out["type"], out["name"], out["description"]) == ("secret", "backend", "the backend")
    key = out["api_key"]
    assert apikeys.parse(key, REF) == "secret"
    assert out["prefix"] == apikeys.display_prefix(key) and out["hash"] == apikeys.hash_key(key)
    assert out["secret_jwt_template"] == {"role": "service_role"}
    uuid.UUID(out["id"])
    assert (result.stdout + result.stderr).count(key) == 1  # printed once

    pub = json.loads(cli_ok(run("keys", "create", "--type", "publishable", "--name", "web_app", "--json")))
    result = run("keys", "list", "--json")
    rows = json.loads(cli_ok(result))
    # publishable keys first (as the admin API lists them), in full; secret keys masked, never shown again
    assert [(r["id"], r["name"], r["type"]) for r in rows] == [(pub["id"], "web_app", "publishable"),
                                                                (out["id"], "backend", "secret")]
    for r in rows:
        assert r["prefix"] and r["hash"]
    assert rows[0]["api_key"] == pub["api_key"]
    assert rows[1]["api_key"] == apikeys.masked("secret")
    assert key not in result.stdout and key[len(apikeys.display_prefix(key)):] not in result.stdout


def test_config_file_from_gateway_config_variable(workdir, dsn):
    config = workdir / "env.toml"
    config.write_text(f'database_url = "{dsn}"\n')
    out = cli_ok(run_cli("legacy", "status", env={"GATEWAY_CONFIG": str(config)}, cwd=workdir))
    assert out.strip() == "legacy API keys are enabled"


def test_create_prints_the_plaintext_once(cli):
    result = cli("keys", "create", "--type", "secret", "--name", "backend")
    key = cli_ok(result).strip()
    assert result.stdout == key + "\n"  # stdout: the key alone, for scripts
    assert apikeys.parse(key, REF) == "secret"
    assert key not in result.stderr and "only this once" in result.stderr
    text = cli_ok(cli("keys", "list"))
    assert key not in text and key[len(apikeys.display_prefix(key)):] not in text
    assert apikeys.display_prefix(key) in text and "backend" in text
    assert text.splitlines()[0].split() == ["ID", "NAME", "PREFIX", "LAST", "USE", "EXPIRES"]


def test_list_shows_publishable_keys_in_full(cli):
    pub = cli_ok(cli("keys", "create", "--type", "publishable", "--name", "web_app")).strip()
    secret = cli_ok(cli("keys", "create", "--type", "secret", "--name", "backend")).strip()
    lines = cli_ok(cli("keys", "list")).splitlines()
    pub_line, secret_line = [line for line in lines if "web_app" in line or "backend" in line][:2]
    assert pub_line.split()[1:] == ["web_app", apikeys.display_prefix(pub), "never", "never"]
    assert secret_line.split()[1:] == ["backend", apikeys.display_prefix(secret), "never", "never"]
    # below the table, public by design (as in the admin API's listing): the publishable key whole
    assert lines[lines.index("publishable keys, in full (public by design):") + 1].split() == ["web_app", pub]
    assert secret not in "\n".join(lines) and secret[len(apikeys.display_prefix(secret)):] not in "\n".join(lines)


def test_list_fits_100_columns_and_json_keeps_everything(cli):
    long_name = "a_rather_long_key_name_" + "x" * 41  # 64 characters, the longest a name may be
    made = create(cli, "publishable", long_name, "--limit-per-key", "100000/d", "--limit-per-ip", "100000/d",
                  "--expires-in", "300d", *[a for i in range(8) for a in ("--allow-origin", f"https://a{i}.example.com")],
                  "--allow-ip", "10.0.0.0/8", "--allow-service", "rest", "--allow-service", "storage")
    create(cli, "secret", "backend_jobs", "--expires-at", "2020-01-01T00:00:00Z")
    cli_ok(cli("keys", "update", made["id"], "--description", "d" * 200))
    text = cli_ok(cli("keys", "list"))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert made["id"] in text and made["api_key"] in text  # the id and the publishable key, whole
    assert long_name[:19] + "…" in text and "in 299d" in text and "expired" in text
    [entry] = [r for r in listed(cli) if r["id"] == made["id"]]
    assert entry["name"] == long_name and entry["description"] == "d" * 200
    assert entry["allowed_origins"] == [f"https://a{i}.example.com" for i in range(8)]
    assert entry["limits"] == {"per_key": "100000/d", "per_ip": "100000/d"} and entry["api_key"] == made["api_key"]


def test_create_with_role_and_description(cli):
    out = create(cli, "secret", "reporting", "--role", "reporting_reader", "--description", "for reports")
    assert out["secret_jwt_template"] == {"role": "reporting_reader"}
    assert out["description"] == "for reports"
    line = cli_error_line(cli("keys", "create", "--type", "publishable", "--name", "webapp", "--role", "x"))
    assert "--role" in line
    assert "role" in cli_error_line(cli("keys", "create", "--type", "secret", "--name", "bad_role",
                                          "--role", "not a role"))


def test_create_with_a_bad_name(cli):
    for name in ("abc", "Bad-Name"):  # the full rule is tested on the store
        assert "name" in cli_error_line(cli("keys", "create", "--type", "secret", "--name", name))
    assert listed(cli) == []


# --- keys delete ------------------------------------------------------------------------------


def test_delete(cli, dsn):
    doomed, kept = create(cli), create(cli)
    out = cli_ok(cli("keys", "delete", doomed["id"], "--compromised", "--reason", "pasted in chat"))
    assert doomed["id"] in out and doomed["api_key"] not in out
    assert [r["id"] for r in listed(cli)] == [kept["id"]]
    line = cli_error_line(cli("keys", "delete", doomed["id"]))  # final: gone for good
    assert doomed["id"] in line
    rows = asyncio.run(audit_rows(dsn))
    delete = [r for r in rows if r["action"] == "api_key.delete"]
    assert len(delete) == 1 and delete[0]["target"] == doomed["id"]
    details = json.loads(delete[0]["details"])
    assert details["was_compromised"] is True and details["reason"] == "pasted in chat"
    assert delete[0]["actor"].startswith("cli")


@pytest.mark.parametrize("bad_id", ["6f1c1d2e-0b7a-4c3e-9d52-3a1f0e8b7c64", "not-a-uuid", "anon"])
def test_delete_unknown_id(cli, bad_id):
    assert "no API key" in cli_error_line(cli("keys", "delete", bad_id))


# --- keys import ------------------------------------------------------------------------------


def test_import(cli):
    key = apikeys.generate("secret", REF)
    out = json.loads(cli_ok(cli("keys", "import", "--type", "secret", "--name", "from_env", "--key", key, "--json")))
    assert out["hash"] == apikeys.hash_key(key) and out["prefix"] == apikeys.display_prefix(key)
    assert out["secret_jwt_template"] == {"role": "service_role"}
    [row] = listed(cli)
    assert (row["id"], row["name"], row["type"]) == (out["id"], "from_env", "secret")
    # the same key twice: refused, and not echoed
    result = cli("keys", "import", "--type", "secret", "--name", "again", "--key", key)
    line = cli_error_line(result)
    assert "already" in line and key not in result.stderr + result.stdout
    assert len(listed(cli)) == 1


def test_import_plain_output_never_shows_the_key(cli):
    key = apikeys.generate("publishable", REF)
    result = cli("keys", "import", "--type", "publishable", "--name", "web_from_env", "--key", key)
    out = cli_ok(result)
    assert key not in out + result.stderr and "web_from_env" in out


def test_import_refuses_bad_keys(cli):
    good = apikeys.generate("secret", REF)
    bad_keys = [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # bad checksum
        apikeys.generate("secret", "another-ref"),  # checksum of another ref
        apikeys.generate("publishable", REF),  # type does not match --type
    ]
    for key in bad_keys:
        line = cli_error_line(cli("keys", "import", "--type", "secret", "--name", "bad_import", "--key", key))
        assert "key" in line and key not in line
    assert listed(cli) == []


def test_import_from_stdin(cli):
    key = apikeys.generate("secret", REF)
    out = json.loads(cli_ok(cli("keys", "import", "--type", "secret", "--name", "stdin_key", "--key", "-", "--json",
                            "--role", "worker", input=key + "\n")))
    assert out["hash"] == apikeys.hash_key(key)
    assert out["secret_jwt_template"] == {"role": "worker"}
    line = cli_error_line(cli("keys", "import", "--type", "secret", "--name", "stdin_bad", "--key", "-",
                                input="sb_secret_nonsense\n"))
    assert "sb_secret_nonsense" not in line


# --- legacy, migrate --------------------------------------------------------------------------


def test_legacy_enable_disable_status(cli, dsn):
    assert cli_ok(cli("legacy", "status")).strip() == "legacy API keys are enabled"
    assert json.loads(cli_ok(cli("legacy", "status", "--json"))) == {"enabled": True, "changed_at": None}
    assert cli_ok(cli("legacy", "disable")).startswith("legacy API keys are disabled since ")
    assert cli_ok(cli("legacy", "status")).startswith("legacy API keys are disabled since ")
    state = json.loads(cli_ok(cli("legacy", "status", "--json")))
    assert state["enabled"] is False and state["changed_at"]
    assert cli_ok(cli("legacy", "enable")).startswith("legacy API keys are enabled since ")
    assert json.loads(cli_ok(cli("legacy", "status", "--json")))["enabled"] is True
    assert [r["action"] for r in asyncio.run(audit_rows(dsn))] == ["legacy.disable", "legacy.enable"]


def test_migrate(cli):
    from gateway.keys.db import migration_files

    assert cli_ok(cli("migrate")).strip() == "applied " + ", ".join(version for version, _ in migration_files())
    assert cli_ok(cli("migrate")).strip() == "migrations are up to date"


# --- failures: one line, non-zero -------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["keys"],
    ["keys", "create", "--name", "abcd"],
    ["keys", "create", "--type", "bogus", "--name", "abcd"],
    ["keys", "create", "--type", "secret", "--name", "abcd", "--extra"],
    ["keys", "import", "--type", "secret", "--name", "abcd"],
    ["legacy", "maybe"],
    ["serve", "--port", "eighty"],
    ["migrate", "now"],
])
def test_bad_flags(workdir, argv):
    result = run_cli(*argv, cwd=workdir, env={"GATEWAY_DATA_DIR": str(workdir / "data")})
    cli_error_line(result, status=2)
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("argv", [["keys", "list"], ["keys", "create", "--type", "secret", "--name", "abcd"],
                                  ["keys", "delete", str(uuid.uuid4())], ["migrate"], ["legacy", "status"],
                                  ["serve"]])
def test_unreachable_database(workdir, argv):
    port = free_port()  # nothing listens there
    env = {"GATEWAY_DATABASE_URL": f"postgresql://gw:hunter2-password@127.0.0.1:{port}/postgres",
           "GATEWAY_DATA_DIR": str(workdir / "data"), "GATEWAY_JWT__SECRET": JWT_SECRET,
           "GATEWAY_SERVER__PORT": str(free_port()), "GATEWAY_ADMIN__PORT": str(free_port())}
    result = run_cli(*argv, cwd=workdir, env=env, timeout=30)
    line = cli_error_line(result)
    assert "database" in line and "hunter2-password" not in line


def test_serve_on_a_port_in_use(workdir, gateway_env):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), cwd=workdir,
                         env={**gateway_env, "GATEWAY_DATA_DIR": str(workdir / "data"),
                              "GATEWAY_ADMIN__PORT": str(free_port())}, timeout=60)
    # info lines may come first; the failure itself is one line, the last, and no traceback
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith("gateway: error: ") and str(port) in errors[0]


# --- beside a running gateway, on its embedded database ---------------------------------------


def test_first_start_and_cli_beside_serve_on_the_embedded_database(tmp_path):
    env = {"GATEWAY_JWT__SECRET": JWT_SECRET, "GATEWAY_KEYS__REFRESH_SECONDS": "30"}
    for name in ("GATEWAY_DATABASE_URL", "DATABASE_URL", "GATEWAY_ADMIN__TOKEN"):
        assert name not in os.environ
    gw = Gateway(env).start(timeout=60)
    try:
        data_dir = gw.workdir / "data"
        assert (data_dir / "pgdata").is_dir()  # the embedded server lives under data_dir

        # first start, no terminal: the secrets are in a 0600 file, and only its path is logged
        path = data_dir / "initial-keys.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        initial = json.loads(path.read_text())
        keys = initial["keys"]
        assert sorted((k["type"], k["name"]) for k in keys) == [("publishable", "default"), ("secret", "default")]
        for k in keys:
            assert apikeys.parse(k["api_key"], REF) == k["type"]
        token = initial["admin_token"]
        logs = gw.logs()
        assert str(path) in logs
        assert f"embedded PostgreSQL in {data_dir / 'pgdata'}" in logs  # start-up says where
        for secret in [token, *(k["api_key"] for k in keys)]:
            assert secret not in logs

        admin = {"Authorization": f"Bearer {token}"}
        base = f"{gw.admin_url}/v1/projects/default/api-keys"
        listed_keys = httpx.get(base, headers=admin).json()
        assert {k["hash"] for k in listed_keys} == {apikeys.hash_key(k["api_key"]) for k in keys}
        assert httpx.get(base, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        publishable = next(k["api_key"] for k in keys if k["type"] == "publishable")
        assert httpx.get(gw.url + "/rest/v1/x", headers={"apikey": publishable}).status_code in (502, 503)

        # the CLI, while serve runs, on the same embedded database
        cli_env = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_JWT__SECRET": JWT_SECRET}
        made = json.loads(cli_ok(run_cli("keys", "create", "--type", "publishable", "--name", "from_cli", "--json",
                                     env=cli_env, cwd=tmp_path)))
        assert gw.proc.poll() is None
        assert made["id"] in {k["id"] for k in httpx.get(base, headers=admin).json()}
        assert wait_status(gw, made["api_key"], lambda s: s != 401) in (502, 503)
        names = {r["name"] for r in json.loads(cli_ok(run_cli("keys", "list", "--json", env=cli_env, cwd=tmp_path)))}
        assert names == {"default", "from_cli"}
        assert "enabled" in cli_ok(run_cli("legacy", "status", env=cli_env, cwd=tmp_path))
        cli_ok(run_cli("keys", "delete", made["id"], env=cli_env, cwd=tmp_path))
        assert wait_status(gw, made["api_key"], lambda s: s == 401) == 401

        # the gateway keeps running, its database too
        assert gw.proc.poll() is None
        assert httpx.get(gw.url + "/health").status_code == 200
        assert len(httpx.get(base, headers=admin).json()) == 2
        assert (data_dir / "pgdata" / "postmaster.pid").exists()
    finally:
        code = gw.stop()
    assert code == 0, gw.logs()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()  # embedded Postgres stopped with it

    # a second start on the same data: no new keys, no new token, the file is left as it was
    before = path.read_text()
    again = Gateway(env, workdir=gw.workdir).start(timeout=60)
    try:
        r = httpx.get(f"{again.admin_url}/v1/projects/default/api-keys", headers=admin)
        assert r.status_code == 200 and len(r.json()) == 2
    finally:
        assert again.stop() == 0
    assert path.read_text() == before
    assert "initial keys" not in (again.workdir / "stdout.log").read_text() + (again.workdir / "stderr.log").read_text()


def wait_status(gw: Gateway, key: str, done, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(gw.url + "/rest/v1/x", headers={"apikey": key}).status_code
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_errors_quoting_input_stay_on_one_line(cli, workdir):
    line = cli_error_line(cli("keys", "delete", "first\nsecond\nthird"))
    assert "first second third" in line
    cli_error_line(run_cli("keys", "create", "--type", "a\nb", "--name", "abcd", cwd=workdir), status=2)
    cli_error_line(cli("keys", "list", "--config", str(workdir / "no\nsuch.toml")))


def test_text_the_database_cannot_hold_is_one_line_and_writes_nothing(cli, dsn):
    """Arguments that are not UTF-8 arrive as lone surrogates (Python's surrogateescape)."""
    line = cli_error_line(cli("keys", "create", "--type", "secret", "--name", "abcd", "--description", "a\udcffb"))
    assert "description" in line
    kept = create(cli, "publishable")
    assert "reason" in cli_error_line(cli("keys", "delete", kept["id"], "--reason", "\udcff"))
    assert [r["id"] for r in listed(cli)] == [kept["id"]]  # not deleted
    assert [r["action"] for r in asyncio.run(audit_rows(dsn))] == ["api_key.create"]


def test_commands_start_and_stop_an_embedded_database_of_their_own(tmp_path):
    """``migrate`` makes it (the other commands never do: tests/test_first_hour.py)."""
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data")}
    for name in ("GATEWAY_DATABASE_URL", "DATABASE_URL"):
        assert name not in os.environ
    cli_ok(run_cli("migrate", env=env, cwd=tmp_path))
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()  # stopped again
    made = json.loads(cli_ok(run_cli("keys", "create", "--type", "secret", "--name", "embedded_key", "--json",
                                 env=env, cwd=tmp_path)))
    assert (tmp_path / "data" / "pgdata").is_dir()
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()  # stopped again
    rows = json.loads(cli_ok(run_cli("keys", "list", "--json", env=env, cwd=tmp_path)))
    assert [r["id"] for r in rows] == [made["id"]]  # the data outlives the server
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()


def test_first_start_on_a_terminal_prints_the_keys_once_and_writes_no_file(tmp_path, gateway_env):
    import pty
    import select
    import signal
    import subprocess

    from tests.helpers import gateway_cmd

    env = {**os.environ, **gateway_env, "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_SERVER__HOST": "127.0.0.1", "GATEWAY_SERVER__PORT": str(free_port()),
           "GATEWAY_ADMIN__PORT": str(free_port()), "GATEWAY_SERVER__WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    del env["GATEWAY_ADMIN__TOKEN"]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(gateway_cmd("serve"), env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=secondary,
                            stderr=subprocess.PIPE)
    os.close(secondary)
    out = b""
    try:
        deadline = time.monotonic() + 30
        while b"admin token" not in out and time.monotonic() < deadline and proc.poll() is None:
            if select.select([primary], [], [], 0.2)[0]:
                try:
                    out += os.read(primary, 65536)
                except OSError:
                    break
        while time.monotonic() < deadline and proc.poll() is None:  # up, so SIGTERM is a clean stop
            try:
                if httpx.get(f"http://127.0.0.1:{env['GATEWAY_SERVER__PORT']}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        os.close(primary)
    text = out.decode(errors="replace")
    printed = [word for word in text.split() if word.startswith(("sb_publishable_", "sb_secret_", "sbp_"))]
    assert sorted(w.split("_")[0 if w.startswith("sbp_") else 1] for w in printed) == \
        ["publishable", "sbp", "secret"], text
    assert all(apikeys.parse(w, REF) for w in printed if not w.startswith("sbp_"))
    assert [re.fullmatch(r"sbp_[a-f0-9]{40}", w) is not None for w in printed if w.startswith("sbp_")] == [True]
    assert not (tmp_path / "data" / "initial-keys.json").exists()
    for word in printed:
        assert word.encode() not in err  # the log (stderr) never has them
    assert proc.returncode == 0


def test_limits_on_create_update_and_list(cli):
    made = create(cli, "publishable", None, "--limit-per-key", "1000/m", "--limit-per-ip", "60/m")
    assert made["limits"] == {"per_key": "1000/m", "per_ip": "60/m"}
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--limit-per-ip", "100/5m", "--json")))
    assert out["limits"] == {"per_key": "1000/m", "per_ip": "100/5m"}
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--limit-per-key", "none", "--description", "x", "--json")))
    assert (out["limits"], out["description"]) == ({"per_key": None, "per_ip": "100/5m"}, "x")
    assert "per_ip=100/5m" in cli_ok(cli("keys", "list"))
    renamed = cli_ok(cli("keys", "update", made["id"], "--name", "renamed_key"))
    assert renamed.startswith("updated publishable key renamed_key")


@pytest.mark.parametrize("flags", [("--limit-per-key", "1000"), ("--limit-per-ip", "10/x"), ("--limit-per-ip", "0/s")])
def test_bad_limits_are_one_line_errors(cli, flags):
    assert "limits" in cli_error_line(cli("keys", "create", "--type", "secret", "--name", "limited", *flags))
    made = create(cli, "secret")
    assert "limits" in cli_error_line(cli("keys", "update", made["id"], *flags))


def test_update_needs_a_field_and_a_known_id(cli):
    made = create(cli, "secret")
    assert "at least one field" in cli_error_line(cli("keys", "update", made["id"]))
    assert "no API key" in cli_error_line(cli("keys", "update", str(uuid.uuid4()), "--name", "other_name"))


def test_expiry_and_restrictions_on_create_update_and_list(cli):
    made = create(cli, "secret", None, "--expires-in", "2h", "--allow-origin", "https://app.example.com",
                  "--allow-origin", "http://localhost:*", "--allow-ip", "10.0.0.0/8", "--allow-service", "storage")
    expires = datetime.fromisoformat(made["expires_at"])
    assert 7100 < (expires - datetime.now(timezone.utc)).total_seconds() <= 7200
    assert made["allowed_origins"] == ["https://app.example.com", "http://localhost:*"]
    assert (made["allowed_ips"], made["allowed_services"]) == (["10.0.0.0/8"], ["storage"])
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--expires-at", "2031-01-01T00:00:00Z", "--allow-ip", "none",
                            "--allow-service", "rest", "--allow-service", "storage", "--json")))
    assert (out["expires_at"], out["allowed_ips"], out["allowed_services"]) == (
        "2031-01-01T00:00:00+00:00", [], ["rest", "storage"])
    expired = create(cli, "publishable", None, "--expires-at", "2020-01-01T00:00:00Z")
    listing = cli_ok(cli("keys", "list"))
    [line] = [line for line in listing.splitlines() if line.startswith(made["id"])]
    assert line.split()[-2] == "in" and line.split()[-1].endswith("y")  # 2031: years away
    assert "expired" in listing and "services rest, storage" in listing
    assert expired["expired"] is True
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--expires-at", "none", "--json")))
    assert out["expires_at"] is None


@pytest.mark.parametrize("flags", [("--expires-in", "2 weeks"), ("--expires-at", "tomorrow"),
                                   ("--allow-origin", "app.example.com"), ("--allow-ip", "10.0.0.0/40"),
                                   ("--allow-service", "everything")])
def test_bad_restrictions_are_one_line_errors(cli, flags):
    cli_error_line(cli("keys", "create", "--type", "secret", "--name", "restricted", *flags))


def test_resources_methods_and_quota_on_create_update_and_list(cli, dsn):
    made = create(cli, "publishable", None, "--allow-resource", "todos", "--allow-resource", "rpc/search_*",
                  "--allow-method", "GET", "--allow-method", "head", "--quota", "1000/month")
    assert (made["allowed_resources"], made["allowed_methods"]) == (["todos", "rpc/search_*"], ["GET", "HEAD"])
    assert (made["quota"]["limit"], made["quota"]["used"], made["quota"]["left"]) == ("1000/month", 0, 1000)
    asyncio.run(_count(dsn, made["id"], 12))  # what the workers wrote
    listing = cli_ok(cli("keys", "list"))
    assert "quota 12 of 1000/month used; resources todos, rpc/search_*; methods GET, HE…" in listing  # cut at 100
    shown = {k["id"]: k for k in listed(cli)}[made["id"]]["quota"]
    assert (shown["used"], shown["left"]) == (12, 988)
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--allow-method", "none", "--quota", "5/day", "--json")))
    assert (out["allowed_resources"], out["allowed_methods"], out["quota"]["limit"]) == (
        ["todos", "rpc/search_*"], [], "5/day")
    assert out["quota"]["left"] == 0  # 12 today
    out = json.loads(cli_ok(cli("keys", "update", made["id"], "--allow-resource", "none", "--quota", "none", "--json")))
    assert (out["allowed_resources"], out["quota"]) == ([], None)


async def _count(dsn: str, key_id: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO gateway.quota_usage (key_id, day, n) VALUES ($1::uuid,"
                           " (now() AT TIME ZONE 'UTC')::date, $2)", key_id, n)
    finally:
        await conn.close()


@pytest.mark.parametrize("flags", [("--allow-resource", "a/b"), ("--allow-resource", " x"), ("--allow-method", "FETCH"),
                                   ("--quota", "10/week"), ("--quota", "many")])
def test_bad_rules_are_one_line_errors_that_echo_no_list(cli, flags):
    line = cli_error_line(cli("keys", "create", "--type", "secret", "--name", "ruled", *flags))
    field = {"--allow-resource": "allowed_resources", "--allow-method": "allowed_methods", "--quota": "quota"}[flags[0]]
    said = f"gateway: error: {field}: "
    assert line.startswith(said) and flags[1].strip() not in line.removeprefix(said)
    made = create(cli, "secret")
    cli_error_line(cli("keys", "update", made["id"], *flags))
