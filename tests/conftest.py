"""Fixtures every suite shares: one real embedded PostgreSQL and one set of real upstream
servers per test session, a fresh database per test that asks for one, and real gateway
processes in front of them (``gateways`` starts more, with their own settings; ``gw`` is the
module's default one, ``pub``/``sec`` its keys, ``client`` an HTTP client to it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from gateway.keys.db import EmbeddedPostgres
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, Gateway, NodeUpstream, RedisServer, create_database, scratch


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of the ``postgres`` database on a real embedded server, stopped at the end."""
    server = EmbeddedPostgres(scratch("gw-pg-"))
    dsn = server.start()
    _run_sql(dsn, "ALTER SYSTEM SET fsync = off", "ALTER SYSTEM SET synchronous_commit = off",
             "ALTER SYSTEM SET full_page_writes = off", "SELECT pg_reload_conf()")
    yield dsn
    server.stop()


def _run_sql(dsn: str, *statements: str) -> None:
    """Throw-away test data: durability only slows the suite down."""
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def dsn(pg_server: str) -> str:
    """A fresh empty database for this test."""
    return create_database(pg_server)


@pytest.fixture
def gateway_env(dsn: str) -> dict[str, str]:
    """What a gateway under test runs with: its own database, known JWT secret and admin token."""
    return {
        "GATEWAY_DATABASE_URL": dsn,
        "GATEWAY_JWT__SECRET": JWT_SECRET,
        "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
        "GATEWAY_KEYS__LAST_USED_FLUSH_SECONDS": "0.5",
    }


@pytest.fixture(scope="session")
def up():
    """The session's upstream servers (tests.upstreams): they echo what they got and verify JWTs."""
    from tests.upstreams import get_upstreams

    return get_upstreams()


@pytest.fixture(scope="module")
def gateways(pg_server, up) -> Iterator[Callable[..., Gateway]]:
    """``gateways(workers=1, dsn=None, upstreams=up, **env)`` starts a real gateway in front of
    the upstreams, on its own database unless ``dsn`` is given; all stop when the module ends.
    ``env`` overrides proxy_env's variables (a ``None`` value removes one)."""
    from tests.upstreams import proxy_env, start_gateway

    started: list[Gateway] = []

    def start(workers: int = 1, dsn: str | None = None, upstreams=up, **env: str | None) -> Gateway:
        g = start_gateway(proxy_env(pg_server, upstreams, dsn=dsn, **env), workers=workers)
        started.append(g)
        return g

    yield start
    for g in reversed(started):
        g.stop()


@pytest.fixture(scope="module")
def gw(gateways) -> Gateway:
    """The module's gateway; a module that needs other settings defines its own ``gw``."""
    return gateways()


@pytest.fixture(scope="module")
def created() -> dict[str, str]:
    """Plaintexts of the keys the module made with ``pub``, ``sec`` (and its own), for leak checks."""
    return {}


@pytest.fixture(scope="module")
def pub(gw, created) -> str:
    created["pub"] = key = gw.create_key("publishable")["api_key"]
    return key


@pytest.fixture(scope="module")
def sec(gw, created) -> str:
    created["sec"] = key = gw.create_key("secret")["api_key"]
    return key


@pytest.fixture(scope="module")
def client(gw) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the Redis rate-limit store, shared by the session."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["fast_path", "asgi"])
def serving(request) -> dict[str, str]:
    """Both ways the public listener serves a request (the same decisions): its own fast path for
    bodiless requests, and the ASGI app for every request. Modules that take it run twice."""
    return {"GATEWAY_SERVER__FAST_PATH": "true" if request.param == "fast_path" else "false"}


@pytest.fixture
async def memory_proxy(up):
    """``(proxy, keys)``: the public ASGI app in this process, in front of the upstreams, its key
    ring in memory with one publishable and one secret key (``keys[type]``), no database."""
    from gateway.auth import Authenticator
    from gateway.config import Settings
    from gateway.keys import apikeys
    from gateway.keys.entries import KeyEntry, legacy_entries
    from gateway.keys.ring import KeyRing
    from gateway.keys.tokens import JwtVerifier, Minter
    from gateway.observe.accesslog import ACCESS
    from gateway.serve.asgi import Proxy
    from tests.factories import LEGACY_SERVICE_ROLE
    from tests.upstreams import JWT_SECRET

    class NoStore:
        async def lookup_hash(self, key_hash: str) -> None:
            return None

    ref = "supabase-self-hosted"
    settings = Settings(jwt={"secret": JWT_SECRET}, legacy={"service_role_key": LEGACY_SERVICE_ROLE},
                        key_checksum_ref=ref, upstreams=dict(up.urls))
    ring = KeyRing(NoStore(), settings)  # type: ignore[arg-type]
    ring._legacy_by_token = legacy_entries(settings)
    keys = {}
    for n, (key_type, role) in enumerate((("publishable", "anon"), ("secret", "service_role")), 1):
        keys[key_type] = key = apikeys.generate(key_type, ref)  # type: ignore[arg-type]
        ring.by_hash[apikeys.hash_key(key)] = KeyEntry(f"00000000-0000-0000-0000-00000000000{n}", key_type,
                                                        apikeys.display_prefix(key), role, {"role": role})
    auth = Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None), "default", ref)
    proxy = Proxy(settings, auth)
    await proxy.start()
    yield proxy, keys
    await proxy.close()
    ACCESS.flush()  # as a worker does when it stops: nothing left for a later test to read


@pytest.fixture(scope="session")
def node_upstream() -> Iterator[NodeUpstream]:
    """A Node ``http`` server as an upstream (tests/node_upstream.mjs): Node and Python servers
    differ on the wire, and a proxy must hold against both."""
    server = NodeUpstream().start()
    yield server
    server.stop()
