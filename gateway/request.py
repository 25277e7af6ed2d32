"""A request: ``Request``, one request as the gateway handles it (what it is, what was decided,
what it answered), and the facts of its head read in one pass (``RequestInfo``: the credentials,
CORS and forwarding facts the rest of the request path reads); ``split_query`` takes the
``apikey`` parameter out of a query string.
"""

from __future__ import annotations

import time
from urllib.parse import unquote_plus

from gateway.auth import NO_KEY, Credentials, Grant
from gateway.ids import new_id
from gateway.responses import Headers
from gateway.routes import Route
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


class Request:
    """One request as the gateway handles it: what it is, what was decided, what it answered."""

    __slots__ = ("id", "started", "method", "info", "path", "query", "sent_query", "headers_in", "https", "port",
                 "route", "upstream_path", "grant", "status", "peer", "client_ip", "rate_limit_headers", "limited",
                 "upstream", "protocol", "sent", "blocked")

    def __init__(self, method: str, raw_path: str, query: bytes, headers: Headers, client_ip: str, https: bool,
                 port: bytes | None, websocket: bool = False, protocol: str = "HTTP/1.1") -> None:
        self.id = new_id().encode()  # sb-request-id: on every answer, upstream, in the access log
        self.started = time.perf_counter()
        self.method = method
        self.headers_in = headers
        self.info = RequestInfo(headers)
        self.path = raw_path  # normalised once admitted: what the access log shows
        self.query = query  # without the apikey parameter once routed
        self.sent_query = query  # as the client sent it (the combined log line shows it, redacted)
        self.protocol = protocol  # HTTP/1.1 or HTTP/1.0, for the combined log line
        self.sent = 0  # response body bytes sent to the client
        self.https = https
        self.port = port  # the listener's, for X-Forwarded-Port
        self.route: Route | None = None
        self.upstream_path = ""
        self.grant: Grant = NO_KEY
        # What the access log shows until something is answered: a relayed WebSocket, else a failure.
        self.status = 101 if websocket else 500
        self.peer = client_ip  # the socket's
        self.client_ip = client_ip  # behind trusted proxies, the client they name
        self.rate_limit_headers: Headers = []  # the gateway adds them to the answer
        self.limited: str | None = None  # the rate limit that refused it
        self.upstream: str | None = None  # the name of the upstream that served it
        self.blocked = False  # answered CLIENT_BLOCKED: counted, no access line (gateway.rules.guard)

    @property
    def routed(self) -> Route:
        """The route, for the steps after ``Decider.route`` found one (none runs without)."""
        route = self.route
        assert route is not None
        return route

    # What the access log and the metrics read (gateway.observe.record).
    @property
    def service(self) -> str:
        return self.route.service if self.route is not None else "gateway"

    @property
    def role(self) -> str:
        return self.grant.role

    @property
    def key_id(self) -> str | None:
        return self.grant.entry.id if self.grant.entry is not None else None

    @property
    def key_prefix(self) -> str | None:
        return self.grant.entry.prefix if self.grant.entry is not None else None

    @property
    def referer(self) -> str | None:
        return None if self.info.referer is None else self.info.referer.decode("latin-1")

    @property
    def user_agent(self) -> str | None:
        return self.info.user_agent
