"""The API Keys page sets and shows the fields of docs/protection.md in Chromium: allowed resources,
allowed methods (with the Read-only shortcut) and the quota with what is used and left; a bad
quota caught beside its input before any request, one the API refuses shown there too; each field
cleared again. Driven as tests/admin/test_web_browser.py drives the page (its Browser)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.admin.test_web_browser import Browser, api_key, card
from tests.helpers import ADMIN_TOKEN, scratch
from tests.upstreams import within


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_KEYS__QUOTA_FLUSH_SECONDS="0.2")


@pytest.fixture(scope="module")
def b(gw):
    workdir = scratch("gw-page-rules-")
    browser = Browser(workdir)
    print(f"\nscreenshots of the API Keys page: {browser.shots}")
    try:
        b = browser
        b("goto", url=gw.admin_url + "/")
        b("wait", selector="#sign-in")
        b("fill", selector="#token", value=ADMIN_TOKEN)
        b("click", selector='#sign-in-form button[type="submit"]')
        b("wait", selector=card("default"))
        yield browser
    finally:
        browser.close()
        shutil.rmtree(workdir / "profile", ignore_errors=True)


def get(gw, key: str, method: str = "GET", path: str = "/rest/v1/todos") -> int:
    return httpx.request(method, gw.url + path, headers={"apikey": key}, timeout=10).status_code


def test_set_resources_methods_and_a_quota(gw, b):
    b("click", selector='button.new-key[data-type="publishable"]')
    b("wait", selector="#key-dialog[open]")
    b("fill", selector="#key-name", value="dashboard_reader")
    b("fill", selector="#key-resources", value="todos\nrpc/search_*")
    b("click", selector='#rule-fields button:has-text("Read-only")')
    b("fill", selector="#key-quota", value="3 a day")
    b("click", selector="#key-submit")
    b("wait", selector='[data-field="quota"] .field-error')  # the page's own check, before any request
    assert "COUNT/day or COUNT/month" in b.text('[data-field="quota"] .field-error')
    assert not [k for k in gw.admin("GET", "/api-keys").json() if k["name"] == "dashboard_reader"]
    b("fill", selector="#key-resources", value="todos\nrpc/a/b")  # refused by the API, shown beside its input
    b("fill", selector="#key-quota", value="3/day")
    b("click", selector="#key-submit")
    b("wait", selector='[data-field="allowed_resources"] .field-error')
    b.shot("rules-field-error")
    b("fill", selector="#key-resources", value="todos\nrpc/search_*")
    b("click", selector="#key-submit")
    b("wait", selector="#created-dialog[open]")
    key = b("value", selector="#created-key")
    b("click", selector='#created-form button[type="submit"]')
    b("wait", selector=card("dashboard_reader"))
    [answer] = [k for k in gw.admin("GET", "/api-keys").json() if k["name"] == "dashboard_reader"]
    assert answer["allowed_resources"] == ["todos", "rpc/search_*"]
    assert answer["allowed_methods"] == ["GET", "HEAD"] and answer["quota"]["limit"] == "3/day"
    facts = b.text(f"{card('dashboard_reader')} .facts")
    assert "todos, rpc/search_*" in facts and "GET, HEAD" in facts and "0 of 3 today (3 left)" in facts
    b.shot("rules")
    # In force: its resources, read-only, then its quota spent; the card says so after a refresh.
    assert get(gw, key, path="/rest/v1/other") == 403 and get(gw, key, "POST") == 403
    assert [get(gw, key) for _ in range(3)] == [200, 200, 200] and get(gw, key) == 429
    within(3, lambda: api_key(gw, answer["id"])["quota"]["used"] == 3)
    b("click", selector="#refresh")
    b("waitText", selector=f"{card('dashboard_reader')} .badge", text="Quota spent")
    assert "3 of 3 today (0 left)" in b.text(f"{card('dashboard_reader')} .facts")
    b.shot("rules-quota-spent")


def test_edit_and_clear_them(gw, b):
    [answer] = [k for k in gw.admin("GET", "/api-keys").json() if k["name"] == "dashboard_reader"]
    b("click", selector=f'{card("dashboard_reader")} button:has-text("Edit")')
    b("wait", selector="#key-dialog[open]")
    assert b("value", selector="#key-resources") == "todos\nrpc/search_*"
    assert b("value", selector="#key-quota") == "3/day"
    assert b("eval", expression="[...document.querySelectorAll('#rule-fields input[type=checkbox]:checked')]"
                                ".map(i => i.value)") == ["GET", "HEAD"]
    b("fill", selector="#key-quota", value="10/month")  # raised: open again at once
    b("click", selector="#key-submit")
    b("wait", selector="#key-dialog", state="hidden")
    within(5, lambda: api_key(gw, answer["id"])["quota"]["limit"] == "10/month")
    b("waitText", selector=f"{card('dashboard_reader')} .facts", text="this month")
    b("click", selector=f'{card("dashboard_reader")} button:has-text("Edit")')
    b("fill", selector="#key-resources", value="")
    b("click", selector='#rule-fields input[value="GET"]')  # ticked: unticked
    b("click", selector='#rule-fields input[value="HEAD"]')
    b("fill", selector="#key-quota", value="")
    b("click", selector="#key-submit")
    b("wait", selector="#key-dialog", state="hidden")
    within(5, lambda: {k: api_key(gw, answer["id"])[k] for k in ("allowed_resources", "allowed_methods", "quota")}
           == {"allowed_resources": [], "allowed_methods": [], "quota": None})
    b("waitText", selector=f"{card('dashboard_reader')} .facts", text="None")
    shown = dict(b("eval", expression=f"[...document.querySelectorAll('{card('dashboard_reader')} .facts div')]"
                                      ".map(d => [d.querySelector('dt').innerText, d.querySelector('dd').innerText])"))
    assert {k.lower(): v for k, v in shown.items() if k.lower() in ("allowed resources", "allowed methods", "quota")} \
        == {"allowed resources": "All", "allowed methods": "All", "quota": "None"}
    assert b("count", selector=f"{card('dashboard_reader')} .badge") == 0
    b.shot("rules-cleared")
