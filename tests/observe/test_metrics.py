"""gateway.observe.metrics: requests and latencies batched in plain Python reach prometheus-client
exactly as one call per request would have; the latency histogram's labels are fewer."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from gateway.observe.metrics import TALLIES, status_class


def test_request_tallies_reach_the_prometheus_histogram_whole():
    """Batched metrics are exactly what per-request observe() calls would have recorded."""
    counted = {"service": "tally", "status": "200", "role": "anon", "upstream": "rest"}
    timed = {"service": "tally", "upstream": "rest", "status_class": "2xx"}

    def value(name: str, **extra: str) -> float:
        labels = counted if name == "gateway_requests_total" else timed
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    before = (value("gateway_requests_total"), value("gateway_request_duration_seconds_count"),
              value("gateway_request_duration_seconds_bucket", le="0.001"))
    for duration in (0.0004, 0.0009, 0.2):
        TALLIES.add(("tally", "200", "anon", "rest"), duration)
    TALLIES.flush()
    assert value("gateway_requests_total") - before[0] == 3
    assert value("gateway_request_duration_seconds_count") - before[1] == 3
    assert value("gateway_request_duration_seconds_bucket", le="0.001") - before[2] == 2
    assert value("gateway_request_duration_seconds_bucket", le="0.25") - before[2] >= 3


@pytest.mark.parametrize(("status", "klass"), [("200", "2xx"), ("101", "1xx"), ("503", "5xx"), ("499", "4xx"),
                                                ("600", "other"), ("2xx", "other"), ("", "other")])
def test_status_classes(status, klass):
    assert status_class(status) == klass
