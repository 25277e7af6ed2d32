"""What an operator sees: one JSON access-log line per request, and Prometheus metrics.

Labels and log fields are chosen so that no key, JWT or admin token can ever land in them:
route service, status, role, key id and display prefix only; the path without its query.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

access_log = logging.getLogger("gateway.access")

REQUESTS = Counter(
    "gateway_requests_total", "Requests answered by the public listener", ["service", "status", "role"]
)
LATENCY = Histogram(
    "gateway_request_duration_seconds", "Time from request to response end, upstream included",
    ["service", "status", "role"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBSOCKETS = Counter("gateway_websocket_sessions_total", "WebSocket sessions proxied", ["service", "outcome"])


def record(
    method: str, path: str, service: str | None, status: int, started: float,
    role: str = "none", key_id: str | None = None, prefix: str | None = None, log: bool = True,
) -> None:
    duration = time.perf_counter() - started
    svc = service or "gateway"
    code = str(status)
    REQUESTS.labels(svc, code, role).inc()
    LATENCY.labels(svc, code, role).observe(duration)
    if log:
        now = time.time()  # one reading: seconds and milliseconds of the same instant
        access_log.info(json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "method": method, "path": path, "status": status, "duration_ms": round(duration * 1000, 3),
            "service": svc, "role": role, "key_id": key_id, "key_prefix": prefix,
        }, separators=(",", ":")))


def metrics_text() -> bytes:
    """All workers' metrics (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def setup_logging(level: str) -> None:
    """Plain lines on stderr for the gateway, bare JSON lines for the access log."""
    root = logging.getLogger("gateway")
    if getattr(root, "_gateway_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(access)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
    root._gateway_configured = True  # type: ignore[attr-defined]
