"""The public listener driven by bytes, the way uvicorn tests its httptools protocol: a mock
transport collects what the protocol writes, ``Client`` feeds it request bytes and parses the
answers. With ``fast=False`` the same listener serves every request through the ASGI app."""

from __future__ import annotations

import asyncio
import re

import uvicorn
from uvicorn.server import ServerState

from gateway.serve.asgi import Proxy
from gateway.serve.listener import HttpProtocol


class MockTransport:
    def __init__(self) -> None:
        self.buffer = b""
        self.closed = False
        self.reading = True

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50_000)}.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol) -> None:
        pass


class Client:
    """One client connection to a protocol instance."""

    def __init__(self, proxy: Proxy, fast: bool = True) -> None:
        """``fast=False``: the same listener without its fast path (every request to the ASGI app)."""
        server = proxy.settings.server
        protocol = HttpProtocol.configured(server.header_timeout_seconds, server.max_connections,
                                           proxy.decider if fast else None)
        config = uvicorn.Config(proxy, lifespan="off", log_config=None, access_log=False, server_header=False,
                                proxy_headers=False, http=protocol)
        config.load()
        self.state = ServerState()
        self.protocol = config.http_protocol_class(config=config, server_state=self.state, app_state={})
        self.transport = MockTransport()
        self.protocol.connection_made(self.transport)
        self.proxy = proxy
        if not hasattr(proxy, "asgi_calls"):  # count the requests that reach the ASGI app
            proxy.asgi_calls = 0  # type: ignore[attr-defined]
            real = proxy.http

            async def counting(scope, receive, send):
                proxy.asgi_calls += 1  # type: ignore[attr-defined]
                await real(scope, receive, send)

            proxy.http = counting  # type: ignore[method-assign]
        self.calls_before = proxy.asgi_calls  # type: ignore[attr-defined]

    @property
    def asgi_calls(self) -> int:
        return self.proxy.asgi_calls - self.calls_before  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    async def responses(self, n: int, heads: tuple[int, ...] = (),
                        timeout: float = 10) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
        """The first ``n`` whole responses written to the client (Content-Length or chunked);
        ``heads``: which of them answer a HEAD request (no body)."""

        async def wait() -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
            while True:
                parsed = parse(self.transport.buffer, heads)
                if len(parsed) >= n:
                    return parsed[:n]
                await asyncio.sleep(0.005)

        return await asyncio.wait_for(wait(), timeout)


def parse(data: bytes, heads: tuple[int, ...] = ()) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    out: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}
        if b"content-length" in headers:
            n = int(headers[b"content-length"])
            if len(out) in heads or status_line.split()[1] in (b"204", b"304"):
                n = 0
            if len(rest) < n:
                break
            body, data = rest[:n], rest[n:]
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size_line, sep, rest2 = rest.partition(b"\r\n")
                if not sep:
                    return out
                size = int(size_line, 16)
                if len(rest2) < size + 2:
                    return out
                body += rest2[:size]
                rest = rest2[size + 2:]
                if size == 0:
                    break
            data = rest
        else:
            body, data = rest, b""
        out.append((status_line, headers, body))
    return out


def get(path: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: gateway", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_REQUEST_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def without_request_ids(data: bytes) -> bytes:
    """Bytes with every request id (a UUIDv7, the same length) made alike, for comparing two answers."""
    return _REQUEST_ID.sub(b"01234567-0123-7123-8123-0123456789ab", data)
