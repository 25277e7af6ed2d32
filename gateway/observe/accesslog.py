"""The access log: one line per request on stdout, JSON or nginx's combined format (Envoy's line,
which the self-hosted stack's Vector parses), written in batches. Every field is a fixed or
validated token or goes through gateway.observe.redact: no key, JWT or admin token ever lands in it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

from gateway.clock import Batched
from gateway.observe.redact import redact, redact_query


class AccessLog(Batched):
    """JSON lines on stdout, written in batches (every 0.2 s, or 512 lines) instead of one
    write per request: the per-request cost is building the line."""

    FLUSH_SECONDS = 0.2
    MAX_PENDING = 512

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.MAX_PENDING:
            self.flush()
        else:
            self.schedule()

    def flush(self) -> None:
        self.unschedule()
        if self.lines:
            data = "".join(self.lines)
            self.lines.clear()
            try:
                sys.stdout.write(data)
                sys.stdout.flush()
            except (OSError, ValueError):  # stdout gone: access lines are not worth a crash
                pass

    def stamp(self, now: float) -> str:
        """ISO time in UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(now * 1000) % 1000:03d}Z"


ACCESS = AccessLog()


_HEADS: dict[tuple[str, str], str] = {}  # (method, path) -> that part of a JSON line
_TAILS: dict[tuple[Any, ...], str] = {}  # (service, role, key, upstream, limit) -> the line's end
_PARTS_MAX = 4096


def _part(cache: dict[Any, str], key: Any, value: str) -> str:
    if len(cache) >= _PARTS_MAX:
        cache.clear()
    cache[key] = value
    return value


def _line_head(method: str, path: str) -> str:
    return f',"method":"{method}","path":{_json_str(path)},"status":'


def _line_tail(svc: str, role: str, key_id: str | None, prefix: str | None, upstream: str | None,
               limited: str | None) -> str:
    # Every field is a fixed or validated token (service, role name, uuid, base64url prefix).
    return (f',"service":"{svc}","role":"{role}","key_id":{_str(key_id)},"key_prefix":{_str(prefix)},'
            f'"upstream":{_str(upstream)}' + (f',"rate_limited":"{limited}"}}\n' if limited else "}\n"))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_TARGET = re.compile(r'[^!#-~]')  # a target is printable ASCII without '"' or spaces: else %XX
_NOT_QUOTABLE = re.compile(r'[^ !#-\[\]-~]')  # in a quoted field: '"', '\\' and the rest as \xHH
_NOT_WORD = re.compile(r"\W")


def combined_time(now: float) -> str:
    """``06/Dec/2026:14:27:24 +0000``: what ``%d/%b/%Y:%T %z`` reads, in UTC, locale-free."""
    t = time.gmtime(now)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def combined_target(path: str, query: str) -> str:
    """The request target as the line shows it: keys, JWTs and apikey values taken out; bytes a
    target may not hold percent-encoded, so that it stays one token."""
    target = redact(path) + ("?" + redact_query(query) if query else "")
    return _NOT_TARGET.sub(lambda m: "".join(f"%{b:02X}" for b in _raw(m.group(0))), target)


def combined_quoted(value: str | None) -> str:
    """A header in double quotes (``"-"`` when absent or empty), redacted, escaped as nginx does."""
    if not value:
        return '"-"'
    value = redact(value) if "?" not in value else _redact_url(value)
    return '"' + _NOT_QUOTABLE.sub(lambda m: "".join(f"\\x{b:02X}" for b in _raw(m.group(0))), value) + '"'


def _raw(char: str) -> bytes:
    """The byte a character of a request stands for (heads are read as latin-1); a character
    percent-decoding made, in UTF-8."""
    return char.encode("latin-1") if ord(char) < 256 else char.encode("utf-8")


def _token(value: str | None) -> str:
    return "-" if not value else _NOT_TARGET.sub("_", value)


def _redact_url(url: str) -> str:
    head, _, query = url.partition("?")
    return redact(head) + "?" + redact_query(query)


def combined_line(client: str, now: float, method: str, path: str, query: str, protocol: str, status: int,
                  sent: int, referer: str | None, agent: str | None, key_id: str | None, role: str,
                  upstream: str | None, request_id: bytes | None = None) -> str:
    """``client - - [time] "METHOD target PROTOCOL" status bytes "referer" "agent" "gateway"``:
    Envoy's line for the stack's Vector (``parse_nginx_log(..., "combined")``), plus a last quoted
    field it accepts too (as nginx's optional one) with the key id, role, upstream and request id."""
    method = "GET" if method == "WEBSOCKET" else _NOT_WORD.sub("_", method) or "-"
    rid = "-" if request_id is None else request_id.decode()
    extra = f'"key_id={_token(key_id)} role={_token(role)} upstream={_token(upstream)} request_id={rid}"'
    return (f'{client or "-"} - - [{combined_time(now)}] "{method} {combined_target(path, query)} {protocol}" '
            f'{status} {sent} {combined_quoted(referer)} {combined_quoted(agent)} {extra}\n')


_PLAIN = re.compile(r'[ !#-\[\]-~]*').fullmatch  # printable ASCII but '"' and '\\': no escaping


def _json_str(value: str) -> str:
    return f'"{value}"' if _PLAIN(value) else json.dumps(value)


def _str(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'




def json_line(req: Any, duration: float) -> str:
    """A request's JSON line (``req``: gateway.observe.Recorded). The parts that repeat from request
    to request are built once (bounded caches), never from a path that quotes a key."""
    method, path = req.method, req.path
    head = _HEADS.get((method, path))
    if head is None:
        shown = redact(path)
        head = _line_head(method, shown)
        if shown is path:  # a path quoting a key (in any spelling) is never kept
            _part(_HEADS, (method, path), head)
    tail_key = (req.service, req.role, req.key_id, req.key_prefix, req.upstream, req.limited)
    tail = _TAILS.get(tail_key)
    if tail is None:
        tail = _part(_TAILS, tail_key, _line_tail(*tail_key))
    return (f'{{"time":"{ACCESS.stamp(time.time())}","request_id":"{req.id.decode()}"{head}{req.status},'
            f'"duration_ms":{duration * 1000:.3f}{tail}')
