"""The gateway under test: the test suite's ``Gateway`` started as production would run it (clean
environment, its default workers, bytecode caches), timed to its first healthy answer and to every
worker accepting, and stopped with its process group."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from bench import BenchError
from bench.measure import ProcSet
from bench.process import Processes, wait_http
from tests.helpers import Gateway, gateway_cmd

# Environment names the gateway reads besides GATEWAY_*: never inherited by the processes we start.
GATEWAY_ALIASES = ("DATABASE_URL", "JWT_SECRET", "JWT_KEYS", "ANON_KEY", "SERVICE_ROLE_KEY")


@dataclass(kw_only=True)
class BenchGateway(Gateway):
    """``gateway serve`` under the run's Processes; ``workers=None`` leaves the gateway's default."""

    name: str
    procs: Processes
    workers: int | None = None  # type: ignore[assignment]
    startup_s: float = 0.0
    all_ready_s: float | None = None
    procset: ProcSet | None = None

    def environment(self, inherited: Mapping[str, str] | None = None) -> dict[str, str]:
        """By default ours without the gateway's settings, nor PYTHONDONTWRITEBYTECODE: production
        images ship compiled bytecode, so the first start writes it and start-up times do not
        include compiling every module in every process."""
        if inherited is None:
            inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")
                         and k not in GATEWAY_ALIASES and k != "PYTHONDONTWRITEBYTECODE"}
        env = super().environment(inherited)
        if self.workers is None:
            del env["GATEWAY_SERVER__WORKERS"]
        return env

    def start(self, timeout: float = 60) -> "BenchGateway":
        self.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        # The access log (stdout) goes to a file, as a container's log driver would take it.
        self.proc = self.procs.start(self.name, gateway_cmd("serve"), env=self.environment(), cwd=self.workdir,
                                     out=self.workdir / "stdout.log", err=self.workdir / "stderr.log")
        try:
            wait_http(self.url + "/health", timeout, self.proc, interval=0.005)
            self.startup_s = time.monotonic() - t0
            self.procset = ProcSet(self.name, self.proc.pid)
            self.all_ready_s = self._wait_all_workers(t0, timeout)
            wait_http(self.admin_url + "/health", timeout, self.proc)
        except BenchError:
            raise BenchError(f"gateway {self.name} did not start:\n{self.logs().strip()[-3000:]}") from None
        return self

    def new_key(self, key_type: str, name: str, **body: Any) -> str:
        """A key made over the admin API (``body``: more fields, e.g. ``limits``); its plaintext."""
        try:
            return self.create_key(key_type, name, **body)["api_key"]
        except (AssertionError, httpx.HTTPError) as e:
            raise BenchError(f"gateway {self.name}: creating a key failed: {e}") from None

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        self.procs.stop(self.proc, timeout)
        return self.proc.returncode

    def worker_pids(self) -> list[int]:
        assert self.procset is not None and self.proc is not None
        return [p.pid for p in self.procset.procs()
                if p.pid != self.proc.pid and "resource_tracker" not in " ".join(_cmdline(p))]

    def _wait_all_workers(self, t0: float, timeout: float) -> float | None:
        """Seconds from spawn until every worker accepts on the public socket: a worker polls the
        listening socket (it is in its epoll set, /proc/PID/fdinfo) once its key ring is loaded.
        None where /proc cannot tell."""
        assert self.proc is not None
        want = self.workers or os.cpu_count() or 1
        inode = _listen_inode(self.proc.pid, self.port)
        if inode is None:
            return None
        while time.monotonic() - t0 < timeout:
            ready = sum(_polls_inode(pid, inode) for pid in (self.worker_pids() or [self.proc.pid]))
            if ready >= want:
                return time.monotonic() - t0
            time.sleep(0.005)
        return None


def _listen_inode(pid: int, port: int) -> int | None:
    try:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.fd != -1:
                return os.stat(f"/proc/{pid}/fd/{c.fd}").st_ino
    except (OSError, psutil.Error):
        pass
    return None


def _polls_inode(pid: int, inode: int) -> bool:
    """Is the socket ``inode`` registered in one of ``pid``'s epoll instances?"""
    try:
        fds, epolls = set(), []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == f"socket:[{inode}]":
                fds.add(fd)
            elif target == "anon_inode:[eventpoll]":
                epolls.append(fd)
        for ep in epolls:
            with open(f"/proc/{pid}/fdinfo/{ep}") as f:
                for line in f:
                    if line.startswith("tfd:") and line.split()[1] in fds:
                        return True
    except OSError:
        pass
    return False


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except Exception:
        return []
