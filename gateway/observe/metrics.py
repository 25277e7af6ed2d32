"""The Prometheus metrics: requests and their latency (summed in plain Python and handed over once
a second), rate-limited requests, upstream connect errors and retries, WebSocket sessions, the
key ring, the rate-limit store's exchange.

Every label value is bounded by the configuration: services and upstreams are names from the
code or the configured upstreams, roles the configured ones, statuses HTTP codes. No path, key,
token or address is ever a label value.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from gateway.clock import Batched

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
# The rate-limit exchange of each worker (gateway.rules.limitstore.LimitSync): no labels at all.
LIMIT_SYNC = Gauge("gateway_limit_sync_seconds", "Seconds between a worker's last two successful exchanges with the "
                   "rate-limit store (since the last one, while they fail): about limits.sync_ms when all is well; "
                   "the largest over the workers", multiprocess_mode="livemax")
LIMIT_SYNC_DURATION = Gauge("gateway_limit_sync_duration_seconds", "Seconds a worker's last exchange with the "
                            "rate-limit store took; the largest over the workers", multiprocess_mode="livemax")
LIMIT_SYNC_LATE = Counter("gateway_limit_sync_late_total", "Exchanges with the rate-limit store that failed or came "
                          "more than three sync intervals after the previous successful one")
LIMIT_COUNTERS = Gauge("gateway_limit_counters", "Rate-limit counters held in memory, summed over the workers",
                       multiprocess_mode="livesum")


class Tallies(Batched):
    """Request counts and latency buckets summed in plain Python, handed to prometheus-client
    once a second: its multiprocess values lock and write an mmap on every increment, which
    the request path should not pay."""

    FLUSH_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.bounds = list(LATENCY._upper_bounds)  # the histogram's buckets, +Inf last
        self.pending: dict[tuple[str, ...], list[Any]] = {}
        self.limited: dict[str, int] = {}  # rate-limit scope -> refusals
        self.children: dict[tuple[str, ...], tuple[Any, tuple[str, ...]]] = {}  # labels -> counter, latency labels
        self.histograms: dict[tuple[str, ...], Any] = {}

    def add(self, labels: tuple[str, ...], duration: float, limited: str | None = None) -> None:
        if limited is not None:
            self.limited[limited] = self.limited.get(limited, 0) + 1
        tally = self.pending.get(labels)
        if tally is None:
            tally = self.pending[labels] = [0, 0.0, [0] * len(self.bounds)]
        tally[0] += 1
        tally[1] += duration
        tally[2][bisect_left(self.bounds, duration)] += 1
        self.schedule()

    def flush(self) -> None:
        self.unschedule()
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


def limit_sync(sync: Any) -> None:
    """After each exchange with the rate-limit store (``LimitSync.report``): its lag."""
    LIMIT_SYNC.set(sync.gap)
    LIMIT_SYNC_DURATION.set(sync.last_duration)
    LIMIT_COUNTERS.set(len(sync.limiter.counters))
    if sync.last_late:
        LIMIT_SYNC_LATE.inc()


def metrics_text() -> bytes:
    """All workers' metrics (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set); other
    workers' last second may still be on its way."""
    TALLIES.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
