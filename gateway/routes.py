"""Which service a path belongs to, what key it needs, and the path the service sees.

Pure functions: ``normalize`` turns the raw request path into a safe one (or refuses it) and
``match`` maps it onto the SPEC's route table, mirroring the self-hosted Kong/Envoy config.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import unquote


class Policy(enum.Enum):
    KEY = "key"  # any valid key
    SECRET = "secret"  # a secret key or the legacy service_role key
    OPTIONAL = "optional"  # a key present must be valid; none: passed through untouched
    OPEN = "open"  # no key needed (auth's verify/callback/authorize/JWKS)
    FORBIDDEN = "forbidden"
    HEALTH = "health"


class BadPath(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Route:
    service: str | None
    policy: Policy
    prefix: str  # the public prefix, stripped before forwarding (X-Forwarded-Prefix)
    upstream_path: str
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()
    realtime: bool = False  # Host header and x-api-key for Realtime; apikey param replaced, not dropped
    functions: bool = False  # sb-api-key header for Edge Functions
    meta_cors: bool = False


# Open below /auth/v1 as in the official Envoy and Kong configs: links from e-mails, OAuth and
# SAML identity providers, the JWKS; none of them carries a key.
AUTH_OPEN = frozenset({"/verify", "/callback", "/authorize", "/.well-known/jwks.json", "/sso/saml/acs",
                       "/sso/saml/metadata"})
# RFC 8414 metadata of the auth service's OAuth 2.1 server, at the root: the issuer's path (for
# example /auth/v1 of API_EXTERNAL_URL) may follow. Open, as in the official configs.
OAUTH_METADATA = "/.well-known/oauth-authorization-server"
_GRAPHQL_HEADERS = ((b"content-profile", b"graphql_public"),)


_UNRESERVED_ESCAPE = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DdEe]|5[Ff]|7[Ee])")


def _decode_unreserved(m: re.Match[str]) -> str:
    return chr(int(m.group(0)[1:], 16))


def normalize(raw_path: str) -> str:
    """Resolve ``.``/``..`` segments; refuse encoded slashes, backslashes and dot segments.

    ``raw_path`` is the path as sent (percent-encoded). The result keeps the encoding of every
    segment, so the upstream sees exactly what the client sent, less the dot segments.
    """
    if not raw_path.startswith("/"):
        raise BadPath("path must start with /")
    out: list[str] = []
    segments = raw_path.split("/")[1:]
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
        if seg == ".":
            if i == len(segments) - 1:
                out.append("")
            continue
        if seg == "..":
            if not out:
                raise BadPath("path escapes the root")
            out.pop()
            if i == len(segments) - 1:
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


def match(path: str) -> Route | None:
    """The route for a normalised path, or None (404)."""
    if path == "/health":
        return Route(None, Policy.HEALTH, "", "")
    if path in ("/mcp", "/api/mcp") or path.startswith(("/mcp/", "/api/mcp/")):
        return Route(None, Policy.FORBIDDEN, "", "")

    if (rest := _under(path, "/rest/v1")) is not None:
        if rest in ("", "/"):
            return Route("rest", Policy.SECRET, "/rest/v1", "/")
        return Route("rest", Policy.KEY, "/rest/v1", rest)
    if path in ("/graphql/v1", "/graphql/v1/"):
        return Route("rest", Policy.KEY, "/graphql/v1", "/rpc/graphql", _GRAPHQL_HEADERS)

    if (rest := _under(path, "/realtime/v1")) is not None:
        if rest.startswith(("/api/tenants", "/api/openapi")):
            return Route(None, Policy.FORBIDDEN, "", "")
        if (api := _under(rest, "/api")) is not None:
            return Route("realtime", Policy.KEY, "/realtime/v1", "/api" + api, realtime=True)
        if rest in ("", "/"):
            return None
        return Route("realtime", Policy.KEY, "/realtime/v1", "/socket" + rest, realtime=True)

    if (rest := _under(path, "/functions/v1")) is not None:
        return Route("functions", Policy.OPTIONAL, "/functions/v1", rest or "/", functions=True)

    if (rest := _under(path, "/auth/v1")) is not None:
        policy = Policy.OPEN if rest in AUTH_OPEN else Policy.KEY
        return Route("auth", policy, "/auth/v1", rest or "/")

    if (rest := _under(path, "/storage/v1")) is not None:
        return Route("storage", Policy.OPTIONAL, "/storage/v1", rest or "/")

    if (rest := _under(path, "/pg")) is not None:
        return Route("meta", Policy.SECRET, "/pg", rest or "/", meta_cors=True)

    if _under(path, OAUTH_METADATA) is not None:
        return Route("auth", Policy.OPEN, path, OAUTH_METADATA)

    return None
