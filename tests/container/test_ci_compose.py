"""docker-compose.yml as docs/ci.md tells a team to use it in CI: the workflow's steps, taken
from that page and run with bash as written, in a folder laid out as the workflow's checkout (the
app at the top, this repository in ``gateway/``, the app's schema in ``supabase/schema.sql``).

The environment adds what this machine needs and nothing else: free ports (``GATEWAY_PORT``,
``GATEWAY_ADMIN_PORT``), a project name, ``COMPOSE_FILE`` with the local builds after the file
(tests/container/docker-compose.ci-local-builds.yml), and ``GITHUB_ENV``, read back afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from supabase import create_client

from tests.compat.stack import ALICE, ALICE_ROWS, ALL_ROWS, ANON_ROWS, SEED
from tests.container.engine import clean_env, docker
from tests.helpers import REPO, free_port

PROJECT = "gateway-ci"
LOCAL_BUILDS = REPO / "tests" / "container" / "docker-compose.ci-local-builds.yml"
CHECKOUT = ("docker-compose.yml", "docker/ci/db-init.sql", "Dockerfile", ".dockerignore", "setup.py")
SETUP = ("Start Supabase behind the gateway", "Keys for the tests", "The app's schema")
STOP = "Stop"


def workflow_steps() -> dict[str, dict]:
    """The steps of the workflow in docs/ci.md, by name."""
    text = (REPO / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    steps = yaml.safe_load(block)["jobs"]["test"]["steps"]
    return {step["name"]: step for step in steps if "name" in step}


def run_step(step: dict, workspace, env: dict[str, str]) -> None:
    """A ``run`` step as GitHub runs it: bash -e -o pipefail, in its working directory."""
    cwd = workspace / step.get("working-directory", ".")
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"step {step['name']!r} failed:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def ci(images, tmp_path_factory):
    steps = workflow_steps()
    workspace = tmp_path_factory.mktemp("app")
    checkout = workspace / "gateway"  # actions/checkout of this repository, path: gateway (what compose reads)
    for name in CHECKOUT:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, checkout / name)
    (workspace / "supabase").mkdir()
    shutil.copy(REPO / "tests" / "compat" / "schema.sql", workspace / "supabase" / "schema.sql")
    github_env = workspace / "github-env"
    github_env.touch()
    env = clean_env(GITHUB_ENV=str(github_env), COMPOSE_PROJECT_NAME=PROJECT,
                    COMPOSE_FILE=os.pathsep.join(["docker-compose.yml", str(LOCAL_BUILDS)]),
                    GATEWAY_PORT=str(free_port()), GATEWAY_ADMIN_PORT=str(free_port()))
    try:
        for name in SETUP:
            run_step(steps[name], workspace, env)
        values = dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
        yield values
    finally:
        run_step(steps[STOP], workspace, env)


def test_the_workflow_names_the_steps_the_test_runs():
    steps = workflow_steps()
    assert set(SETUP) | {STOP} <= set(steps)
    assert "docker compose up -d --wait" in steps[SETUP[0]]["run"]


def test_the_keys_work_with_supabase_py(ci):
    assert ci["SUPABASE_URL"].startswith("http://127.0.0.1:")
    values = ", ".join("('%s', %s, %s)" % (t, f"'{o}'" if o else "NULL", str(p).lower()) for t, o, p in SEED)
    containers = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                        "--filter", "label=com.docker.compose.service=db").stdout.split()
    docker("exec", containers[0], "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-c",
           f"INSERT INTO public.todos (title, owner, is_public) VALUES {values}")
    for key, expected in ((ci["SUPABASE_PUBLISHABLE_KEY"], ANON_ROWS), (ci["SUPABASE_SECRET_KEY"], ALL_ROWS)):
        client = create_client(ci["SUPABASE_URL"], key)
        assert {r["id"] for r in client.table("todos").select("id").execute().data} == expected
    client = create_client(ci["SUPABASE_URL"], ci["SUPABASE_PUBLISHABLE_KEY"])
    client.auth.sign_in_with_password({"email": ALICE.email, "password": ALICE.password})
    assert {r["id"] for r in client.table("todos").select("id").execute().data} == ALICE_ROWS


def test_every_service_is_healthy(ci):
    out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--format", "{{.Label \"com.docker.compose.service\"}} {{.Status}}").stdout
    status = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(status) == {"db", "rest", "auth", "realtime", "storage", "meta", "gateway"}
    assert all("(healthy)" in s for s in status.values()), status
    assert shutil.which("jq")  # the workflow's step needs it (GitHub's runners have it)
