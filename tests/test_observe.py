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
    # Percent-encoding is looked through: the path is then shown decoded, the secret taken out.
    ("/storage/v1/x%2Fy/sb%5Fsecret%5FAbCdEfGhIjKlMnOpQrStUv_12345678", "/storage/v1/x/y/[redacted]"),
    ("/storage/v1/%2e%2e/sb%5Fsecret%5FAbCdEfGhIjKlMnOpQrStUv_12345678", "/storage/v1/../[redacted]"),
    ("/storage/v1/%00/sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678", "/storage/v1/\x00/[redacted]"),
    ("/rest/v1/%65yJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln", "/rest/v1/[redacted]"),
    ("/rest/v1/%73%62%5F%70ublishable%5Fabc-def_ghi", "/rest/v1/[redacted]"),
    ("/rest/v1/%2573%2562%255Fsecret%255Fabc_def", "/rest/v1/[redacted]"),  # encoded twice
    ("/rest/v1/%25252573b_secret_x_y", "/rest/v1/[redacted]"),  # a literal sb_ behind escapes
    ("/rest/v1/a%20b?x=%41", "/rest/v1/a%20b?x=%41"),  # nothing to take out: as sent
    ("/rest/v1/apikey=sb_publishable_abc_def&x=1", "/rest/v1/apikey=[redacted]&x=1"),
])
def test_keys_and_jwts_in_a_path_are_redacted(path, logged):
    assert observe.redact(path) == logged


def test_a_path_with_nothing_to_redact_comes_back_as_the_same_object():
    for path in ("/rest/v1/todos", "/rest/v1/a%20b", "/rest/v1/sb_"):
        assert observe.redact(path) is path


def test_an_access_line_is_one_json_object(capsys):
    observe.record("GET", '/rest/v1/"quoted"\\/sb_secret_aaaaaaaa_bbbbbbbb', "rest", 200, time.perf_counter(),
                   "anon", "id-1", "sb_publishable_abcdef")
    observe.ACCESS.flush()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["path"] == '/rest/v1/"quoted"\\/[redacted]'
    assert (line["status"], line["service"], line["role"], line["key_id"]) == (200, "rest", "anon", "id-1")


def test_a_path_quoting_a_key_is_not_kept_in_memory_after_its_line(capsys):
    """The access line's parts are cached per path, except a path holding a key or a JWT."""
    secret = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"
    observe.record("GET", f"/rest/v1/{secret}", "rest", 401, time.perf_counter())
    observe.record("GET", "/rest/v1/todos", "rest", 200, time.perf_counter())
    observe.ACCESS.flush()
    capsys.readouterr()
    cached = repr(list(observe._HEADS)) + repr(list(observe._HEADS.values()))
    assert secret not in cached and "/rest/v1/todos" in cached


@pytest.mark.parametrize("path", [
    "/rest/v1/eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl",
    "/rest/v1/%65yJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl",
    "/rest/v1/sb%5Fsecret%5FAbCdEfGhIjKlMnOpQrStUv_12345678",
])
def test_an_access_line_never_holds_a_jwt_or_a_key_in_any_spelling(path, capsys):
    observe.record("GET", path, "rest", 401, time.perf_counter())
    observe.ACCESS.flush()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["path"] == "/rest/v1/[redacted]"
    cached = repr(list(observe._HEADS)) + repr(list(observe._HEADS.values()))
    assert path not in cached
