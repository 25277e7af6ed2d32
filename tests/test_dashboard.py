"""The dashboard's HTTP basic auth (gateway.auth.DashboardLogin) as table tests: what opens
Studio, what is answered 401 with ``WWW-Authenticate``, and that nothing is forwarded of it."""

from __future__ import annotations

import base64

import pytest

from gateway import errors
from gateway.auth import DASHBOARD_GRANT, Credentials, DashboardLogin, basic_credentials

USER, PASSWORD = "supabase", "this_password_is_insecure_and_should_be_updated"


def basic(text: str, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(text.encode()).decode()}"


@pytest.mark.parametrize(("header", "pair"), [
    (basic("a:b"), b"a:b"),
    (basic("a:b:c"), b"a:b:c"),  # the password may hold ':'
    (basic("a:b", "basic"), b"a:b"),
    (basic("a:b", "BASIC") + "  ", b"a:b"),
    (basic("\u00e9:\u00fc"), "\u00e9:\u00fc".encode()),
    ("Basic !!!", None),
    ("Basic", None),
    ("Bearer " + base64.b64encode(b"a:b").decode(), None),
    ("", None),
    (None, None),
])
def test_basic_credentials(header, pair):
    assert basic_credentials(header) == pair


@pytest.mark.parametrize(("authorization", "count", "opens"), [
    (basic(f"{USER}:{PASSWORD}"), 1, True),
    (basic(f"{USER}:{PASSWORD}", "basic"), 1, True),
    (basic(f"{USER}:{PASSWORD}x"), 1, False),
    (basic(f"{USER}:"), 1, False),
    (basic(f"{USER.upper()}:{PASSWORD}"), 1, False),
    (basic(f":{PASSWORD}"), 1, False),
    (basic(f"{USER}:{PASSWORD}"), 2, False),  # two Authorization headers: which one? neither
    ("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", 1, False),
    ("Basic not-base64", 1, False),
    (None, 0, False),
])
def test_login(authorization, count, opens):
    creds = Credentials(authorization=authorization)
    creds.authorizations = count
    login = DashboardLogin(USER, PASSWORD)
    if opens:
        assert login.check(creds) is DASHBOARD_GRANT
        return
    with pytest.raises(errors.Refusal) as refused:
        login.check(creds)
    r = refused.value
    assert (r.status, r.code) == (401, "UNAUTHORIZED_DASHBOARD")
    assert dict(r.headers)[b"www-authenticate"].startswith(b'Basic realm="')
    assert PASSWORD.encode() not in r.body and USER.encode() not in r.body


@pytest.mark.parametrize(("username", "password"), [(None, None), (USER, None), (None, PASSWORD)])
def test_without_both_the_dashboard_is_open(username, password):
    assert DashboardLogin(username, password).check(Credentials()) is DASHBOARD_GRANT


def test_the_grant_forwards_nothing_and_drops_authorization():
    from gateway import routes
    from gateway.headers import upstream_headers
    from gateway.request import RequestInfo

    headers = [(b"authorization", basic(f"{USER}:{PASSWORD}").encode()), (b"cookie", b"a=1"), (b"apikey", b"x")]
    out = upstream_headers(headers, RequestInfo(headers), routes.DASHBOARD, DASHBOARD_GRANT, b"studio:3000",
                           b"10.0.0.1", False)
    names = [name for name, _ in out]
    assert b"authorization" not in names  # Studio never sees the dashboard's credentials
    assert (b"cookie", b"a=1") in out and (b"x-forwarded-prefix", b"/") in out
    assert DASHBOARD_GRANT.token is None and DASHBOARD_GRANT.entry is None
