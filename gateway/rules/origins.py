"""Origin patterns, matched on whole origins: ``cors.meta_origins`` and a key's ``allowed_origins``.

A pattern is an exact origin (``https://app.example.com``), may put ``*.`` before the host for
one or more subdomain labels (``https://*.example.com``) and ``:*`` after it for any port
(``http://localhost:*``); ``*`` alone is any origin. Scheme, host and port are compared as a
whole (``http://localhost:3000.evil.com`` is not ``http://localhost:3000``), hosts
case-insensitively and as punycode, default ports made explicit. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANY_PORT = -1
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # lower-case, punycode; IPv6 in brackets
    port: int


@dataclass(frozen=True, slots=True)
class Pattern:
    scheme: str
    host: str  # for a wildcard, the suffix the subdomains stand before
    wildcard: bool
    port: int  # ANY_PORT: any

    def matches(self, origin: Origin) -> bool:
        if origin.scheme != self.scheme or (self.port != ANY_PORT and origin.port != self.port):
            return False
        if self.wildcard:
            return origin.host.endswith("." + self.host)
        return origin.host == self.host


def _host(text: str) -> str | None:
    """A host as compared: lower-case, punycode; None if it is no valid host name or address."""
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        return text.lower() if inner and re.fullmatch(r"[0-9A-Fa-f:.]+", inner) else None
    try:
        host = text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = host.split(".")
    if not host or any(_HOST_LABEL.fullmatch(label) is None for label in labels):
        return None
    return host


def _split(text: str) -> tuple[str, str, str | None] | None:
    """``scheme://host[:port]`` into its parts, or None."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS or not rest:
        return None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            return None
        host, tail = rest[: end + 1], rest[end + 1:]
        if tail and not tail.startswith(":"):
            return None
        port = tail[1:] if tail else None
    else:
        host, colon, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
        port = port_text if colon else None
    return scheme.lower(), host, port


def parse_origin(text: str) -> Origin | None:
    """An ``Origin`` header value (or ``scheme://host[:port]``); None for ``null`` or garbage."""
    parts = _split(text)
    if parts is None:
        return None
    scheme, host_text, port_text = parts
    host = _host(host_text)
    if host is None:
        return None
    if port_text is None or port_text == "":
        port = DEFAULT_PORTS[scheme]
    elif port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535:
        port = int(port_text)
    else:
        return None
    return Origin(scheme, host, port)


def referer_origin(referer: str) -> Origin | None:
    """The origin of a ``Referer`` URL (its path, query and credentials left aside)."""
    scheme, sep, rest = referer.partition("://")
    if not sep:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        return None  # browsers never send credentials in Referer: not worth believing
    return parse_origin(f"{scheme}://{authority}")


def parse_pattern(text: str) -> Pattern | None:
    """A pattern, or None if it is not one (the caller names the field)."""
    if text == "*":
        return Pattern("*", "", True, ANY_PORT)
    if not isinstance(text, str) or text != text.strip() or len(text) > 255:
        return None
    parts = _split(text)
    if parts is None:
        return None
    scheme, host_text, port_text = parts
    wildcard = host_text.startswith("*.")
    host = _host(host_text[2:] if wildcard else host_text)
    if host is None or "*" in host or (wildcard and host.startswith("[")):
        return None
    if port_text == "*":
        port = ANY_PORT
    elif port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535:
        port = int(port_text)
    else:
        return None
    return Pattern(scheme, host, wildcard, port)


class OriginSet:
    """A list of patterns, and the decisions taken for the origins seen (a bounded cache)."""

    __slots__ = ("patterns", "any", "_seen")

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self.any = any(p.scheme == "*" for p in patterns)
        self._seen: dict[bytes, bool] = {}

    @classmethod
    def parse(cls, texts: list[str]) -> "OriginSet":
        """Raise ValueError naming the first entry that is no pattern."""
        out = []
        for i, text in enumerate(texts):
            pattern = parse_pattern(text) if isinstance(text, str) else None
            if pattern is None:
                raise ValueError(f"entry {i} is not an origin pattern (scheme://host[:port], '*.' and ':*' allowed)")
            out.append(pattern)
        return cls(out)

    def allows(self, origin: Origin | None) -> bool:
        if self.any:
            return True
        return origin is not None and any(p.matches(origin) for p in self.patterns)

    def allows_header(self, value: bytes) -> bool:
        """The decision for an ``Origin`` header's bytes, remembered."""
        seen = self._seen.get(value)
        if seen is None:
            seen = self.allows(parse_origin(value.decode("latin-1")))
            if len(self._seen) >= _CACHE_MAX:
                self._seen.clear()
            self._seen[value] = seen
        return seen
