"""The dashboard route and the combined access line on a real gateway, on both ways of serving:
every path no other route takes goes to Studio (here an echo upstream) behind HTTP basic auth,
Studio never gets the credentials, the API routes stay as they were, and each request leaves one
line that Vector's combined parser reads (tests/vector_nginx.py), with no key, JWT or password."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.helpers import assert_refused
from tests.upstreams import echo_header
from tests.vector_nginx import parse_nginx_combined

USER, PASSWORD = "supabase", "dashboard-password-for-the-wire-test"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def gw(gateways, serving, up):
    # The echo upstream stands in for Studio: it answers with what reached it.
    return gateways(**serving, GATEWAY_UPSTREAMS__STUDIO=up.urls["meta"], GATEWAY_DASHBOARD__USERNAME=USER,
                    GATEWAY_DASHBOARD__PASSWORD=PASSWORD, GATEWAY_LOG__FORMAT="combined")


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key("publishable")["api_key"]


def combined_lines(gw) -> list[dict]:
    time.sleep(0.5)  # the access log is written in batches
    lines = [line for line in (gw.workdir / "stdout.log").read_text().splitlines() if line.strip()]
    return [parse_nginx_combined(line) for line in lines]  # every line: NotParsed would fail here


@pytest.mark.parametrize("headers", [{}, basic(USER, "wrong"), basic(USER.upper(), PASSWORD), basic(USER, ""),
                                     {"Authorization": "Bearer x"}])
def test_the_dashboard_asks_for_its_password(gw, headers):
    for method in ("GET", "POST"):
        r = httpx.request(method, gw.url + "/project/default", headers=headers)
        assert_refused(r, 401, "UNAUTHORIZED_DASHBOARD")
        assert r.headers["www-authenticate"].startswith('Basic realm="')
        assert PASSWORD not in r.text


def test_with_it_studio_answers_and_never_sees_it(gw):
    for target, path, query in (("/", "/", ""), ("/project/default?ref=x", "/project/default", "ref=x"),
                                ("/_next/static/app.js", "/_next/static/app.js", "")):
        r = httpx.get(gw.url + target, headers={**basic(USER, PASSWORD), "Cookie": "s=1"})
        assert r.status_code == 200, r.text
        echo = r.json()
        assert (echo["path"], echo["query"]) == (path, query)
        assert echo_header(echo, "authorization") == []  # hidden, as Kong's hide_credentials
        assert echo_header(echo, "cookie") == ["s=1"]
        assert echo_header(echo, "x-forwarded-prefix") == ["/"]
        assert echo["verified"] == {}  # no minted JWT goes to Studio


def test_the_api_routes_need_no_dashboard_password(gw, key):
    assert httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 200
    assert httpx.get(gw.url + "/health").status_code == 200
    assert httpx.get(gw.url + "/auth/v1/verify?token=t").status_code == 200
    assert_refused(httpx.get(gw.url + "/rest/v1/todos"), 401, "UNAUTHORIZED_MISSING_API_KEY")
    # Closed whatever the password: no route, and not the dashboard's.
    assert_refused(httpx.get(gw.url + "/analytics/v1/api/endpoints/x", headers=basic(USER, PASSWORD)), 404,
                   "NOT_FOUND")
    assert_refused(httpx.get(gw.url + "/api/mcp", headers=basic(USER, PASSWORD)), 403, "FORBIDDEN_ROUTE")


def test_each_request_leaves_one_line_vector_parses(gw, key):
    start = len(combined_lines(gw))
    sent = [
        httpx.get(gw.url + f"/rest/v1/todos?select=id&apikey={key}"),
        httpx.get(gw.url + "/", headers=basic(USER, PASSWORD)),
        httpx.get(gw.url + "/", headers={**basic(USER, "wrong"), "Referer": f"http://x/?apikey={key}",
                                         "User-Agent": 'a "quoted" agent'}),
        httpx.head(gw.url + "/health"),
    ]
    lines = combined_lines(gw)[start:]
    assert len(lines) == len(sent)
    rest, studio, refused, health = lines
    assert rest["path"] == "/rest/v1/todos?select=id&apikey=[redacted]"
    assert rest["compression"].startswith("key_id=") and " role=anon upstream=rest request_id=" in rest["compression"]
    assert studio["compression"].startswith("key_id=- role=none upstream=studio request_id=")
    for line, r in zip(lines, sent):  # the id the answer carried, in its line
        assert line["compression"].endswith(f"request_id={r.headers['sb-request-id']}")
    assert refused["status"] == 401 and refused["referer"] == "http://x/?apikey=[redacted]"
    assert refused["agent"] == "a \\x22quoted\\x22 agent"
    for line, r in zip(lines, sent):
        assert line["method"] == r.request.method and line["protocol"] == "HTTP/1.1"
        assert line["status"] == r.status_code
        assert line["size"] == (0 if r.request.method == "HEAD" else len(r.content))
        assert line["client"] == "127.0.0.1"
    logs = gw.logs()
    assert key not in logs and PASSWORD not in logs
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in logs


def test_without_a_studio_upstream_other_paths_are_not_found(gateways, serving):
    plain = gateways(**serving, GATEWAY_DASHBOARD__USERNAME=USER, GATEWAY_DASHBOARD__PASSWORD=PASSWORD)
    for target in ("/", "/project/default"):
        assert_refused(httpx.get(plain.url + target, headers=basic(USER, PASSWORD)), 404, "NOT_FOUND")
    time.sleep(0.5)
    assert plain.access_log()[-1]["service"] == "gateway"  # JSON lines, the default
