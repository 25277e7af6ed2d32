"""Vector's ``parse_nginx_log(value, "combined")``, as the self-hosted stack's log pipeline runs it
on the gateway's container (docker/volumes/logs/vector.yml: the `kong_logs` transform, which
drops every line it cannot parse), rewritten in Python for the tests.

The expression is the one of Vector's VRL standard library (``REGEX_NGINX_COMBINED_LOG`` in
``log_util.rs``, the version where the always-dash field follows the client), with the field
conversions of its ``capture_value``: ``status`` and ``size`` as integers, ``timestamp`` read with
``%d/%b/%Y:%T %z``. Python's ``re`` and Rust's ``regex`` agree on this expression (leftmost-first
alternation, Unicode ``\\s``, ``\\S`` and ``\\w``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

COMBINED = re.compile(r'''(?x)
    ^\s*
    (-|(?P<client>\S+))\s+
    \-\s+
    (-|(?P<user>\S+))\s+
    \[(?P<timestamp>.+)\]\s+
    "(?P<request>
    (?P<method>\w+)\s+
    (?P<path>\S+)\s+
    (?P<protocol>\S+)
    )"\s+
    (?P<status>\d+)\s+
    (?P<size>\d+)\s+
    "(-|(?P<referer>[^"]+))"\s+
    "(-|(?P<agent>[^"]+))"
    (\s+"(-|(?P<compression>[^"]+))")?
    \s*$
''')


class NotParsed(ValueError):
    """Vector's ``err``: the line would be dropped by the stack's `kong_logs` transform."""


def parse_nginx_combined(line: str) -> dict[str, Any]:
    """The fields Vector gives for ``line`` (absent groups left out, as Vector does), or NotParsed."""
    m = COMBINED.match(line)
    if m is None:
        raise NotParsed("failed parsing log line")
    out: dict[str, Any] = {}
    for name, value in m.groupdict().items():
        if value is None:
            continue
        if name in ("status", "size"):
            out[name] = int(value)
        elif name == "timestamp":
            try:
                out[name] = datetime.strptime(value, "%d/%b/%Y:%H:%M:%S %z")
            except ValueError:
                raise NotParsed(f"failed parsing timestamp {value}") from None
        else:
            out[name] = value
    return out
