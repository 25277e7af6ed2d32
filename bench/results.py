"""A row of the table: one scenario through one of (a), (b), (c); wrk runs summed up into one
(medians over rounds) and ratios paired by round."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.measure import median
from bench.wrk import Load


@dataclass
class Row:
    group: str
    label: str
    via: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    peak_rss_mb: float | None = None
    ratio: float | None = None
    note: str = ""
    key: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


def summarize(load: Load, runs: list[dict[str, Any]], throughput: str = "rps") -> Row:
    """The row of a load's wrk runs; with ``throughput="bytes_per_s"`` the note shows MiB/s."""
    row = Row(load.group, load.label, load.via, key=load.key, note=load.note, runs=runs)
    row.rps = median([r["rps"] for r in runs])
    row.p50_ms = median([r.get("p50_ms") for r in runs])
    row.p99_ms = median([r.get("p99_ms") for r in runs])
    row.cpu_us = median([r["cpu_us_per_req"] for r in runs])
    row.peak_rss_mb = max(r["peak_rss_mb"] for r in runs)
    row.extra["bytes_per_s"] = median([r["bytes_per_s"] for r in runs])
    row.extra["errors"] = sum(r["errors"] for r in runs)
    row.extra["requests"] = sum(r["requests"] for r in runs)
    row.extra["upstream_cpu_us_per_req"] = median([r["upstream_cpu_us_per_req"] for r in runs])
    for name in load.watch:
        row.extra[f"{name}_cpu_us_per_req"] = median([r[f"{name}_cpu_us_per_req"] for r in runs])
        row.add_note(f"{name} CPU {row.extra[f'{name}_cpu_us_per_req']:.1f} µs/req")
    if throughput == "bytes_per_s":
        row.add_note(f"{row.extra['bytes_per_s'] / 2 ** 20:,.0f} MiB/s")
    if row.extra["errors"]:
        row.add_note(f"ERRORS: {row.extra['errors']}")
    return row


def paired_ratio(row: Row, base: Row, metric: str = "rps") -> float | None:
    """Median over rounds of row/base for ``metric`` (runs of the same round are adjacent in time)."""
    pairs = [r[metric] / b[metric] for r, b in zip(row.runs, base.runs) if b.get(metric)]
    return statistics.median(pairs) if pairs else None
