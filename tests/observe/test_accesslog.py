"""gateway.observe's access log as pure tests: one JSON object a line, its time one clock reading,
no key or JWT in any spelling, and nothing of a path that quoted one kept in memory after its line."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import pytest

from gateway import observe
from gateway.observe import LogFormat
from gateway.observe.accesslog import _HEADS, ACCESS


@dataclass
class Line:
    """A request as gateway.observe.record reads it (gateway.request.Request)."""

    path: str
    status: int = 200
    method: str = "GET"
    service: str = "rest"
    role: str = "none"
    key_id: str | None = None
    key_prefix: str | None = None
    id: bytes = b"01a24be5-8aab-74bb-a824-0b539e7457ae"
    sent_query: bytes = b""
    protocol: str = "HTTP/1.1"
    sent: int = 0
    started: float = field(default_factory=time.perf_counter)
    client_ip: str = "127.0.0.1"
    limited: str | None = None
    upstream: str | None = None
    referer: str | None = None
    user_agent: str | None = None


def lines(capsys) -> list[dict]:
    ACCESS.flush()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_an_access_line_is_one_json_object(capsys):
    lines(capsys)  # lines of earlier in-process tests
    observe.record(Line('/rest/v1/"quoted"\\/sb_secret_aaaaaaaa_bbbbbbbb', role="anon", key_id="id-1",
                        key_prefix="sb_publishable_abcdef"), LogFormat.JSON)
    [line] = lines(capsys)
    assert line["path"] == '/rest/v1/"quoted"\\/[redacted]'
    assert (line["status"], line["service"], line["role"], line["key_id"]) == (200, "rest", "anon", "id-1")
    assert line["request_id"] == "01a24be5-8aab-74bb-a824-0b539e7457ae"
    assert set(line) == {"time", "request_id", "method", "path", "status", "duration_ms", "service", "role",
                         "key_id", "key_prefix", "upstream"}


def test_any_path_makes_one_json_line(capsys):
    lines(capsys)
    path = '/rest/v1/a"b\\c\n\u2028é'
    observe.record(Line(path, 404, service="gateway"), LogFormat.JSON)
    [entry] = lines(capsys)
    assert entry["path"] == path and entry["key_id"] is None and entry["service"] == "gateway"


def test_the_time_of_a_line_is_one_clock_reading():
    """The seconds and the milliseconds come from the same reading, formatted once a second."""
    assert ACCESS.stamp(1700000000.9995) == "2023-11-14T22:13:20.999Z"
    assert ACCESS.stamp(1700000001.0004) == "2023-11-14T22:13:21.000Z"


def test_no_line_when_the_access_log_is_off(capsys):
    lines(capsys)
    observe.record(Line("/rest/v1/x"), LogFormat.OFF)
    assert lines(capsys) == []


def test_a_path_quoting_a_key_is_not_kept_in_memory_after_its_line(capsys):
    """The access line's parts are cached per path, except a path holding a key or a JWT."""
    secret = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"
    observe.record(Line(f"/rest/v1/{secret}", 401), LogFormat.JSON)
    observe.record(Line("/rest/v1/todos"), LogFormat.JSON)
    lines(capsys)
    cached = repr(list(_HEADS)) + repr(list(_HEADS.values()))
    assert secret not in cached and "/rest/v1/todos" in cached


@pytest.mark.parametrize("path", [
    "/rest/v1/eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl",
    "/rest/v1/%65yJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl",
    "/rest/v1/sb%5Fsecret%5FAbCdEfGhIjKlMnOpQrStUv_12345678",
])
def test_an_access_line_never_holds_a_jwt_or_a_key_in_any_spelling(path, capsys):
    observe.record(Line(path, 401), LogFormat.JSON)
    line = lines(capsys)[-1]
    assert line["path"] == "/rest/v1/[redacted]"
    cached = repr(list(_HEADS)) + repr(list(_HEADS.values()))
    assert path not in cached


def test_a_combined_line_of_a_request(capsys):
    lines(capsys)
    ACCESS.flush()
    capsys.readouterr()
    observe.record(Line("/rest/v1/t", sent_query=b"apikey=sb_x_y&a=1", sent=12, referer="https://a.example/",
                        user_agent="curl/8", upstream="rest"), LogFormat.COMBINED)
    ACCESS.flush()
    out = capsys.readouterr().out
    assert '"GET /rest/v1/t?apikey=[redacted]&a=1 HTTP/1.1" 200 12 "https://a.example/" "curl/8"' in out
    assert out.endswith('"key_id=- role=none upstream=rest request_id=01a24be5-8aab-74bb-a824-0b539e7457ae"\n')
