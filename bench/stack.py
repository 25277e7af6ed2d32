"""What a run starts: the nginx upstream and proxy, the WebSocket echo, an embedded PostgreSQL,
gateways on it (one, or N instances on one database), a redis-server, more nginx upstreams like
the first (read replicas); close() stops them all. It also counts what an upstream served under
/counted/."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import HERE, BenchError, log
from bench.gateways import BenchGateway
from bench.measure import ProcSet
from bench.nginx import COUNTED_LOG, proxy_conf, start_nginx, upstream_conf
from bench.process import Processes, find_tool, wait_http
from gateway.keys.db import DatabaseError, EmbeddedPostgres
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, REPO, create_database, free_port, run_cli

BIG_BYTES = 10 * 1024 * 1024  # /big.bin on the upstream
# What a gateway's start-up line says of its build (gateway.build_info).
BUILD_SAID = {"compiled": "(compiled request path (mypyc))", "pure": "(pure Python)"}


@dataclass(frozen=True)
class Upstream:
    """One more nginx upstream like the first (``Stack.upstream``): its URL, its processes, its /counted/ log."""

    name: str
    url: str
    ps: ProcSet
    counted_log: Path


class Stack:
    """Every process of a run under one Processes and one temp dir."""

    def __init__(self, nginx: str, workers: int | None = None, keep_tmp: bool = False, build: str = "compiled") -> None:
        self.nginx = nginx
        self.workers = workers  # for gateways not told otherwise; None: the gateway's default
        self.build = build  # of gateways not told otherwise: "compiled" or "pure" (docs/builds.md)
        self._compiled: str | None = None
        self.keep_tmp = keep_tmp
        self.procs = Processes()
        self.tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
        self.pg: EmbeddedPostgres | None = None
        self.server_dsn = ""
        self.dsn = ""  # the run's database: every gateway's unless told otherwise
        self.pg_ps: ProcSet | None = None  # the PostgreSQL server, backends included
        self.redis_ps: dict[str, ProcSet] = {}
        self._redis_urls: dict[str, str] = {}
        self._upstreams: dict[str, Upstream] = {}

    def start(self) -> None:
        """The nginx upstream, the nginx proxy in front of it, the WebSocket echo and PostgreSQL."""
        self.up_port, self.proxy_port, self.ws_port = free_port(), free_port(), free_port()
        self.upstream_url = f"http://127.0.0.1:{self.up_port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.ws_echo_url = f"http://127.0.0.1:{self.ws_port}"
        up_prefix = self.tmp / "nginx-upstream"
        self.counted_log = up_prefix / COUNTED_LOG
        (up_prefix / "www").mkdir(parents=True)
        with open(up_prefix / "www" / "big.bin", "wb") as f:
            f.write(os.urandom(BIG_BYTES))
        log(f"temp dir {self.tmp}; starting nginx upstream :{self.up_port}, nginx proxy :{self.proxy_port}, "
            f"WebSocket echo :{self.ws_port}")
        up = start_nginx(self.procs, self.nginx, up_prefix, upstream_conf(up_prefix, self.up_port),
                         self.upstream_url + "/ping", "nginx-upstream")
        px_prefix = self.tmp / "nginx-proxy"
        px = start_nginx(self.procs, self.nginx, px_prefix, proxy_conf(px_prefix, self.proxy_port, self.up_port,
                                                                       self.ws_port),
                         self.proxy_url + "/rest/v1/ping", "nginx-proxy")
        ws = self.procs.start("ws-echo", [sys.executable, str(HERE / "ws_echo.py"), str(self.ws_port)],
                              out=self.tmp / "ws-echo.log")
        wait_http(self.ws_echo_url + "/health", 20, ws)
        self.upstream_ps = ProcSet("nginx-upstream", up.pid)
        self.proxy_ps = ProcSet("nginx-proxy", px.pid)
        self.ws_ps = ProcSet("ws-echo", ws.pid)
        log("starting embedded PostgreSQL")
        self.pg = EmbeddedPostgres(self.tmp / "pg")
        try:
            self.server_dsn = self.pg.start()
        except DatabaseError as e:
            raise BenchError(str(e)) from None
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int((self.tmp / "pg" / "pgdata" / "postmaster.pid").read_text().split()[0])
            self.pg_ps = ProcSet("postgres", pid, skip=())
        self.dsn = self.database()

    def upstream_served(self, path: str, upstream: Upstream | None = None) -> int:
        """How many requests for ``path`` (under /counted/) the nginx upstream (or ``upstream``) has answered."""
        counted = upstream.counted_log if upstream is not None else self.counted_log
        if not counted.exists():
            return 0
        with open(counted, "rb") as f:
            return sum(line.rstrip(b"\n") == path.encode() for line in f)

    def upstream(self, name: str) -> Upstream:
        """Another nginx upstream like the first (the same small JSON on any path, its own
        /counted/ log) on a free port: started on the first call for ``name``, after that the same."""
        if name in self._upstreams:
            return self._upstreams[name]
        port, prefix = free_port(), self.tmp / name
        (prefix / "www").mkdir(parents=True)
        url = f"http://127.0.0.1:{port}"
        p = start_nginx(self.procs, self.nginx, prefix, upstream_conf(prefix, port), url + "/ping", name)
        self._upstreams[name] = Upstream(name, url, ProcSet(name, p.pid), prefix / COUNTED_LOG)
        return self._upstreams[name]

    def database(self, migrated: bool = False) -> str:
        """A fresh database on the server; with ``migrated``, the gateway's tables in it."""
        dsn = create_database(self.server_dsn)
        if migrated:
            done = run_cli("migrate", env={"GATEWAY_DATABASE_URL": dsn})
            if done.returncode != 0:
                raise BenchError(f"gateway migrate failed: {done.stderr.strip()}")
        return dsn

    def compiled(self) -> str:
        """The compiled build's directory (scripts/build-compiled, out of the source tree: built
        on the first call, again only when a source changed)."""
        if self._compiled is None:
            log("building the compiled request path (scripts/build-compiled)")
            done = subprocess.run([str(REPO / "scripts" / "build-compiled")], capture_output=True, text=True,
                                  env={**os.environ, "PYTHON": sys.executable})
            if done.returncode != 0:
                raise BenchError(f"the compiled build failed:\n{done.stderr.strip()[-2000:]}")
            self._compiled = done.stdout.strip()
        return self._compiled

    def gateway(self, name: str, *, dsn: str | None = None, access_log: bool = True, workers: int | None = None,
                env: dict[str, str] | None = None, build: str | None = None) -> BenchGateway:
        """A started ``gateway serve`` on ``dsn`` (default: the run's database) in front of the nginx
        upstream and the echo server; ``env`` adds or overrides GATEWAY_* settings; ``build``: the
        run's unless given."""
        build = build or self.build
        python_path = {"PYTHONPATH": self.compiled()} if build == "compiled" else {}
        g = BenchGateway(env={
            "GATEWAY_DATABASE_URL": dsn or self.dsn,
            "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
            "GATEWAY_JWT__SECRET": JWT_SECRET,
            "GATEWAY_UPSTREAMS__REST": self.upstream_url,
            "GATEWAY_UPSTREAMS__STORAGE": self.upstream_url,
            "GATEWAY_UPSTREAMS__FUNCTIONS": self.upstream_url,
            "GATEWAY_UPSTREAMS__REALTIME": self.ws_echo_url,
            "GATEWAY_LOG__ACCESS": "true" if access_log else "false",
            **python_path,
            **(env or {}),
        }, name=name, procs=self.procs, workers=workers or self.workers, workdir=self.tmp / name).start()
        said = BUILD_SAID[build]
        if said not in g.logs():
            raise BenchError(f"gateway {name} is not the {build} build: its start-up line lacks {said!r}")
        return g

    def gateways(self, n: int, name: str, *, dsn: str | None = None, access_log: bool = True,
                 workers: int | None = None, env: dict[str, str] | None = None) -> list[BenchGateway]:
        """``n`` instances on one database (``name-1`` … ``name-n``), each as ``gateway()`` starts one."""
        return [self.gateway(f"{name}-{i}", dsn=dsn, access_log=access_log, workers=workers, env=env)
                for i in range(1, n + 1)]

    def redis(self, name: str = "redis") -> str:
        """A redis-server on a free port that keeps nothing on disk (started on the first call for
        ``name``, after that the same one); its URL. ``redis_ps[name]`` measures it."""
        if name in self._redis_urls:
            return self._redis_urls[name]
        server = find_tool("redis-server")
        if server is None:
            raise BenchError("redis-server is missing: apt-get install -y redis-server")
        port, workdir = free_port(), self.tmp / name
        workdir.mkdir(parents=True, exist_ok=True)
        p = self.procs.start(name, [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--dir", str(workdir)], out=workdir / "stdout.log")
        deadline = time.monotonic() + 15
        while p.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    self.redis_ps[name] = ProcSet(name, p.pid)
                    self._redis_urls[name] = f"redis://127.0.0.1:{port}/0"
                    return self._redis_urls[name]
            time.sleep(0.02)
        raise BenchError(f"{name} did not start:\n{(workdir / 'stdout.log').read_text()[-2000:]}")

    def close(self) -> None:
        self.procs.stop_all()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp}")
