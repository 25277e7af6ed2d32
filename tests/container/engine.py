"""Docker and Compose for the container tests: is an engine there, the local images, a stack.

Without a usable engine (no docker command, no daemon and no way to start one, no Compose v2,
nothing to build the base image with) the container tests are skipped with the reason, unless
``CONTAINER_TESTS=required`` (set by .ci/run), which turns every such reason into a
failure: CI never passes without having run them. Anything that fails once the engine is there
(an image that does not build, a stack that does not start) is a failure either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from tests.helpers import REPO

REQUIRED = os.environ.get("CONTAINER_TESTS", "").lower() == "required"
# What compose and docker get from the shell running the tests: nothing that could change the
# stack (Compose prefers the environment to the stack's .env).
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR")


def unavailable(reason: str) -> None:
    """Skip, or fail where the container tests are required."""
    message = f"container tests cannot run: {reason}"
    if REQUIRED:
        pytest.fail(message + " (CONTAINER_TESTS=required)", pytrace=False)
    pytest.skip(message)


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: os.environ[k] for k in PASSED_ENV if k in os.environ}, **extra}


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args[:4])} ... exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@cache
def engine_problem() -> str | None:
    """Why no container can run here, or None. Starts dockerd when it can (scripts/container-engine)."""
    if shutil.which("docker") is None:
        return "no docker command (Debian: apt-get install docker.io)"
    started = subprocess.run([str(REPO / "scripts" / "container-engine")], capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        return started.stderr.strip().splitlines()[-1] if started.stderr.strip() else "no engine answers"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "no Compose v2 plugin (`docker compose`; scripts/test-deps installs one)"
    if shutil.which("debootstrap") is None and not image_exists("gateway-local/debian:bookworm"):
        return "debootstrap is needed for the local base image (apt-get install debootstrap)"
    for tool in ("npm", "/usr/bin/python3"):
        if shutil.which(tool) is None:
            return f"{tool} is needed to build the local images"
    return None


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def build_images() -> float:
    """scripts/container-images; how long it took. A build that fails fails the tests."""
    started = time.monotonic()
    result = subprocess.run([str(REPO / "scripts" / "container-images")], capture_output=True, text=True,
                            timeout=900, cwd=REPO)
    if result.returncode != 0:
        pytest.fail(f"scripts/container-images failed:\n{result.stderr[-4000:]}", pytrace=False)
    return time.monotonic() - started


@dataclass
class Compose:
    """``docker compose`` in a stack's folder, with that folder's .env, as a user runs it."""

    folder: Path
    project: str
    files: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return clean_env(COMPOSE_PROJECT_NAME=self.project)

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        flags = [arg for f in self.files for arg in ("-f", f)]
        return run(["docker", "compose", *flags, *args], cwd=self.folder, env=self.env(), timeout=timeout,
                   check=check)

    def down(self) -> None:
        """Everything the stack made: containers, networks, named volumes, and its folder."""
        self("down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], timeout=timeout, check=check)


def health(container: str) -> str:
    result = docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                    container, check=False)
    return result.stdout.strip() or "absent"


def wait_healthy(container: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while (state := health(container)) != "healthy":
        if time.monotonic() > deadline or state in ("absent", "exited", "dead"):
            logs = docker("logs", "--tail", "30", container, check=False)
            raise AssertionError(f"{container} is {state}, not healthy:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def logs(container: str, since: str | None = None) -> str:
    args = ["logs", *(["--since", since] if since else []), container]
    result = docker(*args)
    return result.stdout + result.stderr


def published_port(container: str, port: int) -> int:
    out = docker("port", container, f"{port}/tcp").stdout.split()
    return int(out[0].rsplit(":", 1)[1])


def psql(container: str, sql: str, *, user: str = "postgres", database: str = "postgres") -> str:
    """One statement through psql inside the database container; its unaligned output."""
    return docker("exec", container, "psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql",
                  "-U", user, "-d", database, "-c", sql).stdout

