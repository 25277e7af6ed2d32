"""gateway.observe.redact as a table: keys and JWTs taken out of paths and queries in any spelling
the path parser accepts; a path with nothing to take out comes back as it was."""

from __future__ import annotations

import pytest

from gateway.observe.redact import redact


@pytest.mark.parametrize(("path", "logged"), [
    ("/rest/v1/todos", "/rest/v1/todos"),
    ("/rest/v1/sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678", "/rest/v1/[redacted]"),
    ("/functions/v1/x/sb_publishable_abc-def_ghi/y", "/functions/v1/x/[redacted]/y"),
    ("/storage/v1/eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln", "/storage/v1/[redacted]"),
    ("/rest/v1/sb_", "/rest/v1/sb_"),
    ("/rest/v1/x?token=sbp_0123456789abcdef0123456789abcdef01234567", "/rest/v1/x?token=[redacted]"),
    ("/rest/v1/%73bp_0123456789abcdef0123456789abcdef01234567", "/rest/v1/[redacted]"),
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
    assert redact(path) == logged


def test_a_path_with_nothing_to_redact_comes_back_as_the_same_object():
    for path in ("/rest/v1/todos", "/rest/v1/a%20b", "/rest/v1/sb_"):
        assert redact(path) is path
