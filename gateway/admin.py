"""The admin listener: key management with the Supabase Management API's paths and shapes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from gateway import apikeys, observe
from gateway.config import Settings
from gateway.db import UNAVAILABLE
from gateway.keyring import KeyRing
from gateway.store import (MAX_TEXT, InvalidInput, NotFound, Store, check_template, key_json,
                           storable_text)

LEGACY_NAMES = ("anon", "service_role")
# Served without the admin token: the health check and the API's own description (no secrets).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class AdminError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


# The same rules as the store's, stated so that the OpenAPI document tells them.
_NO_NUL = "^[^\\u0000]*$"
Name = Annotated[str, StringConstraints(min_length=4, max_length=64, pattern=f"^{apikeys.NAME_RE.pattern}$")]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(lambda v: storable_text("text", v)),
                 Field(json_schema_extra={"pattern": _NO_NUL})]
Template = Annotated[dict[str, Any], AfterValidator(check_template), WithJsonSchema({
    "type": "object", "required": ["role"], "additionalProperties": True,
    "properties": {"role": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_$-]{0,62}$"}},
    "description": "Claims of the JWTs minted for this secret key: a 'role', no iss/ref/iat/exp/nbf, "
                   "at most 4 KiB and 16 levels deep.",
})]
_NOT_NULL = {"json_schema_extra": lambda schema: schema.pop("default", None)}  # absent is fine, null is not


class CreateApiKey(BaseModel):
    # Publishable keys always act as anon: a template only on secret keys.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"type": {"const": "publishable"}}, "required": ["type"]},
        "then": {"properties": {"secret_jwt_template": {"type": "null"}}},
    })
    type: Literal["publishable", "secret"]
    name: Name
    description: Text | None = None
    secret_jwt_template: Template | None = None


class UpdateApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(None, **_NOT_NULL)  # type: ignore[assignment]
    description: Text | None = None
    secret_jwt_template: Template = Field(None, **_NOT_NULL)  # type: ignore[assignment]


class ErrorBody(BaseModel):
    message: str
    field: str | None = None


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {400: "Invalid body or parameter (`field` names it)", 401: "Missing or invalid admin token",
            404: "Unknown project ref or key id", 503: "Database unavailable"}
    return {status: {"model": ErrorBody, "description": what[status]} for status in statuses}


BEARER = HTTPBearer(auto_error=False, description="The admin token (admin.token, or the one generated on first start)")


@dataclass
class AdminContext:
    settings: Settings
    ring: KeyRing
    configured_hash: str | None  # hash of admin.token; None: the generated one's, in the database


def require_token(request: Request, _documented: Any = Security(BEARER)) -> str:
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


def allowed_methods(request: Request) -> str:
    """Every method of the path the request matched (Starlette's 405 names one route's only,
    and GET, PATCH and DELETE of a key are three routes)."""
    routes = [r for r in request.app.router.routes if isinstance(r, Route) and r.methods]
    first = next((r for r in routes if r.matches(request.scope)[0] != Match.NONE), None)
    methods = set().union(*(r.methods or () for r in routes if first is not None and r.path == first.path))
    return ", ".join(sorted(methods))


def _safe_field(loc: list[str]) -> str:
    """The field a validation error names, as we can echo it (an unknown key may hold anything)."""
    field = ".".join(loc) or "body"
    return field[:64].encode("utf-8", "replace").decode("utf-8")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the 422 it adds to every operation: bad input answers 400."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in doc["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            doc.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema


def create_admin_app(settings: Settings, store: Store, ring: KeyRing) -> FastAPI:
    app = FastAPI(
        title="Supabase API gateway: admin API",
        version="1",
        description="API keys of a self-hosted Supabase project, with the Management API's paths and shapes. "
        "Every endpoint but /health needs `Authorization: Bearer <admin token>`.",
    )
    configured = settings.admin.token
    app.state.ctx = AdminContext(settings, ring, apikeys.hash_key(configured.get_secret_value()) if configured else None)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
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
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        body: dict[str, Any] = {"message": str(e.detail)}
        headers = dict(e.headers or {})
        if e.status_code == 400:  # FastAPI could not read the body (e.g. JSON nested too deep to parse)
            body["field"] = "body"
        if e.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(body, status_code=e.status_code, headers=headers)

    @app.exception_handler(InvalidInput)
    async def _invalid(_req: Request, e: InvalidInput) -> JSONResponse:
        return JSONResponse({"message": str(e), "field": e.field}, status_code=400)

    async def _unavailable(_req: Request, _e: Exception) -> JSONResponse:
        # Nothing was written (every change is one transaction); the pool reconnects by itself.
        return JSONResponse({"message": "Database unavailable"}, status_code=503)

    for exc in UNAVAILABLE:
        app.add_exception_handler(exc, _unavailable)

    @app.exception_handler(NotFound)
    async def _not_found(_req: Request, _e: NotFound) -> JSONResponse:
        return JSONResponse({"message": "API key not found"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        # ("body", "name") -> "name"; ("body", 7) for a JSON syntax error at offset 7 -> "body"
        loc = [str(p) for p in first.get("loc", ()) if isinstance(p, str) and p not in ("body", "query", "path")]
        field = _safe_field(loc[:1])
        error = first.get("ctx", {}).get("error")
        if isinstance(error, InvalidInput):  # the store's own rule, applied while parsing
            msg = error.message
        elif first.get("type") == "extra_forbidden":
            msg = "unknown field"
        else:
            msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
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

    @app.get("/metrics", tags=["ops"], response_class=Response, responses={
        **_errors(401), 200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}})
    async def metrics(_actor: Actor) -> Response:
        return Response(observe.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/projects/{ref}/api-keys", tags=["api-keys"], responses=_errors(400, 401, 404, 503))
    async def list_keys(_actor: Actor, _ref: Ref, reveal: bool = False) -> list[dict[str, Any]]:
        rows = await store.list_keys()
        return await legacy_keys(reveal) + [key_json(r) for r in rows]

    @app.post("/v1/projects/{ref}/api-keys", tags=["api-keys"], status_code=201, responses=_errors(400, 401, 404, 503))
    async def create_key(body: CreateApiKey, actor: Actor, _ref: Ref) -> dict[str, Any]:
        row, api_key = await store.create_key(
            body.type, body.name, actor=actor, description=body.description, template=body.secret_jwt_template
        )
        return key_json(row, api_key)

    @app.get("/v1/projects/{ref}/api-keys/legacy", tags=["api-keys"], responses=_errors(401, 404, 503))
    async def get_legacy(_actor: Actor, _ref: Ref) -> dict[str, bool]:
        return {"enabled": (await store.legacy()).enabled}

    @app.put("/v1/projects/{ref}/api-keys/legacy", tags=["api-keys"], responses=_errors(400, 401, 404, 503))
    async def put_legacy(actor: Actor, _ref: Ref, enabled: Annotated[bool, Query()]) -> dict[str, bool]:
        state = await store.set_legacy(enabled, actor=actor)
        ring.legacy = state  # this instance at once; the others through NOTIFY
        return {"enabled": state.enabled}

    @app.get("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"], responses=_errors(400, 401, 404, 503))
    async def get_key(key_id: str, _actor: Actor, _ref: Ref, reveal: bool = False) -> dict[str, Any]:
        if key_id in LEGACY_NAMES:
            for k in await legacy_keys(reveal):
                if k["id"] == key_id:
                    return k
            raise NotFound(key_id)
        return key_json(await store.get_key(key_id))

    @app.patch("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"], responses=_errors(400, 401, 404, 503))
    async def update_key(key_id: str, body: UpdateApiKey, actor: Actor, _ref: Ref) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("name", "") is None:
            raise InvalidInput("name", "may not be null")
        return key_json(await store.update_key(key_id, changes, actor=actor))

    @app.delete("/v1/projects/{ref}/api-keys/{key_id}", tags=["api-keys"], responses=_errors(400, 401, 404, 503))
    async def delete_key(
        key_id: str, actor: Actor, _ref: Ref, was_compromised: bool = False,
        reason: Annotated[Text | None, Query()] = None,
    ) -> dict[str, Any]:
        row = await store.delete_key(key_id, actor=actor, was_compromised=was_compromised, reason=reason)
        ring.by_hash.pop(row["hash"], None)  # this instance at once; the others through NOTIFY
        return key_json(row)

    return app
