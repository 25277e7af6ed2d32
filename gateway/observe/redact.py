"""Keys, admin tokens and JWTs taken out of whatever a client wrote that reaches a log line:
paths, queries, header values, in any spelling the path parser accepts (percent-encoding looked
through)."""

from __future__ import annotations

import re
from urllib.parse import unquote

# API keys, admin tokens (``sbp_`` and 40 hex digits) and JWTs.
_SECRETS = re.compile(r"sb_[A-Za-z0-9]+_[A-Za-z0-9_-]+|sbp_[A-Za-z0-9]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")


_DECODINGS = 8  # rounds of percent-decoding looked through (``%2573`` is ``%73`` is ``s``)


def redact(path: str) -> str:
    """A path (or a query) with anything shaped like an API key or a JWT taken out: a client may
    put one there, in any spelling the path parser accepts. Percent-encoding is looked through; a
    path whose secret shows only once decoded is given decoded, with the secret taken out. The
    same object comes back when there is nothing to take out."""
    if "%" in path:
        decoded = path
        for _ in range(_DECODINGS):
            more = unquote(decoded, errors="replace")
            if more == decoded:
                break
            decoded = more
        if decoded is not path and _SECRETS.search(decoded):
            return _SECRETS.sub("[redacted]", decoded)
    if "sb_" not in path and "eyJ" not in path and "sbp_" not in path:
        return path
    return _SECRETS.sub("[redacted]", path)


def redact_query(query: str) -> str:
    """A query string with every ``apikey`` value taken out (its name in any spelling), then
    ``redact``: what a log line may show of it."""
    if not query:
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and redact_name(name) == "apikey":
            parts[i] = name + "=[redacted]"
    return redact("&".join(parts))


def redact_name(name: str) -> str:
    """A query parameter's name as a server reads it: percent-decoded (up to eight rounds), ``+``
    as a space, stripped and lower-cased."""
    for _ in range(_DECODINGS):
        more = unquote(name.replace("+", " "), errors="replace")
        if more == name:
            break
        name = more
    return name.strip().lower()


# --- the combined format (Envoy's access line, nginx's "combined") --------------------------------

