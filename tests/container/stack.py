"""A self-hosted stack in containers, switched to the gateway as docs/dropin.md says.

The stack's folder is the official one as far as the tests know it (tests/fixtures/selfhosted:
its docker-compose.yml, its .env with keys made by its scripts), plus the schema the compat
suite's clients read (as the stack's own volumes/db/*.sql are run). Then, as the docs write it:
the JWKS lines uncommented ("After switching", step 5, for a stack with JWT_KEYS), the override
copied next to docker-compose.yml, and ``docker compose -f docker-compose.yml -f
docker-compose.gateway.yml up -d`` with, last, the local builds in place of the images that cannot
be pulled here (tests/container/docker-compose.local-builds.yml). The gateway's image is the one
scripts/container-images built from this repository's Dockerfile.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.compat.stack import SEED
from tests.container.engine import Compose, docker, psql, wait_healthy
from tests.helpers import REPO, free_port
from tests.selfhosted import FIXTURE, OVERRIDE, stack_env

PROJECT = "gateway-dropin"
GATEWAY = "supabase-envoy"  # the container's name: the stack's own, which its Vector reads
DB = "supabase-db"
LOCAL_BUILDS = REPO / "tests" / "container" / "docker-compose.local-builds.yml"
SCHEMA = REPO / "tests" / "compat" / "schema.sql"
# What docs/dropin.md tells a self-hoster to run, word for word (test_docs_give_these_commands).
SWITCH_BUILD = "docker build -t supabase-api-gateway ."
SWITCH_COPY = "cp docker/docker-compose.gateway.yml ~/supabase/docker/"
SWITCH_UP = "docker compose -f docker-compose.yml -f docker-compose.gateway.yml up -d"
JWKS_LINES = re.compile(r"^(\s*)#\s*(API_JWT_JWKS|JWT_JWKS|GOTRUE_JWT_KEYS|SUPABASE_JWKS):", re.M)


@dataclass
class DropIn:
    compose: Compose
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['KONG_HTTP_PORT']}"

    @property
    def keys(self) -> dict[str, str]:
        """The keys the stack's clients already hold (its .env)."""
        env = self.env
        return {"publishable": env["SUPABASE_PUBLISHABLE_KEY"], "secret": env["SUPABASE_SECRET_KEY"],
                "anon": env["ANON_KEY"], "service_role": env["SERVICE_ROLE_KEY"]}

    def reseed(self) -> None:
        """The compat suite's five todos, ids 1 to 5, as its clients expect them."""
        values = ", ".join("('%s', %s, %s)" % (title, f"'{owner}'" if owner else "NULL", str(public).lower())
                           for title, owner, public in SEED)
        psql(DB, f"TRUNCATE public.todos RESTART IDENTITY; INSERT INTO public.todos (title, owner, is_public) "
                 f"VALUES {values}")


def uncomment_jwks(compose_file: Path) -> None:
    """docs/dropin.md, "After switching", step 5: the JWKS lines of docker-compose.yml uncommented."""
    compose_file.write_text(JWKS_LINES.sub(r"\1\2:", compose_file.read_text()))


def remove_leftovers() -> None:
    """What an earlier run that was killed left of this project (only its own, by label)."""
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in ("container", "network", "volume"):
        ids = docker(kind, "ls", "-q", "--filter", label, *(["-a"] if kind == "container" else [])).stdout.split()
        if ids:
            docker(kind, "rm", *(["-f"] if kind != "network" else []), *ids, check=False)


def start(folder: Path) -> DropIn:
    """The stack in ``folder`` (a new temporary one), switched to the gateway and up."""
    (folder / "volumes" / "db").mkdir(parents=True)
    shutil.copy(FIXTURE / "docker-compose.yml", folder / "docker-compose.yml")
    shutil.copy(SCHEMA, folder / "volumes" / "db" / "todos.sql")
    env = stack_env(new_keys=True)
    # Ports of this machine, on the loopback (the local-builds override binds them there).
    env.update(KONG_HTTP_PORT=str(free_port()), API_GW_ADMIN_PORT=str(free_port()),
               POSTGRES_PORT=str(free_port()), POOLER_PROXY_PORT_TRANSACTION=str(free_port()))
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    uncomment_jwks(folder / "docker-compose.yml")
    shutil.copy(OVERRIDE, folder / OVERRIDE.name)  # SWITCH_COPY
    shutil.copy(LOCAL_BUILDS, folder / LOCAL_BUILDS.name)
    compose = Compose(folder, PROJECT, ["docker-compose.yml", OVERRIDE.name, LOCAL_BUILDS.name])
    remove_leftovers()
    stack = DropIn(compose, env)
    try:
        compose("up", "-d", timeout=300)  # SWITCH_UP, with the local builds last
        wait_healthy(GATEWAY)
        stack.reseed()
    except BaseException:
        stop(stack)
        raise
    return stack


def stop(stack: DropIn) -> None:
    stack.compose.down()
