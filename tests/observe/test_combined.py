"""The combined access line (``log.format = "combined"``) as pure tests: Envoy's line, which the
self-hosted stack's Vector parses (tests/vector_nginx.py: its parser, rewritten), with keys, JWTs
and apikey values redacted and the key id, role, upstream and request id in a last field Vector
accepts."""

from __future__ import annotations

import calendar
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.observe.accesslog import combined_line, combined_quoted, combined_target, combined_time
from gateway.observe.redact import redact_query
from tests.vector_nginx import NotParsed, parse_nginx_combined

KEY = "sb_secret_AbCdEfGhIjKlMnOpQrStUv_12345678"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXRoYXQtaXMtbG9uZw"
NOW = calendar.timegm((2026, 12, 6, 14, 27, 24)) + 0.75


@pytest.mark.parametrize(("query", "shown"), [
    ("", ""),
    ("select=*", "select=*"),
    (f"select=id&apikey={KEY}", "select=id&apikey=[redacted]"),
    ("apikey=anything-at-all", "apikey=[redacted]"),  # the value is a key, whatever it looks like
    ("%61pikey=x&APIKEY=y&api+key=z", "%61pikey=[redacted]&APIKEY=[redacted]&api+key=z"),
    ("apikey=&x=1", "apikey=&x=1"),
    (f"token={JWT}&vsn=1.0.0", "token=[redacted]&vsn=1.0.0"),
    (f"x=%73b%5Fsecret%5F{KEY[10:]}", "x=[redacted]"),  # percent-encoding looked through
])
def test_the_query_as_a_line_shows_it(query, shown):
    assert redact_query(query) == shown


@pytest.mark.parametrize(("path", "query", "target"), [
    ("/rest/v1/todos", "select=*", "/rest/v1/todos?select=*"),
    ("/rest/v1/todos", "", "/rest/v1/todos"),
    (f"/functions/v1/f/{KEY}", f"apikey={KEY}", "/functions/v1/f/[redacted]?apikey=[redacted]"),
    ("/p\xe4th", "", "/p%E4th"),  # a byte that is no printable ASCII: percent-encoded (one token)
    ('/a"b', "", "/a%22b"),
    ("/a\x00b", "q=\x85", "/a%00b?q=%85"),  # NEL would be white space to Vector's \S
])
def test_the_target_is_one_token_without_secrets(path, query, target):
    assert combined_target(path, query) == target


@pytest.mark.parametrize(("value", "quoted"), [
    (None, '"-"'),
    ("", '"-"'),
    ("curl/8.5.0", '"curl/8.5.0"'),
    ('a "quoted" \\ agent', '"a \\x22quoted\\x22 \\x5C agent"'),  # as nginx escapes
    ("ua \xe4\n", '"ua \\xE4\\x0A"'),
    (f"https://app.example/?apikey={KEY}#x", '"https://app.example/?apikey=[redacted]"'),  # to its end
    (f"https://app.example/{JWT}", '"https://app.example/[redacted]"'),
])
def test_quoted_fields(value, quoted):
    assert combined_quoted(value) == quoted


def test_the_time_is_what_vector_reads():
    assert combined_time(NOW) == "06/Dec/2026:14:27:24 +0000"


