"""The API Keys page (docs/api-keys-page.md) in a real browser: Debian's headless Chromium driven by
playwright-core (tests/compat/browser.mjs), against a real ``gateway serve`` on the embedded
Postgres. The tests run in order on one page, as an admin would use it; each step leaves a
screenshot under the module's temporary directory (its path is printed)."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.factories import LEGACY_ANON, store_ban
from tests.helpers import ADMIN_TOKEN, scratch
from tests.upstreams import db_query, within

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
XSS = "<img src=x onerror=alert(1)>"


class Browser:
    """One Chromium page; ``b(op, **args)`` runs a command of browser.mjs and returns its value."""

    def __init__(self, workdir: Path) -> None:
        from tests.compat.node import node_command
        from tests.compat.stack import HERE, ensure_node_modules

        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"{CHROMIUM} is missing: scripts/test-deps installs Debian's chromium")
        ensure_node_modules()
        self.shots = workdir / "screenshots"
        self.shots.mkdir()
        self.log = workdir / "browser.log"
        self.step = 0
        self.proc = subprocess.Popen([*node_command(), str(HERE / "browser.mjs"), str(workdir / "profile")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"),
                                     text=True, cwd=HERE)

    def __call__(self, op: str, **args):
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        while True:
            if not select.select([self.proc.stdout], [], [], 60)[0]:
                raise AssertionError(f"the browser did not answer {op}:\n{self.log.read_text()[-3000:]}")
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the browser exited:\n{self.log.read_text()[-3000:]}")
            if line.startswith("{"):
                break
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"{op} {args}: {answer['error']}")
        return answer["value"]

    def shot(self, name: str, full: bool = True) -> Path:
        """The whole page, or (``full=False``) what the window shows: an open dialog as it is seen."""
        self.step += 1
        return Path(self("screenshot", path=str(self.shots / f"{self.step:02d}-{name}.png"), full=full))

    def text(self, selector: str) -> str:
        return self("text", selector=selector)

    def page_source(self) -> str:
        """Everything the page holds: its markup and the values of its inputs."""
        return self("eval", expression="document.documentElement.outerHTML + "
                                       "[...document.querySelectorAll('input, textarea')].map(i => i.value).join(' ')")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "close"}\n')
            self.proc.stdin.flush()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways()


@pytest.fixture(scope="module")
def b(gw):
    workdir = scratch("gw-page-")
    browser = Browser(workdir)
    print(f"\nscreenshots of the API Keys page: {browser.shots}")
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(workdir / "profile", ignore_errors=True)


@pytest.fixture(scope="module")
def made() -> dict:
    """What the steps create and later steps use."""
    return {}


def card(name: str) -> str:
    return f'li.key[data-name="{name}"]'


def api_key(gw, key_id: str) -> dict:
    r = gw.admin("GET", f"/api-keys/{key_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_wrong_token_is_refused(gw, b):
    answer = b("goto", url=gw.admin_url + "/")
    assert answer["status"] == 200
    assert answer["headers"]["content-security-policy"] == CSP
    assert answer["headers"]["x-frame-options"] == "DENY"
    b("wait", selector="#sign-in")
    b("fill", selector="#token", value="not-the-admin-token")
    b("press", selector="#token", key="Enter")  # the keyboard signs in
    b("waitText", selector="#sign-in-error", text="Wrong admin token")
    b.shot("wrong-token")
    assert b("visible", selector="#sign-in") and not b("visible", selector="#keys")
    assert b("eval", expression="sessionStorage.length") == 0


def test_sign_in(gw, b):
    b("fill", selector="#token", value=ADMIN_TOKEN)
    b("click", selector='#sign-in-form button[type="submit"]')
    b("wait", selector=card("default"))
    b.shot("signed-in")
    assert b.text("#publishable-title") == "Publishable keys" and b.text("#secret-title") == "Secret keys"
    assert b("count", selector=f"#publishable-list {card('default')}") == 1
    assert b("count", selector=f"#secret-list {card('default')}") == 1
    assert b("count", selector="#legacy-list li.key") == 2  # anon and service_role
    # The token in this tab's sessionStorage only: not in a URL, a cookie or localStorage.
    assert b("eval", expression="sessionStorage.getItem('gateway.admin_token')") == ADMIN_TOKEN
    assert b("eval", expression="[localStorage.length, document.cookie, location.href]") == [0, "", gw.admin_url + "/"]
    # A publishable key in full, with Copy, its display prefix and its times.
    publishable = next(k for k in gw.admin("GET", "/api-keys").json() if k["type"] == "publishable")
    row = f"#publishable-list {card('default')}"
    assert b("value", selector=f"{row} .copyable input") == publishable["api_key"]
    assert b.text(f"{row} .prefix") == publishable["prefix"]
    assert "Never used" in b.text(f"{row} .facts")
    created = b("attr", selector=f"{row} .facts time", name="title")
    assert publishable["inserted_at"] in created  # the exact time on hover


def test_create_a_secret_key_and_read_it_once(gw, b, made):
    b("click", selector='button.new-key[data-type="secret"]')
    b("wait", selector="#key-dialog[open]")
    assert b("visible", selector="#key-role")  # the JWT template's role, for secret keys
    b("fill", selector="#key-name", value="ci_worker")
    b("fill", selector="#key-description", value="Runs the nightly jobs")
    b("fill", selector="#limit-per-key", value="1000/m")
    b.shot("create-dialog")
    b("click", selector="#key-submit")
    b("wait", selector="#created-dialog[open]")
    key = b("value", selector="#created-key")
    assert key.startswith("sb_secret_")
    assert "you will not see it again" in b.text("#created-warning")
    b("click", selector="#created-copy")
    assert b("eval", expression="navigator.clipboard.readText()") == key
    b.shot("created-once")
    b("click", selector='#created-form button[type="submit"]')
    b("wait", selector="#created-dialog", state="hidden")
    b("wait", selector=card("ci_worker"))
    assert key not in b.page_source()  # gone from the page once the dialog closed
    [answer] = [k for k in gw.admin("GET", "/api-keys").json() if k["name"] == "ci_worker"]
    assert answer["description"] == "Runs the nightly jobs" and answer["limits"]["per_key"] == "1000/m"
    assert answer["secret_jwt_template"] == {"role": "service_role"}
    assert "1000/m per key" in b.text(card("ci_worker"))
    made.update(secret=key, secret_id=answer["id"])


def test_reload_shows_it_masked(gw, b, made):
    b("reload")
    b("wait", selector=card("ci_worker"))  # still signed in: the tab kept the token
    b.shot("reloaded-masked")
    shown = b.text(f"{card('ci_worker')} .masked")
    assert shown.startswith(api_key(gw, made["secret_id"])["prefix"]) and "•" in shown
    assert made["secret"] not in b.page_source()


def test_edit_a_description(gw, b, made):
    b("click", selector=f'{card("ci_worker")} button:has-text("Edit")')
    b("wait", selector="#key-dialog[open]")
    assert b("value", selector="#key-description") == "Runs the nightly jobs"
    assert b("value", selector="#limit-per-key") == "1000/m"
    b("fill", selector="#key-description", value="Runs the nightly jobs and the backups")
    b("fill", selector="#limit-per-key", value="")  # back to the configured default
    b.shot("edit-dialog")
    b("click", selector="#key-submit")
    b("wait", selector="#key-dialog", state="hidden")
    b("waitText", selector=f"{card('ci_worker')} .description", text="and the backups")
    answer = api_key(gw, made["secret_id"])
    assert answer["description"] == "Runs the nightly jobs and the backups"
    assert answer["limits"] == {"per_key": None, "per_ip": None}
    b.shot("edited")


def test_an_invalid_field_is_named_next_to_it(gw, b, made):
    b("click", selector=f'{card("ci_worker")} button:has-text("Edit")')
    b("fill", selector="#limit-per-ip", value="lots")
    asked = len(b("events")["requests"])
    b("click", selector="#key-submit")
    error = '[data-field="limits.per_ip"] .field-error'
    b("wait", selector=error)
    # The page's own check (limits.js), before any request, in the API's words, beside the input.
    assert len(b("events")["requests"]) == asked
    refused = gw.admin("PATCH", f"/api-keys/{made['secret_id']}", json={"limits": {"per_ip": "lots"}}).json()
    assert refused["field"] == "limits.per_ip" and refused["message"] == f"limits.per_ip: {b.text(error)}"
    assert b("attr", selector="#limit-per-ip", name="aria-invalid") == "true"
    assert b("attr", selector="#limit-per-ip", name="aria-describedby") == "error-limits-per_ip"
    assert b("visible", selector="#key-dialog[open]")
    b.shot("field-error")
    b("press", key="Escape")
    b("wait", selector="#key-dialog", state="hidden")
    assert api_key(gw, made["secret_id"])["limits"]["per_ip"] is None  # nothing written


def test_last_used_changes_after_a_request(gw, b, made):
    assert "Never used" in b.text(f"{card('ci_worker')} .facts")
    r = httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": made["secret"]})
    assert r.status_code == 200
    within(5, lambda: api_key(gw, made["secret_id"])["last_used_at"] is not None)
    b("click", selector="#refresh")
    b("waitText", selector=f"{card('ci_worker')} .facts", text="just now")
    title = b("attr", selector=f"{card('ci_worker')} .facts div:nth-child(2) time", name="title")
    assert api_key(gw, made["secret_id"])["last_used_at"] in title
    b("click", selector=f'{card("ci_worker")} button:has-text("Usage")')
    b("waitText", selector=f"{card('ci_worker')} .usage-summary", text="1 request in the last 7 days")
    assert b("count", selector=f"{card('ci_worker')} svg.chart rect.bar") == 7 * 24
    b.shot("last-used-and-usage")


def test_a_description_is_shown_as_text(gw, b):
    b("click", selector='button.new-key[data-type="publishable"]')
    b("fill", selector="#key-name", value="web_app")
    b("fill", selector="#key-description", value=XSS)
    b("click", selector="#key-submit")
    b("wait", selector="#created-dialog[open]")
    assert "not see it again" not in b.text("#created-dialog")  # publishable keys stay visible
    b("click", selector='#created-form button[type="submit"]')
    b("wait", selector=card("web_app"))
    assert b.text(f"{card('web_app')} .description") == XSS
    assert b("count", selector="img") == 0
    time.sleep(0.5)  # an onerror would fire about now
    assert b("events")["dialogs"] == []
    b.shot("description-as-text")


def test_delete_a_compromised_key(gw, b, made):
    b("click", selector=f'{card("ci_worker")} button:has-text("Delete")')
    b("wait", selector="#delete-dialog[open]")
    assert "was used" in b.text("#delete-recent")  # within the last 24 hours
    b("check", selector="#delete-compromised")
    b("fill", selector="#delete-reason", value="Printed in a CI log")
    b.shot("delete-dialog")
    b("click", selector='#delete-form button[type="submit"]')
    b("wait", selector=card("ci_worker"), state="detached")
    assert gw.admin("GET", f"/api-keys/{made['secret_id']}").status_code == 404
    assert httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": made["secret"]}).status_code == 401
    [audit] = db_query(gw.env["GATEWAY_DATABASE_URL"], "SELECT details FROM gateway.audit_log"
                       " WHERE action = 'api_key.delete' AND target = $1", made["secret_id"])
    details = json.loads(audit["details"])
    assert details["was_compromised"] is True and details["reason"] == "Printed in a CI log"
    b.shot("deleted")


def test_disable_and_enable_legacy_keys(gw, b):
    assert httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": LEGACY_ANON}).status_code == 200
    within(5, lambda: api_key(gw, "anon")["last_used_at"] is not None)
    b("click", selector="#refresh")
    b("waitText", selector=f"#legacy-list {card('anon')} .facts", text="just now")
    b("click", selector="#legacy-toggle")
    b("wait", selector="#legacy-dialog[open]")
    assert "anon last used just now" in b.text("#legacy-last-use")
    assert "service_role last used never" in b.text("#legacy-last-use")
    assert "anon was used in the last 24 hours" in b.text("#legacy-recent")
    b.shot("legacy-disable-dialog")
    b("click", selector='#legacy-form button[type="submit"]')
    b("waitText", selector="#legacy-toggle", text="Re-enable legacy API keys")
    b("waitText", selector=f"#legacy-list {card('anon')}", text="just now")  # their last use, while disabled
    assert b("count", selector="#legacy-list li.key.disabled") == 2 and "Never used" in b.text(card("service_role"))
    assert "Disabled" in b.text("#legacy-state")
    assert gw.admin("GET", "/api-keys/legacy").json() == {"enabled": False, "configured": ["anon", "service_role"]}
    within(2, lambda: httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": LEGACY_ANON}).status_code == 401)
    b.shot("legacy-disabled")
    b("click", selector="#legacy-toggle")
    b("waitText", selector="#legacy-toggle", text="Disable legacy API keys")
    assert gw.admin("GET", "/api-keys/legacy").json() == {"enabled": True, "configured": ["anon", "service_role"]}
    assert b("value", selector=f"#legacy-list {card('anon')} .copyable input") == LEGACY_ANON
    b.shot("legacy-enabled")


def test_keyboard_and_a_narrow_screen(gw, b):
    b("viewport", width=360, height=780)
    b("reload")
    b("wait", selector=card("web_app"))
    assert b("eval", expression="document.documentElement.scrollWidth") <= 360  # nothing wider than the screen
    b.shot("narrow")
    b("focus", selector='button.new-key[data-type="secret"]')
    b("press", key="Enter")
    b("wait", selector="#key-dialog[open]")
    assert b("eval", expression="document.activeElement.id") == "key-name"
    assert b("eval", expression="document.querySelector('#key-dialog').scrollWidth") <= 360
    b.shot("narrow-dialog", full=False)
    b("press", key="Escape")
    b("wait", selector="#key-dialog", state="hidden")
    assert b("eval", expression="document.activeElement.dataset.type") == "secret"  # focus came back
    b("viewport", width=1280, height=900)


def test_expiry_and_restrictions(gw, b):
    """Issue 11's fields, set and shown through the page (restrictions.js)."""
    assert all("allowed_ips" in k for k in gw.admin("GET", "/api-keys").json())
    b("reload")
    b("wait", selector=card("web_app"))
    b("click", selector='button.new-key[data-type="secret"]')
    b("fill", selector="#key-name", value="edge_worker")
    b("fill", selector="#key-expires", value="2031-01-02T03:04")
    b("fill", selector="#key-origins", value="https://app.example.com\nhttp://localhost:*")
    b("fill", selector="#key-ips", value="not-an-address")
    b("check", selector='#restriction-fields input[value="rest"]')
    b("check", selector='#restriction-fields input[value="storage"]')
    b("click", selector="#key-submit")
    b("wait", selector='[data-field="allowed_ips"] .field-error')  # the API's refusal, beside the input
    b.shot("restrictions-field-error")
    b("fill", selector="#key-ips", value="10.0.0.0/8")
    b("click", selector="#key-submit")
    b("wait", selector="#created-dialog[open]")
    key = b("value", selector="#created-key")
    b("click", selector='#created-form button[type="submit"]')
    b("wait", selector=card("edge_worker"))
    facts = b.text(f"{card('edge_worker')} .facts")
    assert "https://app.example.com, http://localhost:*" in facts and "10.0.0.0/8" in facts
    assert "rest, storage" in facts
    b.shot("restrictions")
    [answer] = [k for k in gw.admin("GET", "/api-keys").json() if k["name"] == "edge_worker"]
    assert answer["allowed_origins"] == ["https://app.example.com", "http://localhost:*"]
    assert answer["allowed_ips"] == ["10.0.0.0/8"] and answer["allowed_services"] == ["rest", "storage"]
    meant = b("eval", expression="new Date('2031-01-02T03:04').toISOString()")  # in the browser's time zone
    assert datetime.fromisoformat(answer["expires_at"]) == datetime.fromisoformat(meant.replace("Z", "+00:00"))
    r = httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": key})  # from 127.0.0.1, outside 10.0.0.0/8
    assert r.status_code == 403 and r.headers["sb-error-code"] == "FORBIDDEN_IP"
    # Edit: any IP, an expiry in the past; then no expiry.
    b("click", selector=f'{card("edge_worker")} button:has-text("Edit")')
    assert b("value", selector="#key-ips") == "10.0.0.0/8"
    b("fill", selector="#key-ips", value="")
    b("fill", selector="#key-expires", value="2020-01-01T00:00")
    b("click", selector="#key-submit")
    b("waitText", selector=f"{card('edge_worker')} .badge", text="Expired")
    answer = api_key(gw, answer["id"])
    assert answer["expired"] is True and answer["allowed_ips"] == []
    within(2, lambda: httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 401)
    b.shot("restrictions-expired")
    b("click", selector=f'{card("edge_worker")} button:has-text("Edit")')
    b("click", selector='#restriction-fields button:has-text("No expiry")')
    b("click", selector="#key-submit")
    b("wait", selector="#key-dialog", state="hidden")
    within(5, lambda: api_key(gw, answer["id"])["expires_at"] is None)
    within(2, lambda: httpx.get(gw.url + "/rest/v1/todos", headers={"apikey": key}).status_code == 200)


