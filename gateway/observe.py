"""What an operator sees: one access-log line per request, and Prometheus metrics.

Labels and log fields are chosen so that no key, JWT or admin token can ever land in them:
route service, status, role, key id and display prefix only; the path without its query. With
``log.format = "combined"`` the line is Envoy's (nginx's combined format, which the self-hosted
stack's Vector parses), its path and query, referer and user agent redacted (``combined_line``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from bisect import bisect_left
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# Every label value is bounded by the configuration: services and upstreams are names from the
# code or the configured upstreams, roles the configured ones, statuses HTTP codes. No path, key,
# token or address is ever a label value.
LABELS = ["service", "status", "role", "upstream"]  # upstream: rest, rest_replica_1, ...; none: not forwarded
REQUESTS = Counter("gateway_requests_total", "Requests answered by the public listener", LABELS)
LATENCY_LABELS = ["service", "upstream", "status_class"]  # status_class: 1xx ... 5xx
LATENCY = Histogram(
    "gateway_request_duration_seconds", "Time from request to response end, upstream included", LATENCY_LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBSOCKETS = Counter("gateway_websocket_sessions_total", "WebSocket sessions proxied", ["service", "outcome"])
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by a rate limit", ["scope"])
# Rare events, counted where they happen (not batched: they cost nothing on a healthy request).
UPSTREAM_CONNECT_ERRORS = Counter("gateway_upstream_connect_errors_total",
                                  "New connections to an upstream that failed or timed out", ["upstream"])
UPSTREAM_RETRIES = Counter("gateway_upstream_retries_total",
                           "Reads sent on to another target after this one failed before answering", ["upstream"])
# Set by each worker's key ring (gateway.keys.ring). Across workers: the largest ring, and the
# oldest reload and check, so that one worker out of step shows; a dead worker's values are
# dropped by the supervisor (``live``).
KEY_RING_KEYS = Gauge("gateway_key_ring_keys", "Keys in a worker's key ring (the largest of the workers)",
                      multiprocess_mode="livemax")
KEY_RING_RELOADED = Gauge("gateway_key_ring_last_reload_timestamp_seconds",
                          "When the key ring was last read whole from the database (the oldest of the workers)",
                          multiprocess_mode="livemin")
KEY_RING_CHECKED = Gauge("gateway_key_ring_last_check_timestamp_seconds",
                         "When the key ring was last found in step with the database, by a full reload or the "
                         "periodic check (the oldest of the workers)", multiprocess_mode="livemin")


def key_ring_reloaded() -> None:
    """A worker's key ring was read whole (which is also a check)."""
    now = time.time()
    KEY_RING_RELOADED.set(now)
    KEY_RING_CHECKED.set(now)


def key_ring_checked() -> None:
    """The periodic check found the key table as the ring has it."""
    KEY_RING_CHECKED.set(time.time())


def status_class(status: str) -> str:
    """``200`` -> ``2xx``; anything that is no HTTP status -> ``other``."""
    return f"{status[0]}xx" if len(status) == 3 and status[0] in "12345" and status.isdigit() else "other"
# The rate-limit exchange of each worker (gateway.rules.limitstore.Exchanger): no labels at all.
LIMIT_SYNC = Gauge("gateway_limit_sync_seconds", "Seconds between a worker's last two successful exchanges with the "
                   "rate-limit store (since the last one, while they fail): about limits.sync_ms when all is well; "
                   "the largest over the workers", multiprocess_mode="livemax")
LIMIT_SYNC_DURATION = Gauge("gateway_limit_sync_duration_seconds", "Seconds a worker's last exchange with the "
                            "rate-limit store took; the largest over the workers", multiprocess_mode="livemax")
LIMIT_SYNC_LATE = Counter("gateway_limit_sync_late_total", "Exchanges with the rate-limit store that failed or came "
                          "more than three sync intervals after the previous successful one")
LIMIT_COUNTERS = Gauge("gateway_limit_counters", "Rate-limit counters held in memory, summed over the workers",
                       multiprocess_mode="livesum")


class AccessLog:
    """JSON lines on stdout, written in batches (every 0.2 s, or 512 lines) instead of one
    write per request: the per-request cost is building the line."""

    FLUSH_SECONDS = 0.2
    MAX_PENDING = 512

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.MAX_PENDING:
            self.flush()
        elif self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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


