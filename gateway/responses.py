"""The gateway's answers: JSON errors with ``sb-error-code``, CORS headers, and the bytes of an
answer's head for the listener's own protocol (the ASGI app's heads are the server's)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from gateway.errors import Refusal
from gateway.routes import Cors
from gateway.rules.origins import OriginSet

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]
Headers = list[tuple[bytes, bytes]]

ALLOW_METHODS = b"GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS"
DEFAULT_ALLOW_HEADERS = b"authorization, x-client-info, apikey, content-type, accept-profile, content-profile, prefer, range, x-upsert, x-supabase-api-version"
CORS_ANY: Headers = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"*")]
JSON = b"application/json"


def error_headers(r: Refusal, extra: Headers | tuple[()] = ()) -> Headers:
    body = r.body
    return [(b"content-type", JSON), (b"content-length", b"%d" % len(body)), (b"sb-error-code", r.code.encode()),
            *r.headers, *extra]


async def send_refusal(send: Send, r: Refusal, extra: Headers | tuple[()] = ()) -> None:
    await send({"type": "http.response.start", "status": r.status, "headers": error_headers(r, extra)})
    await send({"type": "http.response.body", "body": r.body})


async def send_json(send: Send, status: int, payload: Any, extra: Headers | tuple[()] = ()) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def cors_headers(origin: bytes | None, cors: Cors, meta_origins: OriginSet) -> Headers:
    """Headers for a proxied or gateway answer to a request that carries ``Origin``."""
    if origin is None:
        return []
    if cors is Cors.ANY:
        return CORS_ANY
    if meta_origins.allows_header(origin):
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), (b"access-control-expose-headers", b"*")]
    return []


def preflight_headers(origin: bytes, requested: bytes | None, cors: Cors, meta_origins: OriginSet) -> Headers:
    if cors is Cors.META and not meta_origins.allows_header(origin):
        return []
    return [
        (b"access-control-allow-origin", b"*" if cors is Cors.ANY else origin),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-allow-headers", requested or DEFAULT_ALLOW_HEADERS),
        (b"access-control-max-age", b"3600"),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
        (b"content-length", b"0"),
    ]


_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def head_bytes(status: int, headers: Headers) -> bytes:
    """An HTTP/1.1 answer's head: the status line, the headers, the blank line."""
    out = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)