def test_dark_and_narrow(gw, b):
    """The same page in the dark color scheme, wide and 360 px, a chart and a dialog open."""
    b("colorScheme", scheme="dark")
    b("reload")
    b("wait", selector=card("web_app"))
    assert b("eval", expression="getComputedStyle(document.body).backgroundColor") == "rgb(18, 18, 18)"
    b("click", selector=f'#legacy-list {card("anon")} button:has-text("Usage")')  # used by an earlier test
    b("waitText", selector=f"#legacy-list {card('anon')} .usage-summary", text="1 request in the last 7 days")
    b.shot("dark")
    b("viewport", width=360, height=780)
    assert b("eval", expression="document.documentElement.scrollWidth") <= 360
    b.shot("dark-narrow")
    b("click", selector=f'{card("edge_worker")} button:has-text("Edit")')
    b("wait", selector="#key-dialog[open]")
    b.shot("dark-narrow-dialog", full=False)
    b("press", key="Escape")
    b("viewport", width=1280, height=900)
    b("colorScheme", scheme="light")


def test_network_allow_list_and_blocked_clients(gw, b):
    """docs/protection.md on the page (network.js): the blocks with when and why each started, lifted
    with a button; the allow list shown, set, refused beside its input, cleared back to everyone."""
    store_ban(gw.env["GATEWAY_DATABASE_URL"], "203.0.113.9")
    store_ban(gw.env["GATEWAY_DATABASE_URL"], "2001:db8:1:2::/64", seconds=300,
              reason="12 refused requests (block_after 10/m); the last: UNAUTHORIZED_DASHBOARD")
    b("reload")
    block = 'li.block[data-address="203.0.113.9"]'
    b("wait", selector=block)
    assert b.text("#blocks-state").startswith("2 clients are blocked")
    text = b.text(block)
    assert "30 refused requests (block_after 30/m); the last: UNAUTHORIZED_INVALID_API_KEY" in text
    assert "Blocked" in text and "IPv4" in text
    assert "in 10 minutes" in b.text(f"{block} .facts") or "in 9 minutes" in b.text(f"{block} .facts")
    [started] = [x for x in gw.admin("POST", "/network-bans/retrieve").json()["bans"] if x["address"] == "203.0.113.9"]
    assert b("attr", selector=f"{block} .facts div:first-child time", name="datetime") == started["started_at"]
    assert "IPv6 /64" in b.text('li.block[data-address="2001:db8:1:2::/64"]')
    # The allow list: everyone, as the default.
    assert b.text("#network-allow-state") == "Everyone may call the public API (0.0.0.0/0 and ::/0)."
    assert b("value", selector="#network-cidrs") == "0.0.0.0/0\n::/0"
    b.shot("network")
    # Refused beside the input: by the API (naming the entry, never echoing it) and, for nothing at all, by the page.
    b("fill", selector="#network-cidrs", value="127.0.0.0/8\nnot-a-cidr")
    b("click", selector='#network-form button[type="submit"]')
    b("waitText", selector='[data-field="dbAllowedCidrs"] .field-error', text="entry 1 is not an IP address or CIDR")
    assert b("attr", selector="#network-cidrs", name="aria-invalid") == "true"
    b.shot("network-field-error")
    b("fill", selector="#network-cidrs", value=" ")
    b("click", selector='#network-form button[type="submit"]')
    b("waitText", selector='[data-field="dbAllowedCidrs"] .field-error', text="Give at least one CIDR")
    assert gw.admin("GET", "/network-restrictions").json()["config"] == {"dbAllowedCidrs": ["0.0.0.0/0"],
                                                                         "dbAllowedCidrsV6": ["::/0"]}
    # Set: only 127.0.0.4 may call the public API; this test's own requests come from 127.0.0.1.
    b("fill", selector="#network-cidrs", value="127.0.0.4/32\n2001:db8::/32")
    b("click", selector='#network-form button[type="submit"]')
    b("waitText", selector="#network-allow-state", text="Only 2 networks")
    assert b("count", selector='[data-field="dbAllowedCidrs"] .field-error') == 0
    assert gw.admin("GET", "/network-restrictions").json()["config"] == {"dbAllowedCidrs": ["127.0.0.4/32"],
                                                                         "dbAllowedCidrsV6": ["2001:db8::/32"]}
    within(1, lambda: httpx.get(gw.url + "/rest/v1/todos").status_code == 403)
    b.shot("network-allow-list")
    # Cleared: everyone again.
    b("click", selector="#network-everyone")
    b("waitText", selector="#network-allow-state", text="Everyone may call")
    assert b("value", selector="#network-cidrs") == "0.0.0.0/0\n::/0"
    within(1, lambda: httpx.get(gw.url + "/rest/v1/todos").status_code == 401)
    # Lifted: gone from the page and from every instance.
    b("click", selector=f'{block} button:has-text("Lift block")')
    b("wait", selector=block, state="detached")
    b("waitText", selector="#status", text="Lifted the block on 203.0.113.9.")
    assert gw.admin("POST", "/network-bans/retrieve").json()["banned_ipv4_addresses"] == ["2001:db8:1:2::/64"]
    assert b.text("#blocks-state").startswith("One client is blocked")
    b.shot("network-lifted")


