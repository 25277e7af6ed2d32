"""The API Keys page (docs/api-keys-page.md): plain files served by the admin listener at ``/``.

They are open, as they hold nothing but code: the page signs in with the admin token (kept in
the tab's ``sessionStorage``) and every call it makes goes through the token gate. Every answer
of the admin listener gets ``SecurityHeaders``: the page's a strict Content-Security-Policy (its
own scripts and styles only, no inline ones), all of them ``X-Frame-Options: DENY``, API answers
``Cache-Control: no-store``.
"""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routes import SERVICES

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# The page's ES modules (app.js imports the others) and its style sheet.
FILES = ("app.js", "api.js", "store.js", "session.js", "cards.js", "chart.js", "keydialog.js", "deletedialog.js",
         "legacy.js", "modal.js", "dom.js", "restrictions.js", "time.js", "limits.js", "usage.js", "forms.js",
         "legacyview.js", "rules.js", "quota.js", "network.js", "networkview.js", "app.css")
# path -> file name; the page at "/" (its assets relative to it, so a reverse proxy may mount it anywhere)
ASSETS = {"/": "index.html", **{f"/web/{name}": name for name in FILES}}
PATHS = frozenset(ASSETS)
REF_PLACEHOLDER = b"__PROJECT_REF__"
SERVICES_PLACEHOLDER = b"__SERVICES__"

_ALWAYS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_PAGE = [(b"content-security-policy", CSP.encode()), (b"cross-origin-opener-policy", b"same-origin"),
         (b"cross-origin-resource-policy", b"same-origin"), (b"cache-control", b"no-cache")]
_API = [(b"cache-control", b"no-store")]


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


_CONTENT = {path: _read(name) for path, name in ASSETS.items()}
# The services a key may be restricted to, as the gateway names them (gateway.routes).
_CONTENT["/"] = _CONTENT["/"].replace(SERVICES_PLACEHOLDER, ",".join(SERVICES).encode())

router = APIRouter(include_in_schema=False)


def _serve(path: str) -> None:
    media_type = _TYPES[ASSETS[path].rpartition(".")[2]]

    @router.get(path, response_class=Response, name=f"page:{path}")
    async def asset(request: Request) -> Response:
        body = _CONTENT[path]
        if path == "/":  # the project ref the page talks about, as an HTML attribute value
            ref = request.app.state.admin.settings.project_ref
            body = body.replace(REF_PLACEHOLDER, html.escape(ref, quote=True).encode())
        return Response(body, media_type=media_type)


for _path in ASSETS:
    _serve(_path)


class SecurityHeaders:
    """Adds the headers above to every answer of the admin listener (errors and 401s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _ALWAYS + (_PAGE if scope["path"] in PATHS else _API)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in extra if k not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
