"""Process control: every child in its own process group, stopped with it; tools on PATH; waiting
for a URL to answer."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from bench import BenchError, log


def find_tool(name: str) -> str | None:
    """``name`` on PATH, or in the sbin folders a non-root PATH may lack (nginx)."""
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/local/sbin") / name) if p.exists()), None)


class Processes:
    """Every child in its own process group; stop() ends the group, stop_all() everything."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[bytes], int]] = []

    def start(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              out: Path | None = None, err: Path | None = None,
              stop_signal: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
        """``out`` takes stdout, ``err`` stderr (default: ``out`` with the suffix ``.err``)."""
        if out is not None and err is None:
            err = out.with_suffix(".err")
        files: list[IO[bytes]] = []
        try:
            stdout, stderr = (_open(path, files) for path in (out, err))
            p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                 start_new_session=True)
        finally:
            for f in files:
                f.close()
        self.items.append((name, p, stop_signal))
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 20) -> None:
        sig = next((s for _, q, s in self.items if q is p), signal.SIGTERM)
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} did not stop in {timeout:.0f}s: killing its process group")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # leftovers (workers) of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)
        self.items = [it for it in self.items if it[1] is not p]

    def stop_all(self) -> None:
        for _name, p, _sig in reversed(list(self.items)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                log(f"could not stop pid {p.pid}: {e}")


def _open(path: Path | None, files: list[IO[bytes]]) -> IO[bytes] | int:
    if path is None:
        return subprocess.DEVNULL
    f = open(path, "ab")
    files.append(f)
    return f


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the environment


def http_request(url: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                 timeout: float = 5) -> tuple[int, bytes]:
    """GET (POST with ``body``): status and body, also for error statuses."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="GET" if body is None else "POST")
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, interval: float = 0.01) -> float:
    """Seconds until ``url`` answers 200; BenchError when ``proc`` exits or time runs out."""
    t0 = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process for {url} exited with {proc.returncode}")
        try:
            if http_request(url, timeout=1)[0] == 200:
                return time.monotonic() - t0
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{url} not healthy after {timeout:.0f}s")
        time.sleep(interval)
