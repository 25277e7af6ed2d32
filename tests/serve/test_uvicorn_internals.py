"""The listener builds on uvicorn's httptools and websockets-sansio protocols and on parts of them
that are not a public interface (its request queue, its request cycle's fields, its WebSocket
state). pyproject.toml pins the uvicorn releases this was tested with; if a release moves one of
these parts, this fails loudly instead of the listener misbehaving quietly."""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import Server, ServerState

from gateway.serve.asgi import Proxy
from gateway.serve.fastpath import FastCycle
from gateway.serve.listener import HttpProtocol
from tests.serve.harness import MockTransport

# What HttpProtocol and the fast path read or call on uvicorn's protocol.
PROTOCOL = ["connections", "loop", "cycle", "parser", "url", "headers", "flow", "pipeline", "server_state",
            "timeout_keep_alive", "transport", "client", "server", "scheme", "expect_100_continue"]
PROTOCOL_METHODS = ["_start_asgi_task", "send_400_response", "on_header", "on_message_begin", "on_headers_complete", "shutdown",
                    "connection_made", "connection_lost", "resume_writing", "pause_writing"]
# What uvicorn's protocol reads of a cycle: FastCycle stands in for it while the fast path answers.
CYCLE = ["response_complete", "keep_alive", "disconnected", "more_body", "body", "message_event"]
# What GoingAwayWebSocket reads or calls.
WEBSOCKET = ["close_sent", "handshake_complete", "initial_response", "queue", "conn", "transport", "close_timer"]
WEBSOCKET_METHODS = ["stop_keepalive", "shutdown", "send_500_response"]


def test_the_pinned_uvicorn_is_the_one_installed():
    import tomllib

    from tests.helpers import REPO

    pinned = [d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
              if d.startswith("uvicorn")]
    assert pinned == ["uvicorn[standard]>=0.55,<0.56"], pinned
    assert uvicorn.__version__.startswith("0.55.")


async def test_the_http_protocol_parts_the_listener_uses(memory_proxy):
    proxy: Proxy = memory_proxy[0]
    config = uvicorn.Config(proxy, lifespan="off", log_config=None, http=HttpProtocol)
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(MockTransport())
    source = inspect.getsource(HttpToolsProtocol)  # some are set only once a request is parsed
    missing = [name for name in PROTOCOL if not (hasattr(protocol, name) or f"self.{name} =" in source)]
    missing += [name for name in PROTOCOL_METHODS if not callable(getattr(HttpToolsProtocol, name, None))]
    assert not missing, f"uvicorn's httptools protocol no longer has {missing}"
    assert list(inspect.signature(HttpToolsProtocol._start_asgi_task).parameters) == ["self", "cycle", "app"]


def test_a_fast_cycle_has_what_uvicorn_reads_of_a_cycle():
    source = inspect.getsource(RequestResponseCycle.__init__)
    for name in CYCLE:
        assert f"self.{name}" in source or hasattr(RequestResponseCycle, name), name
        assert hasattr(FastCycle(True), name), name


def test_the_websocket_protocol_parts_the_listener_uses():
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for name in WEBSOCKET:
        assert f"self.{name}" in source, name
    for name in WEBSOCKET_METHODS:
        assert callable(getattr(WebSocketsSansIOProtocol, name, None)), name


def test_the_server_parts_the_worker_uses():
    assert "timeout_graceful_shutdown" in inspect.signature(uvicorn.Config).parameters
    assert callable(getattr(Server, "capture_signals", None)) and callable(getattr(Server, "shutdown", None))
    assert hasattr(ServerState(), "connections") and hasattr(ServerState(), "default_headers")
