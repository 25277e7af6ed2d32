"""The report: the table and the target check in Markdown (stdout and bench/results/latest.md),
everything measured in bench/results/<timestamp>.json, and the machine it ran on."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from bench import REPO, RESULTS, log, targets
from bench.results import Row


def fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown_table(rows: list[Row]) -> str:
    head = ("| scenario | via | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | c/b | notes |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---|\n")
    via = {"a": "a upstream", "b": "b nginx", "c": "c gateway"}
    lines = []
    for r in rows:
        lines.append(f"| {r.label} | {via.get(r.via, r.via)} | {fmt(r.rps, ',.0f')} | {fmt(r.p50_ms, '.2f')} | "
                     f"{fmt(r.p99_ms, '.2f')} | {fmt(r.cpu_us, ',.1f')} | {fmt(r.peak_rss_mb, ',.0f')} | "
                     f"{fmt(r.ratio, '.3f')} | {r.note} |")
    return head + "\n".join(lines) + "\n"


def machine_info(nginx: str, wrk: str) -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def out(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:
            return ""

    commit = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = bool(out(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "gateway"]))
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "nginx": out([nginx, "-v"]), "wrk": out([wrk, "-v"]),
        "commit": commit + ("+dirty" if dirty else ""),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write(rows: list[Row], facts: dict[str, Any], prof: dict[str, Any], info: dict[str, Any],
          args: argparse.Namespace) -> None:
    """The report on stdout, in bench/results/<timestamp>.json (everything) and latest.md."""
    table = markdown_table(rows)
    checks = targets.check(rows, facts)
    lines = [
        f"# Benchmark {info['date']}",
        "",
        f"Machine: {info['cpu']} · {info['cores']} cores · {info['memory_gb']} GB · Linux {info['kernel']} · "
        f"Python {info['python']} · {info['nginx']} · {info['wrk']} · gateway {info['commit']}",
        f"Load average at start: {info['load_avg_at_start']}",
        f"Command: `{' '.join(['python', 'bench/run.py'] + sys.argv[1:])}` — wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g} s per run, median of {args.rounds} round(s), alternating a/b/c within each round.",
        "",
        "(a) the nginx upstream direct, (b) nginx proxy_pass with upstream keepalive, (c) the gateway "
        f"(`gateway serve`, {facts.get('gateway_processes', '?')} processes: one worker per core and the supervisor, "
        "embedded PostgreSQL). CPU µs/req: CPU time of (a) the upstream nginx, (b) the proxy nginx, (c) all gateway "
        "processes, divided by requests. c/b: throughput relative to (b) for the same scenario.",
        "",
        table,
        "## Targets (issues 5, 10, 12, 15 and 20)",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {n} | {v} | {s} |" for n, v, s in checks],
        "",
    ]
    if prof.get("samples"):
        lines += ["## Where a gateway worker spends its time (py-spy, publishable GET)", "",
                  f"{prof['samples']} samples, {prof['rps_while_profiled']:,.0f} req/s while profiled. py-spy samples "
                  "wall-clock time of busy threads: a worker preempted inside a syscall (a socket write waking its "
                  "peer on a busy machine) counts toward the calling frame; the table's CPU µs/req is CPU time.", "",
                  "| self % | function |", "|---:|---|",
                  *[f"| {p} | `{fn}` |" for fn, p in prof["self"][:20]], "",
                  "| inclusive % | function |", "|---:|---|",
                  *[f"| {p} | `{fn}` |" for fn, p in prof["inclusive"][:25]], ""]
    md = "\n".join(lines)
    print("\n" + md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data = {
        "machine": info, "settings": vars(args), "facts": facts,
        "rows": [{k: v for k, v in r.__dict__.items()} for r in rows],
        "targets": [{"target": n, "measured": v, "result": s} for n, v, s in checks],
        "profile": prof,
    }
    (RESULTS / f"{stamp}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / "latest.md").write_text(md)
    log(f"wrote {RESULTS / (stamp + '.json')} and {RESULTS / 'latest.md'}")
