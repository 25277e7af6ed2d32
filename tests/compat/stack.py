"""The project behind the gateway: Postgres with RLS, the service stand-ins, Deno, and keys.

``Stack`` starts everything once (one background thread with its own event loop for the Python
services, one ``deno run`` process for the Edge Function), and ``gateway_env`` wires a gateway
to it. ``reseed()`` puts the ``todos`` table back to the same five rows before each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from aiohttp import web

from tests.compat.services import Auth, Keys, Realtime, RequestLog, Rest, User
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, create_database, free_port, run_async, scratch

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"

ALICE = User("a11ce000-0000-4000-8000-00000000a11c", "alice@example.com", "alice-password-1")
BOB = User("b0b00000-0000-4000-8000-000000000b0b", "bob@example.com", "bob-password-1")

# (title, owner, is_public): ids 1..5 in this order.
SEED = [
    ("alice public", ALICE.id, True),
    ("alice private", ALICE.id, False),
    ("bob private", BOB.id, False),
    ("bob public", BOB.id, True),
    ("ownerless private", None, False),
]
ANON_ROWS = {1, 4}
ALICE_ROWS = {1, 2}
BOB_ROWS = {3, 4}
ALL_ROWS = {1, 2, 3, 4, 5}


def assert_function_saw(data: dict[str, Any], role: str, sub: str | None = None, key_role: str | None = None) -> None:
    """What the Deno function reports of the request it got through the gateway."""
    assert data["runtime"].startswith("deno ")
    assert data["claims"]["role"] == role
    assert data["claims"].get("sub") == sub
    assert data["sb_api_key"]["role"] == (key_role or role)
    assert data["apikey"] == "jwt"  # the minted JWT, never the key itself
    assert data["body"] == {"hello": "deno"}


def legacy_key(role: str) -> str:
    """A legacy API key as the self-hosted setup generates it: a long-lived HS256 JWT."""
    now = int(time.time())
    return jwt.encode({"role": role, "iss": "supabase", "iat": now, "exp": now + 5 * 365 * 86400},
                      JWT_SECRET, algorithm="HS256")


ANON_KEY = legacy_key("anon")
SERVICE_ROLE_KEY = legacy_key("service_role")


def deno_binary() -> Path:
    """The Deno executable the ``deno`` npm package installed (or its platform package)."""
    candidates = [NODE_MODULES / "deno" / "deno", *sorted((NODE_MODULES / "@deno").glob("*/deno"))]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise RuntimeError("Deno not found under tests/compat/node_modules: run `npm ci --prefix tests/compat`")


def ensure_node_modules() -> None:
    """``npm ci`` from the committed lock file when the Node pieces are missing (CI does it first)."""
    if all((NODE_MODULES / package).is_dir() for package in ("@supabase/supabase-js", "supabase-management-js",
                                                             "supabase", "playwright-core")):
        deno_binary()
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required for the compatibility suite")
    subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund", "--prefix", str(HERE)], check=True,
                   timeout=600)
    deno_binary()


@dataclass
class Stack:
    pg_server: str
    keys: Keys = field(default_factory=lambda: Keys(JWT_SECRET))
    log: list[RequestLog] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dsn = create_database(self.pg_server)
        self.rest: Rest | None = None
        self.auth = Auth(self.keys, [ALICE, BOB], self.log)
        self.realtime = Realtime(self.keys)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runners: list[web.AppRunner] = []
        self.deno: subprocess.Popen[bytes] | None = None
        self.workdir = scratch("gw-compat-")

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    # --- lifecycle ---

    def start(self) -> "Stack":
        self.run(self._setup_database())
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._start_services())
            except BaseException as e:  # surfaced to the starting thread
                errors.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name="compat-services", daemon=True)
        self.thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        self._start_deno()
        return self

    def stop(self) -> None:
        if self.deno is not None and self.deno.poll() is None:
            self.deno.terminate()
            try:
                self.deno.wait(10)
            except subprocess.TimeoutExpired:
                self.deno.kill()
                self.deno.wait()
        if self.loop is not None:
            async def cleanup() -> None:
                for runner in self.runners:
                    await runner.cleanup()
                if self.rest is not None:
                    await self.rest.close()

            asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            assert self.thread is not None
            self.thread.join(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, coro: Any) -> Any:
        """Run a coroutine to completion: on the services' loop once it runs, else on a fresh one."""
        if self.loop is not None:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)
        return run_async(coro)

    async def _setup_database(self) -> None:
        conn = await asyncpg.connect(self.data_dsn)
        try:
            await conn.execute((HERE / "schema.sql").read_text())
        finally:
            await conn.close()

    def authenticator_dsn(self) -> str:
        """The data DSN as PostgREST's login role (``authenticator``), not the superuser."""
        head, sep, tail = self.data_dsn.partition("@")
        scheme, _, _user = head.partition("://")
        return f"{scheme}://authenticator{sep}{tail}"

    async def _start_services(self) -> None:
        self.rest = Rest(self.keys, self.authenticator_dsn(), self.log)
        await self.rest.start()
        for name, app in (("rest", self.rest.app()), ("auth", self.auth.app()), ("realtime", self.realtime.app())):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)
            self.ports[name] = port

    def _start_deno(self) -> None:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir), "DENO_DIR": str(self.workdir / "deno"),
            "DENO_NO_UPDATE_CHECK": "1", "DENO_NO_PROMPT": "1", "NO_COLOR": "1",
            "PORT": str(port), "JWT_SECRET": JWT_SECRET, "JWKS_URL": self.url("auth") + "/.well-known/jwks.json",
        }
        log = open(self.workdir / "deno.log", "wb")
        self.deno = subprocess.Popen(
            [str(deno_binary()), "run", "--no-prompt", "--allow-net=127.0.0.1", "--allow-env",
             str(HERE / "functions" / "main.ts")],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.deno.poll() is not None:
                raise RuntimeError("deno exited:\n" + (self.workdir / "deno.log").read_text(errors="replace"))
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                self.ports["functions"] = port
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("deno did not start:\n" + (self.workdir / "deno.log").read_text(errors="replace"))

    # --- per test ---

    def reseed(self) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(self.data_dsn)
            try:
                async with conn.transaction():
                    await conn.execute("TRUNCATE public.todos RESTART IDENTITY")
                    await conn.executemany("INSERT INTO public.todos (title, owner, is_public) VALUES ($1, $2, $3)",
                                           SEED)
            finally:
                await conn.close()

        self.run(go())
        self.log.clear()
        self.realtime.joins.clear()
        self.realtime.token_updates.clear()
        self.realtime.refused.clear()
        self.realtime.received_tokens.clear()
        self.realtime.plaintext_keys = 0

    def gateway_env(self, gateway_dsn: str) -> dict[str, str]:
        return {
            "GATEWAY_DATABASE_URL": gateway_dsn,
            "GATEWAY_JWT__SECRET": JWT_SECRET,
            "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
            "GATEWAY_LEGACY__ANON_KEY": ANON_KEY,
            "GATEWAY_LEGACY__SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
            "GATEWAY_UPSTREAMS__REST": self.url("rest"),
            "GATEWAY_UPSTREAMS__AUTH": self.url("auth"),
            "GATEWAY_UPSTREAMS__REALTIME": self.url("realtime"),
            "GATEWAY_UPSTREAMS__FUNCTIONS": self.url("functions"),
            "GATEWAY_KEYS__LAST_USED_FLUSH_SECONDS": "0.5",
        }
