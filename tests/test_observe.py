"""gateway.observe as pure tests: access-log lines hold no key or JWT, even one sent in a path."""

from __future__ import annotations

import json
import time

import pytest

from gateway import observe


@pytest.mark.parametrize(("path", "logged"), [
    ("/rest/v1/todos", "/rest/v1/todos"),
    ("/rest/v1/sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678", "/rest/v1/[redacted]"),
    ("/functions/v1/x/sb_publishable_abc-def_ghi/y", "/functions/v1/x/[redacted]/y"),
    ("/storage/v1/eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln", "/storage/v1/[redacted]"),
    ("/rest/v1/sb_", "/rest/v1/sb_"),
])
def test_keys_and_jwts_in_a_path_are_redacted(path, logged):
    assert observe.redact(path) == logged


def test_an_access_line_is_one_json_object(capsys):
    observe.record("GET", '/rest/v1/"quoted"\\/sb_secret_aaaaaaaa_bbbbbbbb', "rest", 200, time.perf_counter(),
                   "anon", "id-1", "sb_publishable_abcdef")
    observe.ACCESS.flush()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["path"] == '/rest/v1/"quoted"\\/[redacted]'
    assert (line["status"], line["service"], line["role"], line["key_id"]) == (200, "rest", "anon", "id-1")
