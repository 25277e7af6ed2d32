"""Protection as the real clients meet it (docs/protection.md and docs/routing.md): supabase-js in Node with an
Origin set through global.headers against a key restricted to origins, and realtime-js held on
a public connection past a short cap (closed, with the reason) or signed in (kept)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.compat.node import run_js
from tests.compat.stack import ALICE, ANON_ROWS, Stack
from tests.helpers import Gateway, create_database

pytestmark = pytest.mark.compat
CAP = 3


@pytest.fixture(scope="module")
def capped(stack: Stack, pg_server: str) -> Iterator[Gateway]:
    """A gateway of its own in front of the stack, with public Realtime connections capped at 3 s."""
    gw = Gateway({**stack.gateway_env(create_database(pg_server)),
                  "GATEWAY_REALTIME__MAX_KEY_ONLY_SECONDS": str(CAP)}).start()
    previous, stack.auth.issuer = stack.auth.issuer, gw.url + "/auth/v1"
    try:
        yield gw
    finally:
        stack.auth.issuer = previous
        gw.stop()


def test_supabase_js_with_an_origin_on_a_restricted_key(gateway: Gateway) -> None:
    key = gateway.create_key("publishable", allowed_origins=["https://app.example.com"])["api_key"]
    allowed = run_js(gateway.url, "origin", key, origin="https://app.example.com")
    assert allowed["select"]["error"] is None and set(allowed["select"]["ids"]) == ANON_ROWS
    refused = run_js(gateway.url, "origin", key, origin="https://app.example.com.evil.com")
    assert refused["select"]["status"] == 403
    assert refused["select"]["error"]["message"] == "Origin not allowed for this API key"


def test_a_public_realtime_connection_is_closed_at_the_cap(capped: Gateway) -> None:
    key = capped.create_key("publishable")["api_key"]
    out = run_js(capped.url, "held", key, topic=f"held-{uuid.uuid4().hex[:8]}", wait_ms=(CAP + 2) * 1000)
    assert out["joined"]["status"] == "SUBSCRIBED"
    assert out["closes"], out
    first = out["closes"][0]
    assert first["code"] == 1008 and "Public connection limit" in first["reason"]


def test_a_signed_in_realtime_connection_is_not_capped(capped: Gateway) -> None:
    key = capped.create_key("publishable")["api_key"]
    out = run_js(capped.url, "held", key, topic=f"held-{uuid.uuid4().hex[:8]}", wait_ms=(CAP + 2) * 1000,
                 email=ALICE.email, password=ALICE.password)
    assert out["joined"]["status"] == "SUBSCRIBED"
    assert out["closes"] == [] and out["connected_at_end"] is True
