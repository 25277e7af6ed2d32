"""An invalid setting, said in plain words: which key, where its value came from, what it must be.

``server.port (GATEWAY_SERVER__PORT): must be a whole number``, never pydantic's own wording,
and never the value (it may be a secret).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# pydantic's error types, in plain words (``ctx``: the error's context, e.g. the bound).
_PLAIN: dict[str, Any] = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a smaller whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "string_unicode": "must be text",
    "list_type": "must be a list (in a variable: a JSON array)",
    "tuple_type": "must be a list (in a variable: a JSON array)",
    "set_type": "must be a list (in a variable: a JSON array)",
    "dict_type": "must be a table (in a variable: a JSON object)",
    "model_type": "must be a section of options (in a variable: a JSON object)",
    "model_attributes_type": "must be a section of options (in a variable: a JSON object)",
    "url_parsing": "must be an http:// or https:// URL",
    "url_type": "must be an http:// or https:// URL",
    "url_syntax_violation": "must be an http:// or https:// URL",
    "url_scheme": "must be an http:// or https:// URL",
    "url_too_long": "must be a shorter URL",
    "json_invalid": "must be JSON",
    "json_type": "must be JSON",
    "extra_forbidden": "unknown option",
    "missing": "is required",
    "greater_than": lambda c: f"must be more than {_num(c['gt'])}",
    "greater_than_equal": lambda c: f"must be at least {_num(c['ge'])}",
    "less_than": lambda c: f"must be less than {_num(c['lt'])}",
    "less_than_equal": lambda c: f"must be at most {_num(c['le'])}",
    "literal_error": lambda c: f"must be {c['expected']}",
    "enum": lambda c: f"must be {c['expected']}",
    "string_too_short": lambda c: f"must be at least {c['min_length']} characters",
    "string_too_long": lambda c: f"must be at most {c['max_length']} characters",
    "too_short": lambda c: f"must have at least {c['min_length']} entries",
    "too_long": lambda c: f"must have at most {c['max_length']} entries",
}


def plain(error: Mapping[str, Any]) -> str:
    """What one pydantic error says, in plain words. Our own validators already speak plainly
    (their message, less pydantic's "Value error, " in front)."""
    kind = error.get("type", "")
    if kind in ("value_error", "assertion_error"):
        return str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    words = _PLAIN.get(kind)
    if callable(words):
        try:
            return words(error.get("ctx") or {})
        except (KeyError, TypeError):
            return "is not a valid value"
    return words or "is not a valid value"


def _lookup(tree: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def source(path: Sequence[str], environ: Mapping[str, str], aliases: Mapping[str, tuple[str, ...]],
           file_values: Mapping[str, Any], file_path: str | None) -> str | None:
    """Where the value of the option at ``path`` came from, in order of precedence: its
    ``GATEWAY_*`` variable (or one holding its whole section as JSON), a Supabase name
    (``JWT_SECRET``...), the configuration file; None when no source holds it."""
    names = {name.upper(): name for name, value in environ.items() if value != ""}
    for depth in range(len(path), 0, -1):  # the option's own variable, then its section's
        name = names.get(ENV_PREFIX + ENV_DELIMITER.join(path[:depth]).upper())
        if name is not None:
            return name
    for alias, target in aliases.items():
        if tuple(target) == tuple(path) and environ.get(alias):
            return alias
    if file_path is not None:
        for depth in range(len(path), 0, -1):
            if _lookup(file_values, path[:depth]):
                return f"in {file_path}"
    return None


def describe(err: ValidationError, environ: Mapping[str, str], aliases: Mapping[str, tuple[str, ...]],
             file_values: Mapping[str, Any], file_path: str | None) -> str:
    """The first error, as ``key (source): what it must be``."""
    first = err.errors()[0]
    path = [str(p) for p in first["loc"] if not isinstance(p, int)]
    where = source(path, environ, aliases, file_values, file_path) if path else None
    key = ".".join(path) or "config"
    return f"{key} ({where}): {plain(first)}" if where else f"{key}: {plain(first)}"
