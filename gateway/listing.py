"""The table of ``gateway keys list``: at most 100 columns, so that it fits a terminal.

What matters most stays in the table, one key a line: the id (``keys update``/``delete`` take
it), the name, the display prefix (which names the type, and matches the start of a key found
somewhere and the access log's ``key_prefix``), last use and expiry, the times relative. Below
it, for the keys that have them, the publishable keys in full (public by design, to copy) and
the limits and restrictions, each line cut at the width. ``--json`` keeps every field, whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.keys.apikeys import MASK_CHAR

WIDTH = 100
NAME_WIDTH = 20
_UNITS = ((365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, "…" where it was cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


def span(seconds: float) -> str:
    """A duration in its largest whole unit: 42s, 5m, 3h, 20d, 2y."""
    seconds = max(0, int(seconds))
    for size, unit in _UNITS:
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "0s"


def ago(when: str | None, now: datetime) -> str:
    """When a key was last used, as "5m ago" ("never" if it was not)."""
    if when is None:
        return "never"
    return f"{span((now - datetime.fromisoformat(when)).total_seconds())} ago"


def expires(when: str | None, expired: bool, now: datetime) -> str:
    if when is None:
        return "never"
    if expired:
        return "expired"
    return f"in {span((datetime.fromisoformat(when) - now).total_seconds())}"


_LISTS = (("allowed_origins", "origins"), ("allowed_ips", "ips"), ("allowed_services", "services"),
          ("allowed_resources", "resources"), ("allowed_methods", "methods"))


def rules(key: dict[str, Any]) -> str:
    """A key's limits, quota and restrictions, on one line ("" if it has none)."""
    parts = []
    limits = " ".join(f"{k}={v}" for k, v in key["limits"].items() if v)
    if limits:
        parts.append(limits)
    quota = key.get("quota")
    if quota:
        parts.append(f"quota {quota['used']} of {quota['limit']} used")
    for field, label in _LISTS:
        if key.get(field):
            parts.append(f"{label} {', '.join(key[field])}")
    return "; ".join(parts)


def full_key(key: dict[str, Any]) -> str | None:
    """The publishable key in full, if the listing has it (keys made before it was kept do not)."""
    api_key = key.get("api_key") or ""
    return api_key if key["type"] == "publishable" and api_key and MASK_CHAR not in api_key else None


def table(keys: list[dict[str, Any]], now: datetime, width: int = WIDTH) -> list[str]:
    """The lines of ``gateway keys list`` for keys as the admin API shows them (``key_json``)."""
    # 36 + 20 + 21 (the longest prefix) + 8 ("364d ago") + 7 ("in 364d", "expired") + 4 gaps: 100
    row = "{:<36}  {:<%d}  {:<21}  {:<8}  {}" % NAME_WIDTH
    lines = [row.format("ID", "NAME", "PREFIX", "LAST USE", "EXPIRES")]
    for k in keys:
        lines.append(row.format(k["id"], cut(k["name"], NAME_WIDTH), k["prefix"], ago(k["last_used_at"], now),
                                expires(k["expires_at"], k["expired"], now)))
    for title, value in (("publishable keys, in full (public by design):", full_key),
                         ("limits, quotas and restrictions:", rules)):
        shown = [(k["name"], v) for k in keys if (v := value(k))]
        if shown:
            lines += ["", title]
            lines += [f"  {cut(name, NAME_WIDTH):<{NAME_WIDTH}}  {v}" for name, v in shown]
    return [cut(line.rstrip(), width) for line in lines]
