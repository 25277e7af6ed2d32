"""The admin listener: key management with the Supabase Management API's paths and shapes.

A module-level router; the admin token is checked once, by ``TokenGate``, before routing or
reading a body; dependencies read ``app.state``; the error answers are gateway.admin.errors.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin import web
from gateway.admin.errors import EXCEPTION_HANDLERS, JSON, AdminError, error_answer
from gateway.config import Settings
from gateway.keys import apikeys
from gateway.keys.answers import (
    LEGACY_NAMES,
    USAGE_HOURS,
    ApiKeyResponse,
    ErrorBody,
    LegacyApiKeysResponse,
    ProjectResponse,
    UsageResponse,
    key_json,
    legacy_json,
    project_json,
    usage_json,
)
from gateway.keys.ring import KeyRing
from gateway.keys.shapes import CreateApiKeyBody, Text, UpdateApiKeyBody
from gateway.keys.store import NotFound, Store
from gateway.observe.metrics import metrics_text

# Served without the admin token: the health check, the API's own description and the API Keys
# page's files (no secrets; the page asks for the token).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}) | web.PATHS
UNAUTHORIZED = "Missing or invalid admin token"
_SLASHES = re.compile(r"//+")


class MergeSlashes:
    """``//`` is ``/``: a client with a trailing slash in its base URL (``http://host:8001/``)
    asks for ``//v1/projects/...``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": _SLASHES.sub("/", scope["path"]),
                     "raw_path": _SLASHES.sub("/", scope.get("raw_path", b"").decode("latin-1")).encode("latin-1")}
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class AdminState:
    """What the routes need, as ``app.state.admin``."""

    settings: Settings
    store: Store
    ring: KeyRing
    configured_hash: str | None  # hash of admin.token; None: the generated one's, in the key ring
    legacy_tokens: dict[str, SecretStr | None]

    def legacy_answer(self, enabled: bool) -> LegacyApiKeysResponse:
        return LegacyApiKeysResponse(enabled=enabled, configured=[
            name for name in LEGACY_NAMES if self.legacy_tokens[name] is not None])


# --- the token, checked once --------------------------------------------------------------------


def token_actor(state: AdminState, scope: Scope) -> str | None:
    """The caller's audit name if its bearer token's hash matches (constant time), else None."""
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
    scheme, _, presented = header.partition(" ")
    expected = state.configured_hash or state.ring.switches.admin_token_hash
    if scheme.lower() != "bearer" or not presented.strip() or expected is None:
        return None
    if not hmac.compare_digest(apikeys.hash_key(presented.strip()), expected):
        return None
    client = scope.get("client")
    return f"admin-api@{client[0] if client else 'unknown'}"


