"""No key or JWT reaches a log line in any spelling the path parser accepts, refused requests
included, on both ways of serving. Each case is named here literally."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote

import pytest

from tests.factories import hs256, random_part, user_claims
from tests.upstreams import raw_request


@pytest.fixture(scope="module")
def gw(gateways, serving):
    return gateways(**serving)


def encode_all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def spellings(key: str, jwt: str) -> list[tuple[str, int]]:
    """``(path, expected status)``: keys and JWTs in paths, refused or forwarded."""
    under = key.replace("_", "%5F")
    return [
        (f"/storage/v1/x%2Fy/{under}", 400),  # an encoded slash: refused, and logged
        (f"/storage/v1/%2e%2e/{under}", 400),  # an encoded dot segment
        (f"/storage/v1/a%00b/{key}", 400),  # a NUL
        (f"/storage/v1/x%2Fy/{encode_all(key)}", 400),  # every byte encoded
        (f"/storage/v1/x%2Fy/{quote(quote(under))}", 400),  # encoded twice
        (f"/rest/v1/x%2Fy/%65{jwt[1:]}", 400),  # a JWT with its first letter encoded
        (f"/functions/v1/f/{under}", 200),  # forwarded: the function gets it, the log does not
        (f"/functions/v1/f/{encode_all(jwt)}", 200),
        (f"/storage/v1/object/public/{key}", 200),
    ]


def test_no_spelling_of_a_key_or_jwt_reaches_the_access_log(gw):
    key = gw.create_key("secret")["api_key"]
    jwt = hs256(user_claims())
    for path, status in spellings(key, jwt):
        r = raw_request(gw.url, "GET", path)
        assert r.status == status, (path, r.status, r.body)
    time.sleep(0.5)  # the access log is written in batches
    logs = gw.logs()
    lines = [e for e in gw.access_log() if e["path"].endswith("[redacted]")]
    assert len(lines) == len(spellings(key, jwt))
    body = random_part(key)
    for text in (logs, unquote(unquote(unquote(logs)))):
        assert key not in text and body not in text
        assert jwt not in text and jwt.split(".")[2] not in text
