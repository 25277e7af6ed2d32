"""Which route a path takes: pure functions over the route table (docs/requests.md).

``normalize`` turns the raw request path into a safe one (or refuses it); ``match`` maps it
onto a route, one frozen object per entry of the table declaring everything the rest of the
request path does differently for it, and the path the upstream sees.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from urllib.parse import unquote


class Kind(enum.Enum):
    PROXY = "proxy"
    HEALTH = "health"  # answered by the gateway itself
    FORBIDDEN = "forbidden"  # 403, whatever the key


class Policy(enum.Enum):
    KEY = "key"  # any valid key
    SECRET = "secret"  # a secret key or the legacy service_role key
    OPTIONAL = "optional"  # a key present must be valid; none: passed through untouched
    OPEN = "open"  # no key needed (auth's verify/callback/authorize/JWKS); one sent is checked
    KEY_OR_USER = "key_or_user"  # a valid key or a verified user JWT (functions.verify = "required")
    DASHBOARD = "dashboard"  # no key: HTTP basic auth when dashboard.username/password are set


class QueryKey(enum.Enum):
    DROP = "drop"  # the apikey query parameter is removed (PostgREST would read it as a filter)
    REPLACE = "replace"  # the minted JWT takes its place (Realtime reads its token there)


class Cors(enum.Enum):
    ANY = "any"  # any origin, as the hosted platform
    META = "meta"  # only cors.meta_origins


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    kind: Kind
    service: str  # the route's name in metrics, logs and allowed_services (rest, graphql, ...; gateway)
    upstream: str  # the upstream service it is forwarded to (graphql goes to rest)
    policy: Policy
    prefix: str  # the public prefix, stripped before forwarding (X-Forwarded-Prefix)
    token_headers: tuple[bytes, ...] = (b"apikey",)  # upstream headers that carry the minted JWT
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()  # set by the route
    query_key: QueryKey = QueryKey.DROP
    cors: Cors = Cors.ANY
    channel_tokens: bool = False  # API keys in Realtime frames are swapped for JWTs (gateway.serve.realtime)
    replica_methods: frozenset[str] = frozenset()  # reads that may go to a read replica
    owned_headers: frozenset[bytes] = field(init=False)  # set by the route: the client's are dropped

    def __post_init__(self) -> None:
        owned = frozenset(self.token_headers) | {name for name, _ in self.extra_headers}
        object.__setattr__(self, "owned_headers", owned)


HEALTH = Route(Kind.HEALTH, "gateway", "gateway", Policy.OPEN, "")
FORBIDDEN = Route(Kind.FORBIDDEN, "gateway", "gateway", Policy.OPEN, "")
_READS = frozenset({"GET", "HEAD"})
REST_ROOT = Route(Kind.PROXY, "rest", "rest", Policy.SECRET, "/rest/v1", replica_methods=_READS)
REST = Route(Kind.PROXY, "rest", "rest", Policy.KEY, "/rest/v1", replica_methods=_READS)
GRAPHQL = Route(Kind.PROXY, "graphql", "rest", Policy.KEY, "/graphql/v1",
                extra_headers=((b"content-profile", b"graphql_public"),), replica_methods=frozenset({"GET"}))
REALTIME = Route(Kind.PROXY, "realtime", "realtime", Policy.KEY, "/realtime/v1",
                 token_headers=(b"apikey", b"x-api-key"), query_key=QueryKey.REPLACE, channel_tokens=True)
FUNCTIONS = Route(Kind.PROXY, "functions", "functions", Policy.OPTIONAL, "/functions/v1",
                  token_headers=(b"apikey", b"sb-api-key"))
AUTH = Route(Kind.PROXY, "auth", "auth", Policy.KEY, "/auth/v1")
AUTH_OPEN = Route(Kind.PROXY, "auth", "auth", Policy.OPEN, "/auth/v1")
AUTH_METADATA = Route(Kind.PROXY, "auth", "auth", Policy.OPEN, "/.well-known/oauth-authorization-server")
STORAGE = Route(Kind.PROXY, "storage", "storage", Policy.OPTIONAL, "/storage/v1")
META = Route(Kind.PROXY, "meta", "meta", Policy.SECRET, "/pg", cors=Cors.META)
# Studio, on every path no other route takes (Envoy's and Kong's catch-all `/`); it gets no
# minted JWT, and never the client's Authorization (the dashboard's basic-auth credentials).
DASHBOARD = Route(Kind.PROXY, "studio", "studio", Policy.DASHBOARD, "/", token_headers=())

SERVICES = ("rest", "graphql", "realtime", "functions", "auth", "storage", "meta")
# Open below /auth/v1 as in the official Envoy and Kong configs: links from e-mails, OAuth and
# SAML identity providers, the JWKS; none of them carries a key.
AUTH_OPEN_PATHS = frozenset({"/verify", "/callback", "/authorize", "/.well-known/jwks.json", "/sso/saml/acs",
                             "/sso/saml/metadata"})
# RFC 8414 metadata of the auth service's OAuth 2.1 server, at the root: the issuer's path (for
# example /auth/v1 of API_EXTERNAL_URL) may follow. Open, as in the official configs.
OAUTH_METADATA = "/.well-known/oauth-authorization-server"
# Routed by neither official gateway any more (Studio and Vector reach Logflare directly): closed,
# not the dashboard's.
CLOSED = ("/analytics/v1",)


class BadPath(ValueError):
    pass


_UNRESERVED_ESCAPE = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DdEe]|5[Ff]|7[Ee])")
_SLASHES = re.compile(r"//+")


def _decode_unreserved(m: re.Match[str]) -> str:
    return chr(int(m.group(0)[1:], 16))


def normalize(raw_path: str) -> str:
    """Merge runs of ``/``, resolve ``.``/``..``; refuse encoded slashes, backslashes, NULs and
    encoded dot segments.

    ``raw_path`` is the path as sent (percent-encoded). The result keeps the encoding of every
    segment, so the upstream sees what the client sent, less the dot segments and doubled
    slashes (as Envoy's ``merge_slashes``), with unreserved characters decoded.
    """
    if not raw_path.startswith("/"):
        raise BadPath("path must start with /")
    if "//" in raw_path:
        raw_path = _SLASHES.sub("/", raw_path)
    out: list[str] = []
    segments = raw_path.split("/")[1:]
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if "%" in seg:
            lower = seg.lower()
            if "%2f" in lower or "%5c" in lower or "%00" in lower:
                raise BadPath("encoded slash in path")
            if unquote(seg) in (".", ".."):
                raise BadPath("encoded dot segment in path")
            # Unreserved characters mean the same encoded or not (RFC 3986 6.2.2.2): decode them,
            # so that /realtime/v1/api/%74enants is the forbidden route it names.
            seg = _UNRESERVED_ESCAPE.sub(_decode_unreserved, seg)
        if "\\" in seg:
            raise BadPath("backslash in path")
        if "\x00" in seg:
            raise BadPath("NUL in path")
        if seg == "." or seg == "..":
            if seg == "..":
                if not out:
                    raise BadPath("path escapes the root")
                out.pop()
            if i == last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


def _under(path: str, prefix: str) -> str | None:
    """The rest of ``path`` below ``prefix`` (``/``-led, maybe empty), or None."""
    if path == prefix:
        return ""
    if path.startswith(prefix) and path[len(prefix)] == "/":
        return path[len(prefix):]
    return None


def match(path: str) -> tuple[Route, str] | None:
    """The route for a normalised path and the path its upstream sees, or None (404). A path no
    other route takes is the dashboard's (served only when upstreams.studio is set)."""
    if path == "/health":
        return HEALTH, ""
    if path in ("/mcp", "/api/mcp") or path.startswith(("/mcp/", "/api/mcp/")):
        return FORBIDDEN, ""

    if (rest := _under(path, "/rest/v1")) is not None:
        if rest in ("", "/"):
            return REST_ROOT, "/"
        return REST, rest
    if path in ("/graphql/v1", "/graphql/v1/"):
        return GRAPHQL, "/rpc/graphql"

    if (rest := _under(path, "/realtime/v1")) is not None:
        if rest.startswith(("/api/tenants", "/api/openapi")):
            return FORBIDDEN, ""
        if (api := _under(rest, "/api")) is not None:
            return REALTIME, "/api" + api
        if rest in ("", "/"):
            return None
        return REALTIME, "/socket" + rest

    if (rest := _under(path, "/functions/v1")) is not None:
        return FUNCTIONS, rest or "/"

    if (rest := _under(path, "/auth/v1")) is not None:
        return (AUTH_OPEN if rest in AUTH_OPEN_PATHS else AUTH), rest or "/"

    if (rest := _under(path, "/storage/v1")) is not None:
        return STORAGE, rest or "/"

    if (rest := _under(path, "/pg")) is not None:
        return META, rest or "/"

    if _under(path, OAUTH_METADATA) is not None:
        return AUTH_METADATA, OAUTH_METADATA

    if any(_under(path, closed) is not None for closed in CLOSED):
        return None
    return DASHBOARD, path
