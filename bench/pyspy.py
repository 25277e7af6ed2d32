"""``--profile``: py-spy on every worker of the main gateway during a publishable GET run, summed
up into the functions where the samples fall (self and inclusive)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import RESULTS, log
from bench.scenario import Context
from bench.wrk import Load

# Frames every sample has (process start, event loop): left out of the inclusive ranking.
_BOOT = re.compile(r"\((?:asyncio/runners\.py|uvloop/__init__\.py|<frozen runpy>|<string>)|"
                   r"^(?:run|run_worker) \(gateway/server\.py\)|^(?:<module>|worker|main) \(gateway/child\.py\)")


def profile(ctx: Context) -> dict[str, Any]:
    """The summary, with the raw stacks left in bench/results/; {} without py-spy."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        log("--profile: py-spy not found (pip install py-spy); skipped")
        return {}
    gw, duration, procs = ctx.gw, ctx.args.duration, ctx.stack.procs
    assert gw.procset is not None
    load = Load("profile", "get", "publishable key GET (profiled)", "c", gw.url + "/rest/v1/items", gw.procset,
                {"apikey": ctx.pub})
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    spies, files = [], []
    for pid in gw.worker_pids():
        raw = RESULTS / f"{stamp}-profile-{pid}.txt"
        files.append(raw)
        # The compiled build's functions are C: --native shows them (py-spy then pauses the worker
        # for each sample, so the throughput while profiled is lower; the shares stay).
        how = ["--native"] if ctx.stack.build == "compiled" else ["--nonblocking"]
        spies.append(procs.start("py-spy", [pyspy, "record", "--pid", str(pid), "--duration", str(int(duration)),
                                            "--rate", "200", "--format", "raw", "--output", str(raw), *how],
                                 out=ctx.stack.tmp / f"py-spy-{pid}.log"))
    time.sleep(1.0)
    r = ctx.wrk.run(load, duration)
    for p in spies:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(30)
        procs.stop(p)
    summary = summarize([f for f in files if f.exists()])
    summary["rps_while_profiled"] = r["rps"]
    summary["files"] = [str(f) for f in files if f.exists()]
    return summary


def summarize(files: list[Path], top: int = 25) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> share of samples by function, self and inclusive."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for f in files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            c = int(count)
            total += c
            frames = [fr.strip() for fr in stack.split(";") if fr.strip()]
            # drop the line numbers py-spy adds so that a function is one entry
            frames = [re.sub(r":\d+\)$", ")", fr) for fr in frames]
            frames = [fr for fr in frames if not _BOOT.search(fr)]
            if frames:
                self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + c

    def top_of(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": total, "self": top_of(self_c) if total else [], "inclusive": top_of(incl) if total else []}