LINES = [
    # (arguments after client and now, the line after its time)
    (("GET", "/rest/v1/todos", "select=*", "HTTP/1.1", 200, 512, "http://localhost:3000/", "supabase-js/2.50",
      "0b7f3c9e-8a8f-4d7e-9a51-0c0f2a8f3e11", "anon", "rest"),
     '"GET /rest/v1/todos?select=* HTTP/1.1" 200 512 "http://localhost:3000/" "supabase-js/2.50" '
     '"key_id=0b7f3c9e-8a8f-4d7e-9a51-0c0f2a8f3e11 role=anon upstream=rest request_id=-"'),
    (("GET", "/rest/v1/", f"apikey={KEY}", "HTTP/1.1", 401, 83, None, None, None, "none", None),
     '"GET /rest/v1/?apikey=[redacted] HTTP/1.1" 401 83 "-" "-" "key_id=- role=none upstream=- request_id=-"'),
    (("WEBSOCKET", "/realtime/v1/websocket", "vsn=1.0.0", "HTTP/1.1", 101, 0, None, "node", "anon", "anon",
      "realtime"),
     '"GET /realtime/v1/websocket?vsn=1.0.0 HTTP/1.1" 101 0 "-" "node" "key_id=anon role=anon upstream=realtime request_id=-"'),
    (("M-SEARCH", "/", "", "HTTP/1.0", 404, 0, "", "", None, "none", None),
     '"M_SEARCH / HTTP/1.0" 404 0 "-" "-" "key_id=- role=none upstream=- request_id=-"'),
    (("GET", "/rest/v1/t", "", "HTTP/1.1", 200, 2, None, None, None, "none", "rest",
      b"01a24be5-8aab-74bb-a824-0b539e7457ae"),
     '"GET /rest/v1/t HTTP/1.1" 200 2 "-" "-" '
     '"key_id=- role=none upstream=rest request_id=01a24be5-8aab-74bb-a824-0b539e7457ae"'),
    (("GET", "/", "", "HTTP/1.1", 200, 10, None, "Mozilla/5.0", None, "none", "studio"),
     '"GET / HTTP/1.1" 200 10 "-" "Mozilla/5.0" "key_id=- role=none upstream=studio request_id=-"'),
]


@pytest.mark.parametrize(("args", "rest"), LINES)
def test_lines(args, rest):
    line = combined_line("172.18.0.1", NOW, *args)
    assert line == f"172.18.0.1 - - [06/Dec/2026:14:27:24 +0000] {rest}\n"


@pytest.mark.parametrize(("args", "rest"), LINES)
def test_vector_parses_every_line(args, rest):
    method, path, query, protocol, status, sent, referer, agent, key_id, role, upstream, *rid = args
    fields = parse_nginx_combined(combined_line("::ffff:10.0.0.1", NOW, *args).rstrip("\n"))
    assert fields["client"] == "::ffff:10.0.0.1" and "user" not in fields
    assert fields["timestamp"].timestamp() == int(NOW)
    assert (fields["status"], fields["size"], fields["protocol"]) == (status, sent, protocol)
    assert fields["method"] == ("GET" if method == "WEBSOCKET" else method.replace("-", "_"))
    assert fields["path"].startswith(path)
    assert fields.get("referer") == (referer or None) and fields.get("agent") == (agent or None)
    request_id = rid[0].decode() if rid else "-"
    assert fields["compression"] == f"key_id={key_id or '-'} role={role} upstream={upstream or '-'} request_id={request_id}"


def test_the_parser_refuses_what_vector_refuses():
    good = combined_line("1.2.3.4", NOW, *LINES[0][0]).rstrip("\n")
    for bad in (good.replace(" - - ", " "), good.replace('"GET ', '"GE T '), good.replace(" 200 ", " ok "),
                good.replace("+0000", "UTC"), good + ' "x" "y"'):
        with pytest.raises(NotParsed):
            parse_nginx_combined(bad)


texts = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=60)
secret_bits = st.sampled_from(["", KEY, JWT, "apikey=", "%61pikey=", KEY.replace("_", "%5F"), '"', "\\", " "])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(texts, secret_bits), max_size=6), st.lists(st.one_of(texts, secret_bits), max_size=6),
       st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.sampled_from(["GET", "POST", "M-SEARCH"]))
def test_any_request_makes_one_line_vector_parses_with_no_secret(path_bits, query_bits, referer, agent, method):
    path = "/" + "".join(path_bits)
    query = "".join(query_bits)
    line = combined_line("127.0.0.1", NOW, method, path, query, "HTTP/1.1", 200, 0, referer, agent, None, "none",
                         None)
    assert line.endswith("\n") and "\n" not in line[:-1]
    fields = parse_nginx_combined(line[:-1])
    assert fields["status"] == 200
    for secret in (KEY, JWT, KEY[10:], JWT.split(".")[2]):
        assert secret not in line
    assert all(c in string.printable for c in line)
