"""Measuring processes: CPU time and memory of a process tree, peak RSS sampled while a load runs,
medians and quantiles."""

from __future__ import annotations

import contextlib
import statistics
import threading
from pathlib import Path
from typing import Any

import psutil


class ProcSet:
    """A process and its descendants (Postgres excluded, unless ``skip`` says otherwise): CPU time
    and RSS."""

    def __init__(self, name: str, pid: int, skip: tuple[str, ...] = ("postgres", "pg_ctl")) -> None:
        self.name = name
        self.root = psutil.Process(pid)
        self.skip = skip

    def procs(self) -> list[psutil.Process]:
        try:
            out = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in out if _name(p) not in self.skip]

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs():
            with contextlib.suppress(Exception):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        return sum(self.rss_each())

    def rss_each(self) -> list[int]:
        out = []
        for p in self.procs():
            with contextlib.suppress(Exception):
                out.append(p.memory_info().rss)
        return out

    def memory(self) -> dict[str, float]:
        """Summed RSS, PSS (shared pages split between processes) and USS, in MB."""
        out = {"rss_mb": 0.0, "pss_mb": 0.0, "uss_mb": 0.0}
        for p in self.procs():
            with contextlib.suppress(Exception):
                m = p.memory_full_info()
                out["rss_mb"] += m.rss / 2 ** 20
                out["pss_mb"] += getattr(m, "pss", 0) / 2 ** 20
                out["uss_mb"] += m.uss / 2 ** 20
        return {k: round(v, 1) for k, v in out.items()}

    def peak_rss(self) -> int:
        """Sum of each process's own peak RSS (VmHWM) since it started, in bytes."""
        total = 0
        for p in self.procs():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        return total


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except Exception:
        return ""


class PeakRss:
    """Samples a ProcSet's summed RSS every 50 ms in a thread; ``peak`` in bytes."""

    def __init__(self, ps: ProcSet) -> None:
        self.ps = ps
        self.peak = ps.rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.ps.rss())

    def __enter__(self) -> "PeakRss":
        self._t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.ps.rss())


def median(xs: list[float | None]) -> float | None:
    """The median of the values that are there; None when none is."""
    present = [x for x in xs if x is not None]
    return statistics.median(present) if present else None


def quantile(xs: list[float], p: float) -> float:
    """The value below which a share ``p`` of ``xs`` lies (nearest rank, no interpolation)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]
