"""What a newcomer meets in the first hour (issue 24), through the real ``gateway`` console
script in a subprocess: ``--config`` on either side of the subcommand and ``--version``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gateway
from tests.helpers import JWT_SECRET

CONSOLE = Path(sys.executable).with_name("gateway")
# What the machine running the tests may have set, which would change what these commands see.
STRAY = ("GATEWAY_DATABASE_URL", "DATABASE_URL", "GATEWAY_DATA_DIR", "GATEWAY_CONFIG", "JWT_SECRET")


def console(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    assert CONSOLE.exists(), "the project is installed (pip install -e .) in the interpreter's environment"
    base = {k: v for k, v in os.environ.items() if k not in STRAY}
    return subprocess.run([str(CONSOLE), *args], env={**base, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line(result, status: int = 1) -> str:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("gateway: error: ")
    return line


# --- --config, before or after the subcommand -------------------------------------------------


def test_config_before_or_after_the_subcommand(tmp_path, dsn):
    good = tmp_path / "good.toml"
    good.write_text(f'database_url = "{dsn}"\n')
    for argv in (("--config", str(good), "legacy", "status"), ("legacy", "status", "--config", str(good)),
                 ("--config", str(good), "keys", "list", "--json")):
        ok(console(*argv, cwd=tmp_path))
    # given twice, the one after the subcommand wins
    missing = tmp_path / "missing.toml"
    line = one_line(console("--config", str(good), "legacy", "status", "--config", str(missing), cwd=tmp_path))
    assert f"config file {missing}: not found" in line
    ok(console("--config", str(missing), "legacy", "status", "--config", str(good), cwd=tmp_path))


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
    out = ok(console("--version", cwd=tmp_path))
    assert re.fullmatch(r"gateway \d+\.\d+\.\d+\S* \(pure Python, Python 3\.\d+\.\d+\S*\)\n", out), out
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


def test_build_info_of_this_checkout():
    import gateway.decide

    assert gateway.decide.__file__.endswith(".py") and gateway.build_info() == "pure Python"
