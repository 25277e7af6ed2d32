"""PostgREST resources: what a request below ``/rest/v1`` names, exactly as
PostgREST will read it, and the lists that allow (``allowed_resources`` on a key) or refuse
(``rest.denied_resources``) them. Pure; docs/protection.md "Resources a key may reach" explains
every rule with its reason.

A resource's name is what PostgREST serves, never a prefix or a look-alike:

- the path the upstream gets (already normalised by gateway.routes: merged slashes, no dot
  segments, no encoded slashes) split on ``/``, then each segment percent-decoded on its own,
  ``+`` kept and bad UTF-8 replaced, as WAI's ``pathInfo`` does; one segment is a table or view
  (``todos``), ``rpc`` and one more a function (``rpc/search``); anything else (a trailing slash,
  a third segment, ``RPC/x``) is no resource PostgREST serves: ``None``;
- case-sensitive and with every character kept (``;``, ``.``, spaces): PostgREST quotes the
  name it looks up, so ``Todos`` and ``todos;`` are other (usually missing) tables;
- the schema: PostgREST reads ``Content-Profile`` on POST, PUT, PATCH and DELETE and
  ``Accept-Profile`` on every other method (GET, HEAD, OPTIONS), the first one sent. None, or
  ``public`` (Supabase's first exposed schema), is the bare name; another schema qualifies it
  (``storage.objects``, ``rpc/storage.search``); the value is trimmed as HTTP servers trim it;
  the profile header sent twice, empty or not UTF-8 is ``None``;
- GraphQL (``GRAPHQL``): ``/graphql/v1``, the OpenAPI root (``/rest/v1/``, which describes every
  table), and any function of the ``graphql_public`` or ``graphql`` schema (``rpc/graphql`` with
  ``Content-Profile: graphql_public`` is the GraphQL endpoint itself). It reaches every table by
  a query the gateway cannot read, so only the literal entry ``graphql`` allows it, never a
  pattern, and a denied list refuses it to every public request.

Patterns: ``*`` stands for any run of characters other than ``/`` and ``.``: ``rpc/search_*``,
``storage.*``; ``*`` alone is every table and view of ``public`` (not its functions).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

GRAPHQL: Final = "\x00graphql"  # no path decodes to a NUL (gateway.routes refuses %00)
GRAPHQL_ENTRY = "graphql"
DEFAULT_SCHEMA = "public"
GRAPHQL_SCHEMAS = frozenset({"graphql_public", "graphql"})
# The methods whose schema PostgREST takes from Content-Profile (the others: Accept-Profile).
CONTENT_PROFILE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_ENTRY = 200
CACHE_MAX = 1024
_ENTRY = re.compile(r"(rpc/)?[^/\x00-\x1f\x7f]+")


class _Ambiguous:
    pass


AMBIGUOUS: Final = _Ambiguous()  # the profile header sent more than once


def profile_header(headers: list[tuple[bytes, bytes]], method: str) -> bytes | None | _Ambiguous:
    """The profile header PostgREST reads for ``method`` (``None``: not sent)."""
    wanted = b"content-profile" if method in CONTENT_PROFILE_METHODS else b"accept-profile"
    found: bytes | None = None
    for name, value in headers:
        if name == wanted:
            if found is not None:
                return AMBIGUOUS
            found = value
    return found


def resource_name(upstream_path: str, profile: bytes | None | _Ambiguous = None) -> str | None:
    """The resource a REST path below ``/rest/v1`` names (``/todos`` -> ``todos``), with the schema
    of its profile header; ``None`` when PostgREST serves no resource there."""
    if profile is None:
        schema = ""
    elif isinstance(profile, bytes):
        try:
            schema = profile.strip(b" \t").decode("utf-8")  # as an HTTP server trims a header value
        except UnicodeDecodeError:
            return None
        if not schema:
            return None
        if schema == DEFAULT_SCHEMA:
            schema = ""
    else:
        return None
    if not upstream_path.startswith("/"):
        return None
    segments = upstream_path[1:].split("/")
    names = [unquote(s, errors="replace") if "%" in s else s for s in segments]
    if len(names) == 1 and names[0]:
        return f"{schema}.{names[0]}" if schema else names[0]
    if len(names) == 2 and names[0] == "rpc" and names[1]:
        if schema in GRAPHQL_SCHEMAS:
            return GRAPHQL
        return f"rpc/{schema}.{names[1]}" if schema else f"rpc/{names[1]}"
    return None


def parse_entry(text: object) -> str:
    """An entry of ``allowed_resources`` or ``rest.denied_resources`` as written (ValueError
    otherwise): ``graphql``, a name or pattern of a table or view (``todos``, ``storage.*``) or
    of a function (``rpc/search_*``), without a leading or trailing space or a control character."""
    if not isinstance(text, str) or not text or len(text) > MAX_ENTRY or text != text.strip() \
            or _ENTRY.fullmatch(text) is None or "/" in text.removeprefix("rpc/"):
        raise ValueError("entries must be graphql, a table, view or function (rpc/name) of the API, "
                         "or a * pattern such as rpc/search_*")
    return text


def _pattern(entry: str) -> re.Pattern[str]:
    return re.compile("[^/.]*".join(re.escape(part) for part in entry.split("*")))


class ResourceSet:
    """A list of entries, matched from memory: a set lookup for names, the patterns in one
    expression, and the answer for each (path, profile) seen remembered (bounded)."""

    __slots__ = ("source", "names", "pattern", "graphql", "_seen")

    def __init__(self, entries: list[str] | tuple[str, ...]) -> None:
        self.source = tuple(entries)
        self.graphql = GRAPHQL_ENTRY in entries
        self.names = frozenset(e for e in entries if "*" not in e)
        patterns = [_pattern(e).pattern for e in entries if "*" in e]
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._seen: dict[tuple[str, bytes | None | _Ambiguous], bool | None] = {}  # None: no resource

    def matches(self, name: str | None) -> bool:
        """Whether ``name`` (a ``resource_name``) is on the list; GRAPHQL only by its literal entry."""
        if name is None:
            return False
        if name is GRAPHQL:
            return self.graphql
        return name in self.names or (self.pattern is not None and self.pattern.fullmatch(name) is not None)

    def matches_path(self, upstream_path: str, profile: bytes | None | _Ambiguous) -> bool | None:
        """``matches`` for a REST path and profile, remembered; ``None`` for no resource at all."""
        key = (upstream_path, profile)
        if key in self._seen:
            return self._seen[key]
        name = resource_name(upstream_path, profile)
        seen = None if name is None else self.matches(name)
        if len(self._seen) >= CACHE_MAX:
            self._seen.clear()
        self._seen[key] = seen
        return seen
