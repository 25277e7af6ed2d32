"""What a newcomer meets in the first hour (issue 24), through the real ``gateway`` console
script in a subprocess: ``--config`` on either side of the subcommand, ``--version``, commands
that never make an empty database where ``serve`` never ran, and what start-up says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import gateway
from gateway.process.server import NO_UPSTREAMS, page_url
from tests.helpers import JWT_SECRET, Gateway, assert_refused, cli_error_line, cli_ok

CONSOLE = Path(sys.executable).with_name("gateway")
# What the machine running the tests may have set, which would change what these commands see.
STRAY = ("GATEWAY_DATABASE_URL", "DATABASE_URL", "GATEWAY_DATA_DIR", "GATEWAY_CONFIG", "JWT_SECRET")


def console(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    assert CONSOLE.exists(), "the project is installed (pip install -e .) in the interpreter's environment"
    base = {k: v for k, v in os.environ.items() if k not in STRAY}
    return subprocess.run([str(CONSOLE), *args], env={**base, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def one_line(result, status: int = 1) -> str:
    return cli_error_line(result, status, "gateway: error: ")


# --- --config, before or after the subcommand -------------------------------------------------


def test_config_before_or_after_the_subcommand(tmp_path, dsn):
    good = tmp_path / "good.toml"
    good.write_text(f'database_url = "{dsn}"\n')
    for argv in (("--config", str(good), "legacy", "status"), ("legacy", "status", "--config", str(good)),
                 ("--config", str(good), "keys", "list", "--json")):
        cli_ok(console(*argv, cwd=tmp_path))
    # given twice, the one after the subcommand wins
    missing = tmp_path / "missing.toml"
    line = one_line(console("--config", str(good), "legacy", "status", "--config", str(missing), cwd=tmp_path))
    assert f"config file {missing}: not found" in line
    cli_ok(console("--config", str(missing), "legacy", "status", "--config", str(good), cwd=tmp_path))


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("keys", "list"), ("legacy", "status")])
def test_a_config_file_named_but_missing_is_one_line(tmp_path, command):
    """Before the subcommand too: ``serve`` used to start with the defaults instead."""
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_JWT__SECRET": JWT_SECRET}
    for argv in (("--config", "nope.toml", *command), (*command, "--config", "nope.toml")):
        assert "config file nope.toml: not found" in one_line(console(*argv, cwd=tmp_path, env=env, timeout=30))
    assert not (tmp_path / "data").exists()


def test_serve_reads_a_config_given_before_it(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nport = 'eighty'\n")
    line = one_line(console("--config", str(config), "serve", cwd=tmp_path,
                            env={"GATEWAY_DATA_DIR": str(tmp_path / "data")}, timeout=30))
    assert f"server.port (in {config}): must be a whole number" in line


# --- --version and the build ------------------------------------------------------------------


def test_version(tmp_path):
    out = cli_ok(console("--version", cwd=tmp_path))
    build = re.escape(gateway.build_info())
    assert re.fullmatch(rf"gateway \d+\.\d+\.\d+\S* \({build}, Python 3\.\d+\.\d+\S*\)\n", out), out
    assert gateway.version() in out


@pytest.mark.parametrize(("origin", "build"), [
    ("/x/gateway/decide.py", "pure Python"),
    ("/x/gateway/decide.pyc", "pure Python"),
    ("/x/gateway/decide.cpython-312-x86_64-linux-gnu.so", "compiled request path (mypyc)"),
    ("C:\\x\\gateway\\decide.cp312-win_amd64.pyd", "compiled request path (mypyc)"),
])
def test_build_info_follows_where_the_request_path_loads_from(monkeypatch, origin, build):
    import importlib.util

    class Spec:
        pass

    spec = Spec()
    spec.origin = origin
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "gateway.decide" else None)
    assert gateway.build_info() == build


def test_build_info_of_this_run():
    """A plain checkout is pure Python; scripts/test-compiled says which build it means to test
    (TEST_GATEWAY_BUILD), so a compiled run that quietly fell back to Python fails here."""
    import gateway.decide

    expected = os.environ.get("TEST_GATEWAY_BUILD", "pure Python")
    assert gateway.build_info() == expected
    assert gateway.decide.__file__.endswith(".py") == (expected == "pure Python")


# --- the embedded database: where serve keeps it, and commands that never make an empty one ----


def test_commands_find_serves_database_or_say_where_they_looked(tmp_path):
    """``keys list`` from another directory, from the same one, with GATEWAY_DATA_DIR, with --config."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()

    def refused(result) -> None:
        line = one_line(result)
        assert f"no embedded database in {elsewhere / '.gateway'}" in line
        assert "GATEWAY_DATA_DIR" in line and "gateway migrate" in line

    # where nothing ran: one line, nothing made
    for argv in (("keys", "list"), ("keys", "create", "--type", "secret", "--name", "abcd"), ("legacy", "status")):
        refused(console(*argv, cwd=elsewhere))
    assert list(elsewhere.iterdir()) == []

    # migrate makes one, and says where
    result = console("migrate", cwd=home)
    assert cli_ok(result).startswith("applied ")
    assert result.stderr == f"creating an embedded database in {home / '.gateway' / 'pgdata'}\n"
    made = json.loads(cli_ok(console("keys", "create", "--type", "secret", "--name", "from_home", "--json", cwd=home)))

    def ids(result) -> list[str]:
        return [k["id"] for k in json.loads(cli_ok(result))]

    assert ids(console("keys", "list", "--json", cwd=home)) == [made["id"]]  # the same directory
    refused(console("keys", "list", cwd=elsewhere))  # another one
    assert ids(console("keys", "list", "--json", cwd=elsewhere,
                       env={"GATEWAY_DATA_DIR": str(home / ".gateway")})) == [made["id"]]
    # a relative data_dir in a config file is taken from the file's folder
    config = home / "gateway.toml"
    config.write_text('data_dir = ".gateway"\n')
    assert ids(console("--config", str(config), "keys", "list", "--json", cwd=elsewhere)) == [made["id"]]
    assert ids(console("keys", "list", "--json", "--config", str(config), cwd=elsewhere)) == [made["id"]]
    assert list(elsewhere.iterdir()) == []
    result = console("migrate", cwd=home)  # there already: nothing made, nothing said
    assert cli_ok(result).strip() == "migrations are up to date" and result.stderr == ""


