"""SPEC section 3: SIGTERM stops the gateway cleanly. In-flight requests finish, open WebSockets
are closed with 1012 (service restart) on both sides, and the process exits 0."""

from __future__ import annotations

import signal
import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

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