def test_sign_out(gw, b):
    b("click", selector="#sign-out")
    b("wait", selector="#sign-in")
    assert b("eval", expression="sessionStorage.length") == 0
    assert b("count", selector="li.key") == 0
    publishable = next(k for k in gw.admin("GET", "/api-keys").json() if k["type"] == "publishable")
    assert publishable["api_key"] not in b.page_source()
    b.shot("signed-out")


def test_the_page_kept_to_itself(gw, b):
    """Under its CSP the page raised no error and no dialog, and asked nothing of another origin."""
    events = b("events")
    assert events["dialogs"] == [] and events["errors"] == []
    # Chromium logs the answers refused on purpose (the wrong token's 401, the invalid field's 400); nothing else.
    assert [m for m in events["console"] if not re.fullmatch(
        r"error: Failed to load resource: the server responded with a status of 40[01] \(.*\)", m)] == []
    assert {url.split("/", 3)[2] for url in events["requests"] if not url.startswith("data:")} == \
        {gw.admin_url.split("/")[2]}


# --- a gateway without legacy keys ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare(gateways):
    """A gateway with no legacy.anon_key and no legacy.service_role_key."""
    return gateways(GATEWAY_LEGACY__ANON_KEY=None, GATEWAY_LEGACY__SERVICE_ROLE_KEY=None)