def test_a_relative_data_dir_in_a_config_file_is_the_files(tmp_path, monkeypatch):
    from gateway.config import load_settings

    for name in STRAY:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "etc"
    folder.mkdir()
    for written, expected in ((".gateway", folder / ".gateway"), ("state/db", folder / "state" / "db"),
                              ("/var/lib/gw", Path("/var/lib/gw"))):
        (folder / "gw.toml").write_text(f'data_dir = "{written}"\n')
        assert load_settings(folder / "gw.toml").data_dir == expected
    monkeypatch.setenv("GATEWAY_DATA_DIR", "here")  # a variable is relative to where the command runs
    assert load_settings(folder / "gw.toml").data_dir == Path("here")
    monkeypatch.delenv("GATEWAY_DATA_DIR")
    (folder / "gw.toml").write_text("")
    assert load_settings(folder / "gw.toml").data_dir == Path(".gateway")  # the default: the current directory


# --- start-up: what runs, where the page is, what is not configured yet ----------------------


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8001/"),
    ("0.0.0.0", "http://127.0.0.1:8001/"),
    ("::", "http://[::1]:8001/"),
    ("::1", "http://[::1]:8001/"),
    ("admin.internal", "http://admin.internal:8001/"),
])
def test_page_url(host, url):
    assert page_url(host, 8001) == url


def test_start_up_says_what_runs_where_the_page_is_and_that_no_upstream_is_set(gateway_env):
    gw = Gateway(gateway_env).start()
    try:
        pub = gw.create_key("publishable")["api_key"]
        r = httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": pub})
        assert_refused(r, 503, "UPSTREAM_NOT_CONFIGURED", "Service not configured",
                       "Set upstreams.rest (GATEWAY_UPSTREAMS__REST) to enable /rest/v1.")
    finally:
        assert gw.stop() == 0
    logs = (gw.workdir / "stderr.log").read_text()
    assert f"gateway {gateway.version()} ({gateway.build_info()}) listening on http://127.0.0.1:{gw.port} (public)" in logs
    assert f"API Keys page: http://127.0.0.1:{gw.admin_port}/" in logs
    [warning] = [line for line in logs.splitlines() if "no upstream is configured" in line]
    assert warning.endswith(NO_UPSTREAMS) and "WARNING" in warning
    for name in ("REST", "AUTH", "REALTIME", "STORAGE", "FUNCTIONS", "META"):
        assert f"GATEWAY_UPSTREAMS__{name}" in warning
    assert "embedded PostgreSQL" not in logs  # it runs on the test's database

    gw = Gateway({**gateway_env, "GATEWAY_UPSTREAMS__AUTH": "http://127.0.0.1:9"}).start()
    assert gw.stop() == 0
    assert "no upstream is configured" not in gw.logs()
