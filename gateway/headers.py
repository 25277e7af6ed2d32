"""The headers of a forwarded exchange, as pure functions: what an upstream gets for what a
client sent, and what the client gets of the upstream's answer."""

from __future__ import annotations

from gateway.auth import Grant
from gateway.request import RequestInfo
from gateway.responses import Headers
from gateway.routes import Route

# Connection-level headers (RFC 9110 7.6.1) and the ones we set ourselves.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})
REPLACED = frozenset({
    b"host", b"apikey", b"sb-api-key", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
    b"x-forwarded-port", b"x-forwarded-prefix", b"sb-request-id", b"x-request-id",
    b"expect",  # bodies are streamed as they come: no 100-continue dance
})
# What a client's ``Connection`` header may never remove: headers the gateway owns or sets.
PROTECTED = frozenset({
    b"authorization", b"apikey", b"x-api-key", b"sb-api-key", b"content-length", b"transfer-encoding", b"host",
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix",
    b"sb-request-id", b"x-request-id",
})
WS_HANDSHAKE = frozenset({b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
                          b"sec-websocket-protocol"})
# The gateway owns CORS; the server adds its own Date (as nginx does, the upstream's is dropped).
RESPONSE_DROP = HOP_BY_HOP | {b"access-control-allow-origin", b"access-control-expose-headers",
                              b"access-control-allow-credentials", b"date"}


def upstream_headers(headers: Headers, info: RequestInfo, route: Route, grant: Grant, host: bytes,
                     client_ip: bytes, https: bool, ws: bool = False, port: bytes | None = None,
                     request_id: bytes = b"", proxy_request_id: bytes | None = None) -> Headers:
    """The request headers an upstream gets: the client's, less hop-by-hop ones (and those its
    ``Connection`` names, unless ours) and those the gateway sets, plus the minted JWT and the
    request id (as ``sb-request-id``, and as ``X-Request-Id`` unless a trusted proxy set one)."""
    nominated = info.connection - PROTECTED if info.connection else info.connection
    owned = route.owned_headers
    drop_authorization = grant.authorization is not None
    out = [(b"host", host)]
    for name, value in headers:
        if name in HOP_BY_HOP or name in REPLACED or name in owned or name in nominated:
            continue
        if (drop_authorization and name == b"authorization") or (ws and name in WS_HANDSHAKE):
            continue
        out.append((name, value))
    if grant.token is not None:
        token = grant.token.encode()
        out += [(name, token) for name in route.token_headers]
    if grant.authorization:  # "": the client's is dropped and none takes its place (the dashboard)
        out.append((b"authorization", grant.authorization.encode("latin-1")))
    out += route.extra_headers
    out.append((b"x-forwarded-for", client_ip))  # the client as the gateway judged it (trusted proxies)
    out.append((b"x-forwarded-proto", b"https" if https else b"http"))
    if info.host is not None:
        out.append((b"x-forwarded-host", info.host))
    if port is not None:
        out.append((b"x-forwarded-port", port))  # the listener's, as Envoy and Kong send
    out.append((b"x-forwarded-prefix", route.prefix.encode()))
    if request_id:
        out += ((b"sb-request-id", request_id), (b"x-request-id", proxy_request_id or request_id))
    return out


def response_headers(upstream: Headers, extra: Headers) -> Headers:
    """The upstream's answer headers, less hop-by-hop and CORS ones, plus the gateway's own."""
    out = [(k, v) for k, v in upstream if k not in RESPONSE_DROP]
    if extra:
        out += extra
    return out
