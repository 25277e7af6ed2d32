"""Fixtures of the compatibility suite: one stack (Postgres + services + Deno) and one gateway in
front of it for the whole session, keys made through the admin API, and fresh rows per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.compat.stack import Stack, ensure_node_modules
from tests.helpers import Gateway, create_database


@dataclass
class ApiKeys:
    publishable: str
    secret: str


@pytest.fixture(scope="session")
def stack(pg_server: str) -> Iterator[Stack]:
    ensure_node_modules()
    s = Stack(pg_server).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def gateway(stack: Stack, pg_server: str) -> Iterator[Gateway]:
    gw = Gateway(stack.gateway_env(create_database(pg_server))).start()
    stack.auth.issuer = gw.url + "/auth/v1"
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def keys(gateway: Gateway) -> ApiKeys:
    return ApiKeys(gateway.create_key("publishable", "compat_publishable")["api_key"],
                gateway.create_key("secret", "compat_secret")["api_key"])


@pytest.fixture(autouse=True)
def fresh_rows(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every compat test starts from the five seeded todos, legacy keys enabled, empty records;
    and after it, no service behind the gateway has seen an API key's plaintext (docs/requests.md)."""
    if "gateway" not in request.fixturenames:
        yield
        return
    stack: Stack = request.getfixturevalue("stack")
    gateway: Gateway = request.getfixturevalue("gateway")
    stack.reseed()
    r = gateway.admin("GET", "/api-keys/legacy")
    if r.status_code == 200 and not r.json().get("enabled", True):
        assert gateway.admin("PUT", "/api-keys/legacy", params={"enabled": "true"}).status_code == 200
    yield
    assert [e for e in stack.log if e.plaintext_key] == []
    assert stack.realtime.plaintext_keys == 0
