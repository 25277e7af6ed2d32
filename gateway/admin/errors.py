"""The admin API's error answers, in one place: a JSON body with a ``message`` (and the
``field`` a 400 is about), the Management API's content type, ``WWW-Authenticate`` on a 401, an
``Allow`` that names every method of the path on a 405, and the exception each comes from."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from gateway.keys.checks import InvalidInput
from gateway.keys.db import UNAVAILABLE
from gateway.keys.shapes import first_error
from gateway.keys.store import NotFound


class JSON(JSONResponse):
    media_type = "application/json; charset=utf-8"  # as the Management API answers


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_answer(status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"message": message} if field is None else {"message": message, "field": field}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSON(body, status_code=status, headers=headers)


def allowed_methods(request: Request) -> str | None:
    """Every method of the path the request matched, as the OpenAPI document lists them
    (Starlette's 405 names one route's only, and GET, PATCH and DELETE of a key are three)."""
    table = getattr(request.app.state, "methods", None)
    if table is None:  # built once, from the document (the first template that matches wins, as in routing)
        table = [(compile_path(path)[0], ", ".join(sorted(m.upper() for m in ops)))
                 for path, ops in request.app.openapi()["paths"].items()]
        request.app.state.methods = table
    return next((methods for regex, methods in table if regex.match(request.url.path)), None)


async def _http_error(request: Request, e: Exception) -> Response:
    assert isinstance(e, StarletteHTTPException)
    headers = dict(e.headers or {})
    if e.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    # 400 here: FastAPI could not read the body (e.g. JSON nested too deep to parse)
    return error_answer(e.status_code, str(e.detail), "body" if e.status_code == 400 else None, headers)


async def _invalid(_request: Request, e: Exception) -> Response:
    if isinstance(e, RequestValidationError):
        e = first_error(list(e.errors()))
    assert isinstance(e, InvalidInput)
    return error_answer(400, f"{e.field}: {e.message}", e.field)


async def _admin_error(_request: Request, e: Exception) -> Response:
    assert isinstance(e, AdminError)
    return error_answer(e.status, e.message)


async def _not_found(_request: Request, _e: Exception) -> Response:
    return error_answer(404, "API key not found")


async def _unavailable(_request: Request, _e: Exception) -> Response:
    # Nothing was written (every change is one transaction); the pool reconnects by itself.
    return error_answer(503, "Database unavailable")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    StarletteHTTPException: _http_error, RequestValidationError: _invalid, InvalidInput: _invalid,
    AdminError: _admin_error, NotFound: _not_found, **{exc: _unavailable for exc in UNAVAILABLE},
}
