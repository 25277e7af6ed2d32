"""Test plumbing shared by the suites: a real Postgres, a real gateway process, free ports."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-jwt-secret-with-at-least-32-characters-long"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"

# Every directory the tests make (databases, gateways' data and logs, browser profiles) lives under
# one per test process, removed when the process ends: an embedded database grows to 1-2 GB over
# the suite, and runs must not pile them up. TEST_KEEP_TMP=1 keeps it to look at.
SCRATCH = Path(tempfile.mkdtemp(prefix="gw-tests-"))
if not os.environ.get("TEST_KEEP_TMP"):
    atexit.register(shutil.rmtree, SCRATCH, True)


def scratch(prefix: str) -> Path:
    """A new directory under SCRATCH."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SCRATCH))


def assert_refused(r: Any, status: int, code: str, message: str | None = None, hint: str | None = None) -> None:
    """A refusal of the gateway: its status, ``sb-error-code``, and a JSON body of message and
    hint only (``message`` and ``hint`` compared when given). ``r`` is an httpx response or a
    tests.upstreams.RawResponse."""
    raw = not hasattr(r, "status_code")
    got_status = r.status if raw else r.status_code
    header = r.header if raw else r.headers.get
    assert got_status == status, (got_status, r.body if raw else r.text)
    assert header("sb-error-code") == code
    assert header("content-type") == "application/json"
    body = r.json()
    assert set(body) <= {"message", "hint"} and body["message"]
    if message is not None:
        assert body["message"] == message
    if hint is not None:
        assert body["hint"] == hint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(server_dsn: str) -> str:
    """A fresh, empty database on the shared server; returns its DSN."""

    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]

    async def go() -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run_async(go())
    return server_dsn.replace("/postgres?", f"/{name}?")


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code; in a thread of its own when called
    while an event loop runs (pytest-asyncio's session loop)."""
    import asyncio
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as e:  # surfaced below
            errors.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return result[0]


def gateway_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            cwd: str | Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(gateway_cmd(*args), env=full_env, input=input, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def cli_ok(result: subprocess.CompletedProcess[str]) -> str:
    """A CLI run that succeeded, with no traceback: its output."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def cli_error_line(result: subprocess.CompletedProcess[str], status: int = 1, starts: str = "gateway") -> str:
    """A CLI run that failed with ``status`` in exactly one line (no traceback): that line."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts), lines[0]
    return lines[0]


@dataclass
class Gateway:
    """A real ``gateway serve`` process on free ports; its output lands in files we can read."""

    env: dict[str, str]
    workers: int = 1
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: scratch("gw-"))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def environment(self, inherited: Mapping[str, str] | None = None) -> dict[str, str]:
        """What ``gateway serve`` runs with: ``inherited`` (default: ours), its ports and data dir, then ``env``."""
        return {
            **(os.environ if inherited is None else inherited),
            "GATEWAY_SERVER__HOST": "127.0.0.1",
            "GATEWAY_SERVER__PORT": str(self.port),
            "GATEWAY_ADMIN__PORT": str(self.admin_port),
            "GATEWAY_SERVER__WORKERS": str(self.workers),
            "GATEWAY_DATA_DIR": str(self.workdir / "data"),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    def start(self, timeout: float = 30) -> "Gateway":
        env = self.environment()
        self.stdout = open(self.workdir / "stdout.log", "wb")
        self.stderr = open(self.workdir / "stderr.log", "wb")
        self.proc = subprocess.Popen(gateway_cmd("serve"), env=env, cwd=self.workdir, stdout=self.stdout,
                                     stderr=self.stderr, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200 and \
                        httpx.get(self.admin_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not start in {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def logs(self) -> str:
        out = []
        for name in ("stdout.log", "stderr.log"):
            p = self.workdir / name
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "\n".join(out)

    def access_log(self) -> list[dict[str, Any]]:
        lines = (self.workdir / "stdout.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    # --- admin API shortcuts ---
    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.env.get('GATEWAY_ADMIN__TOKEN', ADMIN_TOKEN)}",
                   **kw.pop("headers", {})}
        ref = self.env.get("GATEWAY_PROJECT_REF", "default")
        return httpx.request(method, f"{self.admin_url}/v1/projects/{ref}{path}", headers=headers, timeout=10, **kw)

    def metrics(self) -> str:
        r = httpx.get(f"{self.admin_url}/metrics", timeout=10,
                      headers={"Authorization": f"Bearer {self.env.get('GATEWAY_ADMIN__TOKEN', ADMIN_TOKEN)}"})
        r.raise_for_status()
        return r.text

    def create_key(self, key_type: str = "publishable", name: str | None = None, **body: Any) -> dict[str, Any]:
        r = self.admin("POST", "/api-keys", json={"type": key_type, "name": name or f"k_{uuid.uuid4().hex[:8]}",
                                                   **body})
        assert r.status_code == 201, r.text
        return r.json()

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class RedisServer:
    """A real ``redis-server`` (Debian's) on a free loopback port, nothing kept on disk."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: scratch("gw-redis-"))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test-deps installs it)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class NodeUpstream:
    """tests/node_upstream.mjs: a Node ``http`` server as an upstream, with its record of requests
    and of the connections it saw close."""

    proc: subprocess.Popen[str] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "NodeUpstream":
        import shutil

        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is required for the Node upstream of the wire tests")
        self.proc = subprocess.Popen([node, str(REPO / "tests" / "node_upstream.mjs")], stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        return self

    def record(self, clear: bool = False) -> dict[str, Any]:
        """``{"requests": [{method, url, socket, headers, bodyLength}], "closed": [socket ids]}``."""
        return httpx.request("DELETE" if clear else "GET", self.url + "/__requests", timeout=5).json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