def test_without_legacy_keys_the_page_says_so(bare, b):
    """No usage asked of anon or service_role (which would be two 404s), no "Disabled" and no
    "Re-enable" for keys that do not exist, with the legacy switch on or off: one plain line."""
    assert bare.admin("GET", "/api-keys/legacy").json() == {"enabled": True, "configured": []}
    seen = {name: len(events) for name, events in b("events").items()}
    b("goto", url=bare.admin_url + "/")
    b("fill", selector="#token", value=ADMIN_TOKEN)
    b("press", selector="#token", key="Enter")
    b("wait", selector=card("default"))
    for enabled in ("true", "false"):
        if enabled == "false":
            assert bare.admin("PUT", "/api-keys/legacy", params={"enabled": "false"}).status_code == 200
            b("click", selector="#refresh")
            b("waitText", selector="#status", text="Updated")
        b("waitText", selector="#legacy-state", text="No legacy keys are configured.")
        section = b.text("#legacy")
        assert "Disabled" not in section and "Re-enable" not in section and "legacy.anon_key" in section
        assert not b("visible", selector="#legacy-toggle")
        assert b("count", selector="#legacy-list li") == 0
        b.shot(f"no-legacy-keys-{'enabled' if enabled == 'true' else 'disabled'}")
    events = {name: items[seen[name]:] for name, items in b("events").items()}
    assert events["console"] == [] and events["errors"] == [] and events["dialogs"] == []
    assert not [url for url in events["requests"] if "/anon" in url or "/service_role" in url]
    assert {url.split("/", 3)[2] for url in events["requests"] if not url.startswith("data:")} == \
        {bare.admin_url.split("/")[2]}
