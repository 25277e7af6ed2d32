"""docs/protection.md as supabase-js meets it: a read-only key limited to one table reads it, gets
the gateway's 403 for a write and another table, joins Realtime and hears broadcasts, and its own
broadcast (sent by realtime-js as a binary frame) is answered "error" and reaches no one."""

from __future__ import annotations

import uuid

import pytest

from tests.compat.node import run_js
from tests.compat.stack import ANON_ROWS, Stack
from tests.helpers import Gateway

pytestmark = pytest.mark.compat


def test_a_read_only_key_with_supabase_js(gateway: Gateway, stack: Stack) -> None:
    reader = gateway.create_key("publishable", allowed_methods=["GET", "HEAD"], allowed_resources=["todos"])
    writer = gateway.create_key("publishable")
    room = f"rules-{uuid.uuid4().hex[:8]}"
    out = run_js(gateway.url, "readonly", reader["api_key"], other_key=writer["api_key"], topic=room)
    assert out["select"]["error"] is None and set(out["select"]["ids"]) == ANON_ROWS
    assert out["write"]["status"] == 403
    assert out["write"]["error"]["message"] == "Method not allowed for this API key"
    assert out["joined"]["reader"]["status"] == "SUBSCRIBED" and out["joined"]["writer"]["status"] == "SUBSCRIBED"
    assert out["refused"] == "error"  # the gateway's reply to the push, as realtime-js reports it
    assert out["sent"] == "ok"
    assert out["heard"] == {"reader": [{"from": "writer"}], "writer": []}  # it listens; what it sent reached no one
    other = run_js(gateway.url, "origin", reader["api_key"], origin="https://app.example.com")
    assert other["select"]["status"] == 200  # todos: its one table
