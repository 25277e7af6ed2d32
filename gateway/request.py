"""Facts about a request, read in one pass over its head: pure functions and a slotted object.

``RequestInfo`` is what the rest of the request path reads (the credentials, CORS and
forwarding facts); ``split_query`` takes the ``apikey`` parameter out of a query string.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from gateway.auth import Credentials
from gateway.rules.browser import sec_fetch_signal

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024


class RequestInfo(Credentials):
    """One pass over the request headers (lower-case names, as ASGI servers give them)."""

    __slots__ = ("origin", "referer", "acr_method", "acr_headers", "host", "xff", "request_id", "connection",
                 "ws_protocols", "count", "total")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        apikeys = self.apikeys
        sec_fetch: list[bytes] = []
        self.origin: bytes | None = None
        self.referer: bytes | None = None
        self.acr_method: bytes | None = None
        self.acr_headers: bytes | None = None
        self.host: bytes | None = None
        self.xff: bytes | None = None
        self.request_id: bytes | None = None  # X-Request-Id as sent (kept only from a trusted proxy)
        self.connection: frozenset[bytes] = frozenset()
        self.ws_protocols: list[str] = []
        total = 0
        for name, value in headers:
            total += len(name) + len(value) + 4
            if name == b"apikey":
                apikeys.append(value.decode("latin-1").strip())
            elif name == b"authorization":
                self.authorization = value.decode("latin-1").strip()
                self.authorizations += 1
            elif name == b"user-agent":
                self.user_agent = value.decode("latin-1")
            elif name.startswith(b"sec-fetch-"):
                sec_fetch.append(name)
            elif name == b"origin":
                self.origin = value
            elif name == b"referer":
                self.referer = value
            elif name == b"host":
                self.host = value
            elif name == b"x-forwarded-for":
                self.xff = value if self.xff is None else self.xff + b", " + value
            elif name == b"x-request-id":
                self.request_id = value
            elif name == b"connection":
                self.connection = self.connection | {t.strip().lower() for t in value.split(b",")}
            elif name == b"access-control-request-method":
                self.acr_method = value
            elif name == b"access-control-request-headers":
                self.acr_headers = value
            elif name == b"sec-websocket-protocol":
                self.ws_protocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
        self.count = len(headers)
        self.total = total
        if sec_fetch:
            self.sec_fetch = sec_fetch_signal(sec_fetch, self.user_agent)

    @property
    def too_large(self) -> bool:
        return self.count > MAX_HEADERS or self.total > MAX_HEADER_BYTES

    @property
    def preflight(self) -> bool:
        return self.origin is not None and self.acr_method is not None


def split_query(query: bytes) -> tuple[list[str], bytes]:
    """The ``apikey`` values of a query string, and the query without them. Other parameters
    keep their bytes."""
    if b"apikey" not in query.lower() and b"%" not in query:
        return [], query
    keys: list[str] = []
    kept: list[bytes] = []
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "apikey":
            keys.append(unquote_plus(value.decode("latin-1")).strip())
        else:
            kept.append(part)
    return keys, b"&".join(kept)