class Tallies:
    """Request counts and latency buckets summed in plain Python, handed to prometheus-client
    once a second: its multiprocess values lock and write an mmap on every increment, which
    the request path should not pay."""

    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        self.bounds = list(LATENCY._upper_bounds)  # the histogram's buckets, +Inf last
        self.pending: dict[tuple[str, ...], list[Any]] = {}
        self.limited: dict[str, int] = {}  # rate-limit scope -> refusals
        self.children: dict[tuple[str, ...], tuple[Any, tuple[str, ...]]] = {}  # labels -> counter, latency labels
        self.histograms: dict[tuple[str, ...], Any] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, labels: tuple[str, ...], duration: float, limited: str | None = None) -> None:
        if limited is not None:
            self.limited[limited] = self.limited.get(limited, 0) + 1
        tally = self.pending.get(labels)
        if tally is None:
            tally = self.pending[labels] = [0, 0.0, [0] * len(self.bounds)]
        tally[0] += 1
        tally[1] += duration
        tally[2][bisect_left(self.bounds, duration)] += 1
        if self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, {}
        limited, self.limited = self.limited, {}
        for scope, n in limited.items():
            RATE_LIMITED.labels(scope).inc(n)
        latency: dict[tuple[str, ...], list[Any]] = {}  # the histogram's labels are fewer: sum into them
        for labels, (count, total, buckets) in pending.items():
            children = self.children.get(labels)
            if children is None:
                service, status, _role, upstream = labels
                children = self.children[labels] = (REQUESTS.labels(*labels),
                                                    (service, upstream, status_class(status)))
            counter, key = children
            counter.inc(count)
            summed = latency.get(key)
            if summed is None:
                latency[key] = [total, list(buckets)]
            else:
                summed[0] += total
                summed[1] = [a + b for a, b in zip(summed[1], buckets)]
        for key, (total, buckets) in latency.items():
            histogram = self.histograms.get(key)
            if histogram is None:
                histogram = self.histograms[key] = LATENCY.labels(*key)
            histogram._sum.inc(total)  # what Histogram.observe does, for a batch
            for i, n in enumerate(buckets):
                if n:
                    histogram._buckets[i].inc(n)


TALLIES = Tallies()


def limit_sync(exchanger: Any) -> None:
    """After each exchange with the rate-limit store (the Exchanger's ``report``): its lag."""
    LIMIT_SYNC.set(exchanger.gap)
    LIMIT_SYNC_DURATION.set(exchanger.last_duration)
    LIMIT_COUNTERS.set(len(exchanger.limiter.counters))
    if exchanger.last_late:
        LIMIT_SYNC_LATE.inc()


_STATUS = {code: str(code) for code in range(100, 600)}
_HEADS: dict[tuple[str, str], str] = {}  # (method, path) -> that part of an access line
_TAILS: dict[tuple[Any, ...], str] = {}  # (service, role, key, upstream, limit) -> the line's end
_PARTS_MAX = 4096


def record(
    method: str, path: str, service: str | None, status: int, started: float,
    role: str = "none", key_id: str | None = None, prefix: str | None = None, log: bool = True,
    limited: str | None = None, upstream: str | None = None, request_id: bytes | None = None,
) -> None:
    duration = time.perf_counter() - started
    svc = service or "gateway"
    TALLIES.add((svc, _STATUS.get(status) or str(status), role, upstream or "none"), duration, limited)
    if log:
        # The parts that repeat from request to request are built once (bounded caches).
        head = _HEADS.get((method, path))
        if head is None:
            shown = redact(path)
            head = _line_head(method, shown)
            if shown is path:  # a path quoting a key (in any spelling) is never kept
                _part(_HEADS, (method, path), head)
        tail_key = (svc, role, key_id, prefix, upstream, limited)
        tail = _TAILS.get(tail_key)
        if tail is None:
            tail = _part(_TAILS, tail_key, _line_tail(*tail_key))
        rid = "null" if request_id is None else f'"{request_id.decode()}"'  # a UUID: nothing to escape
        ACCESS.add(f'{{"time":"{ACCESS.stamp(time.time())}","request_id":{rid}{head}{status},'
                   f'"duration_ms":{duration * 1000:.3f}{tail}')


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


_SECRETS = re.compile(r"sb_[A-Za-z0-9]+_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")


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
    if "sb_" not in path and "eyJ" not in path:
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


def metrics_text() -> bytes:
    """All workers' metrics (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set); other
    workers' last second may still be on its way."""
    TALLIES.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
