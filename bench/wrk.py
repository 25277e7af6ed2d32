"""wrk: one load (a URL with headers, maybe a Lua script) run for some seconds, its output parsed,
the CPU and peak RSS of the processes under test measured around it."""

from __future__ import annotations

import argparse
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from bench import BenchError
from bench.measure import PeakRss, ProcSet

_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


@dataclass
class Load:
    """One wrk measurement: a URL through one of (a) direct, (b) nginx, (c) the gateway."""

    key: str
    group: str
    label: str
    via: str  # a | b | c
    url: str
    procset: ProcSet  # the processes under test: their CPU and RSS are the row's
    headers: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    body: bytes | None = None  # the sanity check POSTs it (with a script that sends a body)
    expect: int = 200  # the sanity check's status; from 400 on, 2xx/3xx answers count as errors
    note: str = ""
    watch: dict[str, ProcSet] = field(default_factory=dict)  # more processes (a limit store): CPU per request
    vs: str = ""  # the key of another load: the row notes its throughput relative to that one's


def parse_wrk(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if m:
            out[f"p{pct}_ms"] = float(m.group(1)) * _TIME[m.group(2)]
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?)B read", text)
    if not m:
        raise BenchError(f"cannot parse wrk output:\n{text}")
    out["requests"] = int(m.group(1))
    out["seconds"] = float(m.group(2)) * _TIME[m.group(3)] / 1000
    out["bytes"] = float(m.group(4)) * _SIZE[m.group(5)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else out["requests"] / out["seconds"]
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?)B", text)
    out["bytes_per_s"] = float(m.group(1)) * _SIZE[m.group(2)] if m else out["bytes"] / out["seconds"]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return out


class Wrk:
    """Runs loads with the run's -t/-c settings; also measures the upstream nginx's CPU per request."""

    def __init__(self, path: str, args: argparse.Namespace, upstream: ProcSet) -> None:
        self.path = path
        self.args = args
        self.upstream = upstream

    def run(self, load: Load, duration: float) -> dict[str, Any]:
        a = self.args
        cmd = [self.path, f"-t{a.threads}", f"-c{a.connections}", f"-d{max(1, round(duration))}s", "--latency",
               "--timeout", "10s"]
        for k, v in load.headers.items():
            cmd += ["-H", f"{k}: {v}"]
        if load.script:
            cmd += ["-s", load.script]
        cmd.append(load.url)
        cpu0, up0 = load.procset.cpu(), self.upstream.cpu()
        watched0 = {name: ps.cpu() for name, ps in load.watch.items()}
        with PeakRss(load.procset) as peak:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        cpu1, up1 = load.procset.cpu(), self.upstream.cpu()
        watched1 = {name: ps.cpu() for name, ps in load.watch.items()}
        if proc.returncode != 0:
            raise BenchError(f"wrk failed ({proc.returncode}) for {load.key}: {proc.stderr.strip()}")
        r = parse_wrk(proc.stdout)
        n = max(r["requests"], 1)
        r["cpu_us_per_req"] = (cpu1 - cpu0) / n * 1e6
        r["upstream_cpu_us_per_req"] = (up1 - up0) / n * 1e6
        for name in load.watch:
            r[f"{name}_cpu_us_per_req"] = (watched1[name] - watched0[name]) / n * 1e6
        r["peak_rss_mb"] = peak.peak / 2 ** 20
        # wrk counts answers outside 2xx/3xx: errors when a success is expected, the good ones otherwise
        unexpected = r["non_2xx"] if load.expect < 400 else r["requests"] - r["non_2xx"]
        r["errors"] = unexpected + r["socket_errors"]
        return r
