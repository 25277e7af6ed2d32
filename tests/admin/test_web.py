"""The API Keys page's files (docs/api-keys-page.md) as the admin listener serves them: open, under a
strict Content-Security-Policy, nothing else opened by them; the headers every admin answer
gets; and, read from the files themselves, no inline script or style and no HTML built from
strings. What the page does runs in a real browser: tests/admin/test_web_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import httpx
import pytest

from gateway.admin import web
from tests.helpers import ADMIN_TOKEN

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@pytest.fixture(scope="module")
def gw(gateways):
    return gateways(GATEWAY_PROJECT_REF="my-project")


def files() -> dict[str, str]:
    return {name: resources.files("gateway.admin.web").joinpath(name).read_text() for name in ("index.html", *web.FILES)}


@pytest.mark.parametrize("path,media_type", [("/", "text/html"), ("/web/app.css", "text/css"),
                                             *((f"/web/{name}", "text/javascript") for name in web.FILES
                                               if name.endswith(".js"))])
def test_the_page_is_open_under_a_strict_policy(gw, path, media_type):
    r = httpx.get(gw.admin_url + path)  # no token: the files hold no data
    assert r.status_code == 200
    assert r.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-cache"


def test_the_page_names_its_project(gw):
    body = httpx.get(gw.admin_url + "/").text
    assert '<meta name="gateway-project-ref" content="my-project">' in body
    assert '<meta name="gateway-services" content="rest,graphql,realtime,functions,auth,storage,meta">' in body
    assert web.REF_PLACEHOLDER.decode() not in body


@pytest.mark.parametrize("path", ["/index.html", "/web/", "/web/nothing.js", "/web/../admin.py", "/app.js",
                                  "/v1/projects/my-project/api-keys"])
def test_nothing_else_is_open(gw, path):
    r = httpx.get(gw.admin_url + path)
    assert r.status_code == 401
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_api_answers_are_never_cached(gw):
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in ("/v1/projects/my-project/api-keys", "/v1/projects/my-project/api-keys/legacy", "/metrics",
                 "/v1/projects/other/api-keys"):
        r = httpx.get(gw.admin_url + path, headers=auth)
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert "content-security-policy" not in r.headers  # /docs loads its own scripts; the API needs none
    assert httpx.get(gw.admin_url + "//web//app.js").headers["content-security-policy"] == CSP  # merged slashes


class Inline(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would refuse, and what a script would not want."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.found.append(f"<{tag} {sorted(names)}>")
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "input" and dict(attrs).get("id") == "token" and "name" in names:
            self.found.append("a named token input (a form submitted without the script would send it)")
        self._in = tag

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.found.append("inline script text")


def test_no_inline_script_or_style():
    parser = Inline()
    parser.feed(files()["index.html"])
    assert parser.found == []


def test_no_html_is_built_from_strings():
    for name, text in files().items():
        if name.endswith(".js"):
            for pattern in (r"\.innerHTML", r"\.outerHTML", r"insertAdjacentHTML", r"document\.write", r"\beval\(",
                            r"new Function", r"localStorage\.", r"document\.cookie", r"\.style\.", r"setAttribute\(\"style"):
                assert not re.search(pattern, text), (name, pattern)


def test_the_modules_are_served_and_used():
    """index.html loads app.js as an ES module; every module any of them imports is served (one
    missing would answer 401 and stop the page), and every one served is imported."""
    text = files()
    assert '<script type="module" src="web/app.js"></script>' in text["index.html"]
    served = {name for name in web.FILES if name.endswith(".js")}
    reached, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        reached.add(name)
        for imported in re.findall(r'^import[^;]*? from "\./([a-z]+\.js)";', text[name], re.M | re.S):
            assert imported in served, f"{name} imports {imported}, which web.FILES does not serve"
            if imported not in reached:
                todo.append(imported)
    assert reached == served


def test_every_file_is_short():
    """One concern a file, as the Python next to it (the page was one 555-line script)."""
    for name, text in files().items():
        assert len(text.splitlines()) < 350, name


def test_the_files_ship_in_the_package():
    from tests.helpers import REPO

    text = (REPO / "pyproject.toml").read_text()
    assert '"gateway.admin.web"' in text and '"gateway.admin.web" = ["*.html", "*.js", "*.css"]' in text
    shipped = {p.name for p in resources.files("gateway.admin.web").iterdir()}
    assert {"index.html", *web.FILES} <= shipped
