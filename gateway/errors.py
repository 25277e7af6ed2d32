"""Every refusal of the public listener, as data: a catalogue of specs and a fresh exception per raise.

``raise INVALID_API_KEY()`` builds a new ``Refusal`` each time. A module-level exception instance
raised again and again would keep every request's frames (and the key text in them) alive
through its ever-growing ``__traceback__``. Messages and hints are fixed strings: never a key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    status: int
    code: str
    message: str
    hint: str | None = None
    body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", error_body(self.message, self.hint))

    def __call__(self, hint: str | None = None, message: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> "Refusal":
        return Refusal(self, hint, message, headers)


class Refusal(Exception):
    """An answer other than forwarding, raised fresh from an ``ErrorSpec``."""

    __slots__ = ("spec", "hint", "message", "headers")

    def __init__(self, spec: ErrorSpec, hint: str | None = None, message: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(spec.code)
        self.spec = spec
        self.message = message or spec.message
        self.hint = hint if hint is not None else spec.hint
        self.headers = headers or []

    @property
    def status(self) -> int:
        return self.spec.status

    @property
    def code(self) -> str:
        return self.spec.code

    @property
    def body(self) -> bytes:
        if self.message is self.spec.message and self.hint is self.spec.hint:
            return self.spec.body
        return error_body(self.message, self.hint)


def error_body(message: str, hint: str | None = None) -> bytes:
    body: dict[str, str] = {"message": message}
    if hint:
        body["hint"] = hint
    return json.dumps(body).encode()


# --- the catalogue (hosted Supabase's wording where it has one) ----------------------------------

MISSING_API_KEY = ErrorSpec(401, "UNAUTHORIZED_MISSING_API_KEY", "No API key found in request",
                            "No `apikey` request header or url param was found.")
INVALID_API_KEY = ErrorSpec(401, "UNAUTHORIZED_INVALID_API_KEY", "Invalid API key", "Double check your API key.")
SECRET_KEY_IN_BROWSER = ErrorSpec(
    401, "UNAUTHORIZED_INVALID_API_KEY_TYPE", "Forbidden use of secret API key in browser",
    "Secret API keys can only be used in a protected environment and should never be used in a browser. "
    "Delete this secret API key immediately!",
)
SECRET_KEY_REQUIRED = ErrorSpec(401, "UNAUTHORIZED_INVALID_API_KEY_TYPE", "Secret API key required",
                                "Only secret API keys can be used for this endpoint.")
LEGACY_KEYS_DISABLED = ErrorSpec(401, "UNAUTHORIZED_LEGACY_API_KEY_DISABLED", "Legacy API keys are disabled")
CONFLICTING_API_KEYS = ErrorSpec(401, "UNAUTHORIZED_CONFLICTING_API_KEYS", "Conflicting API keys",
                                 "The `Authorization` header holds a different API key than `apikey`.")
INVALID_AUTHORIZATION = ErrorSpec(401, "UNAUTHORIZED_INVALID_AUTHORIZATION", "Invalid authorization header",
                                  "Send `Authorization: Bearer <JWT>` or leave it out.")
API_KEY_EXPIRED = ErrorSpec(401, "UNAUTHORIZED_API_KEY_EXPIRED", "API key expired",
                            "This API key has reached its expiry time. Use another key.")
INVALID_JWT = ErrorSpec(401, "UNAUTHORIZED_INVALID_JWT", "Invalid JWT", "Sign in again to get a fresh access token.")
UNAUTHORIZED_DASHBOARD = ErrorSpec(401, "UNAUTHORIZED_DASHBOARD", "Unauthorized",
                                   "Sign in to the dashboard with its username and password.")

BAD_PATH = ErrorSpec(400, "BAD_PATH", "Invalid request path")
BAD_REQUEST = ErrorSpec(400, "BAD_REQUEST", "Invalid HTTP request", "The request is not well-formed HTTP/1.1.")
FORBIDDEN_ROUTE = ErrorSpec(403, "FORBIDDEN_ROUTE", "Access is forbidden.")
FORBIDDEN_ORIGIN = ErrorSpec(403, "FORBIDDEN_ORIGIN", "Origin not allowed for this API key",
                             "This key may only be used from the origins its owner allowed.")
FORBIDDEN_IP = ErrorSpec(403, "FORBIDDEN_IP", "Client IP not allowed for this API key",
                         "This key may only be used from the addresses its owner allowed.")
FORBIDDEN_SERVICE = ErrorSpec(403, "FORBIDDEN_SERVICE", "Service not allowed for this API key",
                              "This key may only be used for the services its owner allowed.")
FORBIDDEN_RESOURCE = ErrorSpec(403, "FORBIDDEN_RESOURCE", "Resource not allowed for this API key",
                               "This key may only reach the tables, views and functions its owner allowed.")
DENIED_RESOURCE = ErrorSpec(403, "FORBIDDEN_RESOURCE", "Resource not allowed",
                            "This table, view or function is only reachable with a secret key.")
FORBIDDEN_METHOD = ErrorSpec(403, "FORBIDDEN_METHOD", "Method not allowed for this API key",
                             "This key may only use the HTTP methods its owner allowed.")
# The public listener's network rules (gateway.rules.guard): answered before anything else.
FORBIDDEN_NETWORK = ErrorSpec(403, "FORBIDDEN_IP", "Client IP not allowed",
                              "This gateway only answers the networks its operator allowed.")
CLIENT_BLOCKED = ErrorSpec(429, "CLIENT_BLOCKED", "Client blocked",
                           "Too many refused requests came from this address. Retry after the time in Retry-After.")
NOT_FOUND = ErrorSpec(404, "NOT_FOUND", "no Route matched with those values")
REQUEST_HEAD_TIMEOUT = ErrorSpec(408, "REQUEST_TIMEOUT", "Request header timeout",
                                 "The request head did not arrive in time.")
HEADERS_TOO_LARGE = ErrorSpec(431, "REQUEST_HEADERS_TOO_LARGE", "Request header fields too large")
OVER_RATE_LIMIT = ErrorSpec(429, "OVER_REQUEST_RATE_LIMIT", "Too many requests")
OVER_QUOTA = ErrorSpec(429, "OVER_QUOTA", "Quota exceeded")
CLIENT_CLOSED_REQUEST = ErrorSpec(499, "CLIENT_CLOSED_REQUEST", "Client closed request")

INTERNAL_ERROR = ErrorSpec(500, "INTERNAL_ERROR", "Internal gateway error")
UPSTREAM_UNAVAILABLE = ErrorSpec(502, "UPSTREAM_UNAVAILABLE", "Upstream unreachable")
UPSTREAM_REFUSED_WEBSOCKET = ErrorSpec(502, "UPSTREAM_UNAVAILABLE", "Upstream refused the WebSocket")
UPSTREAM_NOT_CONFIGURED = ErrorSpec(503, "UPSTREAM_NOT_CONFIGURED", "Service not configured")
TOO_MANY_CONNECTIONS = ErrorSpec(503, "TOO_MANY_CONNECTIONS", "Too many connections", "Try again later.")
UPSTREAM_TIMEOUT = ErrorSpec(504, "UPSTREAM_TIMEOUT", "Upstream timed out")
