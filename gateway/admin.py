"""The admin listener: key management with the Supabase Management API's paths and shapes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import apikeys, observe
from gateway.config import Settings
from gateway.keyring import KeyRing
from gateway.store import InvalidInput, NotFound, Store, key_json

LEGACY_NAMES = ("anon", "service_role")
# Served without the admin token: the health check and the API's own description (no secrets).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class AdminError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class CreateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["publishable", "secret"]
    name: str
    description: str | None = None
    secret_jwt_template: dict[str, Any] | None = None


class UpdateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    secret_jwt_template: dict[str, Any] | None = None


@dataclass
class AdminContext:
    settings: Settings
    ring: KeyRing
    configured_hash: str | None  # hash of admin.token; None: the generated one's, in the database


def require_token(request: Request) -> str:
    """The caller's audit name, once its bearer token's hash matches (constant time)."""
    ctx: AdminContext = request.app.state.ctx
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = ctx.configured_hash or ctx.ring.admin_token_hash
    if scheme.lower() != "bearer" or not presented.strip() or expected is None:
        raise AdminError(401, "Missing or invalid admin token")
    if not hmac.compare_digest(apikeys.hash_key(presented.strip()), expected):
        raise AdminError(401, "Missing or invalid admin token")
    return f"admin-api@{request.client.host if request.client else 'unknown'}"


def project(request: Request, ref: str) -> str:
    if ref != request.app.state.ctx.settings.project_ref:
        raise AdminError(404, "Project not found")
    return ref


Actor = Annotated[str, Depends(require_token)]
Ref = Annotated[str, Depends(project)]


def create_admin_app(settings: Settings, store: Store, ring: KeyRing) -> FastAPI:
    app = FastAPI(
        title="Supabase API gateway: admin API",
        version="1",
        description="API keys of a self-hosted Supabase project, with the Management API's paths and shapes. "
        "Every endpoint but /health needs `Authorization: Bearer <admin token>`.",
    )
    configured = settings.admin.token
    app.state.ctx = AdminContext(settings, ring, apikeys.hash_key(configured.get_secret_value()) if configured else None)
    legacy_values = {"anon": settings.legacy.anon_key, "service_role": settings.legacy.service_role_key}

    @app.exception_handler(AdminError)
    async def _admin_error(_req: Request, e: AdminError) -> JSONResponse:
        body = {"message": e.message}
        if e.field:
            body["field"] = e.field
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(body, status_code=e.status, headers=headers)

    @app.middleware("http")
    async def _token_first(request: Request, call_next: Any) -> Response:
        """Refuse a missing or wrong token before anything else looks at the request (its body,
        its path): an unauthenticated caller learns nothing but 401."""
        if request.url.path not in OPEN_PATHS:
            try:
                require_token(request)
            except AdminError as e:
                return await _admin_error(request, e)
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"message": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(InvalidInput)
    async def _invalid(_req: Request, e: InvalidInput) -> JSONResponse:
        return JSONResponse({"message": str(e), "field": e.field}, status_code=400)

    @app.exception_handler(NotFound)
    async def _not_found(_req: Request, _e: NotFound) -> JSONResponse:
        return JSONResponse({"message": "API key not found"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        # ("body", "name") -> "name"; ("body", 7) for a JSON syntax error at offset 7 -> "body"
        loc = [str(p) for p in first.get("loc", ()) if isinstance(p, str) and p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        msg = "unknown field" if first.get("type") == "extra_forbidden" else first.get("msg", "invalid")
        return JSONResponse({"message": f"{field}: {msg}", "field": field}, status_code=400)

    async def legacy_keys(reveal: bool) -> list[dict[str, Any]]:
        if not ring.legacy.enabled:
            return []
        last_used = await store.get_setting("legacy_last_used") or {}
        out = []
        for name in LEGACY_NAMES:
            value = legacy_values[name]
            if value is None:
                continue
            shown = value.get_secret_value() if (reveal or name == "anon") else "eyJ" + apikeys.MASK_CHAR * 32
            out.append({"id": name, "type": "legacy", "prefix": None, "name": name,
                        "description": f"Legacy {name} API key", "hash": None, "secret_jwt_template": None,
                        "inserted_at": None, "updated_at": None, "last_used_at": last_used.get(name),
                        "api_key": shown})
        return out

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics(_actor: Actor) -> Response:
        return Response(observe.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/projects/{ref}/api-keys", tags=["api-keys"])
    async def list_keys(_actor: Actor, _ref: Ref, reveal: bool = False) -> list[dict[str, Any]]:
        rows = await store.list_keys()
        return await legacy_keys(reveal) + [key_json(r) for r in rows]

    @app.post("/v1/projects/{ref}/api-keys", tags=["api-keys"], status_code=201)
    async def create_key(body: CreateApiKey, actor: Actor, _ref: Ref) -> dict[str, Any]:
        row, api_key = await store.create_key(
            body.type, body.name, actor=actor, description=body.description, template=body.secret_jwt_template
        )
        return key_json(row, api_key)

    @app.get("/v1/projects/{ref}/api-keys/legacy", tags=["api-keys"])
    async def get_legacy(_actor: Actor, _ref: Ref) -> dict[str, bool]:
        return {"enabled": (await store.legacy()).enabled}

    @app.put("/v1/projects/{ref}/api-keys/legacy", tags=["api-keys"])
    async def put_legacy(actor: Actor, _ref: Ref, enabled: Annotated[bool, Query()]) -> dict[str, bool]:
        state = await store.set_legacy(enabled, actor=actor)
        ring.legacy = state  # this instance at once; the others through NOTIFY
        return {"enabled": state.enabled}

    @app.get("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"])
    async def get_key(key_id: str, _actor: Actor, _ref: Ref, reveal: bool = False) -> dict[str, Any]:
        if key_id in LEGACY_NAMES:
            for k in await legacy_keys(reveal):
                if k["id"] == key_id:
                    return k
            raise NotFound(key_id)
        return key_json(await store.get_key(key_id))

    @app.patch("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"])
    async def update_key(key_id: str, body: UpdateApiKey, actor: Actor, _ref: Ref) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("name", "") is None:
            raise InvalidInput("name", "may not be null")
        return key_json(await store.update_key(key_id, changes, actor=actor))

    @app.delete("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"])
    async def delete_key(
        key_id: str, actor: Actor, _ref: Ref, was_compromised: bool = False, reason: str | None = None
    ) -> dict[str, Any]:
        row = await store.delete_key(key_id, actor=actor, was_compromised=was_compromised, reason=reason)
        ring.by_hash.pop(row["hash"], None)  # this instance at once; the others through NOTIFY
        return key_json(row)

    return app
