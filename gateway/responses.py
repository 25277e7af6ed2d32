"""The gateway's own answers: JSON errors with ``sb-error-code``, CORS headers. Plain ASGI."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Awaitable

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

ALLOW_METHODS = b"GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS"
DEFAULT_ALLOW_HEADERS = b"authorization, x-client-info, apikey, content-type, accept-profile, content-profile, prefer, range, x-upsert, x-supabase-api-version"
CORS_ANY: Headers = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"*")]


def error_body(message: str, hint: str | None = None) -> bytes:
    body: dict[str, str] = {"message": message}
    if hint:
        body["hint"] = hint
    return json.dumps(body).encode()


async def send_error(
    send: Send, status: int, code: str, message: str, hint: str | None = None, extra: Headers = ()
) -> None:
    body = error_body(message, hint)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"sb-error-code", code.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, extra: Headers = ()) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class OriginPolicy:
    """``cors.meta_origins`` entries; ``*`` stands for any port or host part (``http://localhost:*``)."""

    def __init__(self, patterns: list[str]) -> None:
        parts = ["".join(".*" if c == "*" else re.escape(c) for c in p) for p in patterns]
        self._re = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def allows(self, origin: str) -> bool:
        return self._re is not None and self._re.fullmatch(origin) is not None


def cors_headers(origin: bytes | None, meta: bool, policy: OriginPolicy) -> Headers:
    """Headers for a proxied or gateway answer to a request that carries ``Origin``."""
    if origin is None:
        return []
    if not meta:
        return CORS_ANY
    if policy.allows(origin.decode("latin-1")):
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), (b"access-control-expose-headers", b"*")]
    return []


def preflight_headers(origin: bytes, requested: bytes | None, meta: bool, policy: OriginPolicy) -> Headers:
    if meta and not policy.allows(origin.decode("latin-1")):
        return []
    allow_origin = origin if meta else b"*"
    return [
        (b"access-control-allow-origin", allow_origin),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-allow-headers", requested or DEFAULT_ALLOW_HEADERS),
        (b"access-control-max-age", b"3600"),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]
