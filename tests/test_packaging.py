"""What ``pip install .`` ships, and the compiled build's settings (setup.py, pyproject.toml).

The wheel is built the way the README's install command builds it (pip, isolated), pure Python
here; scripts/test-compiled builds and tests the compiled one, and the container tests install
the image's compiled wheel."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def request_path() -> list[str]:
    """setup.py's REQUEST_PATH, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "REQUEST_PATH":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no REQUEST_PATH")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                   check=True, env={**os.environ, "GATEWAY_BUILD": "pure"}, capture_output=True, timeout=300)
    (built,) = out.glob("supabase_api_gateway-*.whl")
    assert built.name.endswith("-py3-none-any.whl")  # pure: no extension modules
    return zipfile.ZipFile(built)


def test_the_wheel_ships_every_module_migration_and_page_file(wheel):
    shipped = set(wheel.namelist())
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "gateway").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".html", ".js", ".css")}
    assert sources - shipped == set()
    migrations = {f"gateway/migrations/{p.name}" for p in (REPO / "migrations").glob("*.sql")}
    assert migrations and migrations <= shipped


def test_the_request_path_list_names_modules_that_exist():
    modules = request_path()
    assert "gateway/decide.py" in modules  # the module gateway.build_info probes
    assert all((REPO / m).is_file() for m in modules)
    assert len(set(modules)) == len(modules)
    # mypyc compiles no class with two native bases: errors.Refusal and a builtin exception.
    assert "gateway/upstream/errors.py" not in modules


def test_the_compiler_is_the_version_the_compiled_build_was_tested_with():
    build = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("mypy")]
    test = [r for r in PYPROJECT["project"]["optional-dependencies"]["test"] if r.startswith("mypy")]
    assert build == test and build[0].startswith("mypy==")


@pytest.mark.parametrize("build", ["fast", "COMPILED", "yes"])
def test_an_unknown_build_choice_is_one_line(build):
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--dry-run"], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, "GATEWAY_BUILD": build}, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"GATEWAY_BUILD must be auto, compiled or pure, not {build!r}"]


def test_no_compiled_module_beside_the_sources():
    """setup.py keeps an editable install pure and scripts/test-compiled builds in build/compiled:
    a compiled module beside its .py would shadow every later edit of it."""
    assert not list((REPO / "gateway").rglob("*.so"))