class TokenGate:
    """Refuses a missing or wrong token before anything else looks at the request (its path,
    its body): an unauthenticated caller learns nothing but 401. Leaves the actor in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            actor = token_actor(scope["app"].state.admin, scope)
            if actor is None:
                await error_answer(401, UNAUTHORIZED)(scope, receive, send)
                return
            scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, send)


BEARER = HTTPBearer(auto_error=False, description="The admin token (admin.token, or the one generated on first start)")


def admin_state(request: Request) -> AdminState:
    return request.app.state.admin


def actor(request: Request, _documented: Any = Security(BEARER)) -> str:
    """Who acts, for the audit log (TokenGate checked the token; this declares the scheme)."""
    return request.state.actor


def project(ref: str, state: Annotated[AdminState, Depends(admin_state)]) -> str:
    if ref != state.settings.project_ref:
        raise AdminError(404, "Project not found")
    return ref


State = Annotated[AdminState, Depends(admin_state)]
Actor = Annotated[str, Depends(actor)]


# --- routes ---------------------------------------------------------------------------------------


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {400: "Invalid body or parameter (`field` names it)", 401: UNAUTHORIZED,
            404: "Unknown project ref or key id", 503: "Database unavailable"}
    return {status: {"model": ErrorBody, "description": what[status]} for status in statuses}


ops = APIRouter(tags=["ops"])
keys = APIRouter(prefix="/v1/projects/{ref}", tags=["api-keys"], dependencies=[Depends(actor), Depends(project)],
                 responses=_errors(401, 404, 503))
WITH_INPUT = _errors(400)


@ops.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/metrics", dependencies=[Depends(actor)], response_class=Response, responses={
    **_errors(401), 200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}})
async def prometheus_metrics() -> Response:
    return Response(metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def legacy_keys(state: AdminState, reveal: bool) -> list[dict[str, Any]]:
    """The configured legacy keys, while enabled (as the Management API lists them)."""
    if not state.ring.switches.legacy.enabled:
        return []
    last_used = await state.store.get_setting("legacy_last_used") or {}
    return [legacy_json(name, token.get_secret_value(), reveal=reveal, last_used=last_used.get(name))
            for name in LEGACY_NAMES if (token := state.legacy_tokens[name]) is not None]


@keys.get("", response_model=ProjectResponse)
async def get_project(ref: str, state: State) -> dict[str, Any]:
    version, created_at = await state.store.project_facts()
    host = urlsplit(state.store.dsn).hostname or "localhost"  # never the DSN itself: it may hold a password
    return project_json(ref, host, version, created_at)


@keys.get("/api-keys", response_model=list[ApiKeyResponse], responses=WITH_INPUT)
async def list_keys(state: State, reveal: bool = False) -> list[dict[str, Any]]:
    rows = await state.store.list_keys()
    return await legacy_keys(state, reveal) + [key_json(r) for r in rows]


@keys.post("/api-keys", status_code=201, response_model=ApiKeyResponse, responses=WITH_INPUT)
async def create_key(body: CreateApiKeyBody, state: State, who: Actor) -> dict[str, Any]:
    row, api_key = await state.store.create_key(body, actor=who)
    return key_json(row, api_key)


@keys.get("/api-keys/legacy")
async def get_legacy(state: State) -> LegacyApiKeysResponse:
    return state.legacy_answer((await state.store.legacy()).enabled)


@keys.put("/api-keys/legacy", responses=WITH_INPUT)
async def put_legacy(state: State, who: Actor, enabled: Annotated[bool, Query()]) -> LegacyApiKeysResponse:
    legacy = await state.store.set_legacy(enabled, actor=who)
    state.ring.set_legacy(legacy)  # this instance at once; the others through NOTIFY
    return state.legacy_answer(legacy.enabled)


@keys.get("/api-keys/{key_id}", response_model=ApiKeyResponse, responses=WITH_INPUT)
async def get_key(key_id: str, state: State, reveal: bool = False) -> dict[str, Any]:
    if key_id in LEGACY_NAMES:
        for k in await legacy_keys(state, reveal):
            if k["id"] == key_id:
                return k
        raise NotFound(key_id)
    return key_json(await state.store.get_key(key_id))


@keys.get("/api-keys/{key_id}/usage", response_model=UsageResponse)
async def key_usage(key_id: Annotated[str, Path(examples=["anon"])], state: State) -> dict[str, Any]:
    """Requests per hour over the last 7 days; legacy keys too, enabled or not, when configured."""
    if key_id in LEGACY_NAMES:
        if state.legacy_tokens[key_id] is None:
            raise NotFound(key_id)
        last_used = (await state.store.get_setting("legacy_last_used") or {}).get(key_id)
    else:
        row = await state.store.get_key(key_id)
        key_id, last_used = str(row["id"]), key_json(row)["last_used_at"]
    now_hour = int(time.time() // 3600)
    return usage_json(key_id, await state.store.usage(key_id, now_hour - USAGE_HOURS + 1), now_hour, last_used)


@keys.patch("/api-keys/{key_id}", response_model=ApiKeyResponse, responses=WITH_INPUT)
async def update_key(key_id: str, body: UpdateApiKeyBody, state: State, who: Actor) -> dict[str, Any]:
    row = await state.store.update_key(key_id, body, actor=who)
    state.ring.announce(row["hash"], deleted=False)  # this instance at once; the others through NOTIFY
    return key_json(row)


@keys.delete("/api-keys/{key_id}", response_model=ApiKeyResponse, responses=WITH_INPUT)
async def delete_key(key_id: str, state: State, who: Actor, was_compromised: bool = False,
                     reason: Annotated[Text | None, Query()] = None) -> dict[str, Any]:
    row = await state.store.delete_key(key_id, actor=who, was_compromised=was_compromised, reason=reason)
    state.ring.announce(row["hash"], deleted=True)  # this instance at once; the others through NOTIFY
    return key_json(row)


# --- the app --------------------------------------------------------------------------------------


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 it adds to every operation: bad input answers 400."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in doc["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema


def create_admin_app(settings: Settings, store: Store, ring: KeyRing) -> FastAPI:
    app = FastAPI(
        title="Supabase API gateway: admin API",
        version="1",
        description="API keys of a self-hosted Supabase project, with the Management API's paths and shapes. "
        "Every endpoint but /health needs `Authorization: Bearer <admin token>`.",
        exception_handlers=EXCEPTION_HANDLERS,
        default_response_class=JSON,
    )
    configured = settings.admin.token
    app.state.admin = AdminState(
        settings, store, ring, apikeys.hash_key(configured.get_secret_value()) if configured else None,
        {"anon": settings.legacy.anon_key, "service_role": settings.legacy.service_role_key},
    )
    app.include_router(ops)
    app.include_router(keys)
    from gateway.admin.protection import router as network  # it imports this module: only once it is whole
    app.include_router(network)
    app.include_router(web.router)
    app.add_middleware(TokenGate)
    app.add_middleware(web.SecurityHeaders)  # on every answer, 401s included
    app.add_middleware(MergeSlashes)  # outermost: the token gate sees the merged path
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
