"""The WebSocket relay: open the upstream socket, pass frames both ways until either side
closes, carry the close code and reason across. aiohttp on the upstream side, ASGI on ours."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp
from yarl import URL

from gateway import errors
from gateway.responses import Headers, Receive, Scope, Send, error_headers
from gateway.upstream.errors import UpstreamConnectError, UpstreamRefused, UpstreamTimeout
from gateway.upstream.services import Upstream

# Close codes that may not be sent in a close frame (RFC 6455 7.4.1), and what we send instead.
_UNSENDABLE = {1005: 1000, 1006: 1001, 1015: 1011}


async def connect(upstream: Upstream, target: str, headers: list[tuple[bytes, bytes]], protocols: list[str],
                  connect_timeout: float) -> aiohttp.ClientWebSocketResponse:
    """The upstream WebSocket, or an UpstreamError (refused with a status, unreachable, timed out),
    which gateway.upstream.errors turns into the client's answer as for any request."""
    url = URL(upstream.ws_origin + target, encoded=True)
    plain = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    try:
        return await upstream.ws_session(connect_timeout).ws_connect(
            url, headers=plain, protocols=protocols, autoclose=False, autoping=True, max_msg_size=0, compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        )
    except aiohttp.WSServerHandshakeError as e:
        raise UpstreamRefused(e.status) from None
    except asyncio.TimeoutError:
        raise UpstreamTimeout("timed out opening the upstream WebSocket") from None
    except (aiohttp.ClientError, OSError):
        raise UpstreamConnectError("cannot reach the upstream WebSocket") from None


async def deny(scope: Scope, send: Send, r: errors.Refusal, extra: Headers = ()) -> None:  # type: ignore[assignment]
    """Refuse a WebSocket handshake with an HTTP answer where the server supports it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": r.status, "headers": error_headers(r, extra)})
        await send({"type": "websocket.http.response.body", "body": r.body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class Guard(Protocol):
    """What the gateway adds to a relayed connection (gateway.serve.realtime.ChannelTokens)."""

    def refuse(self, text: str | None, data: bytes | None) -> str | None:
        """The reply to a frame of the client that its key may not send ("": none), or None: it may."""

    def client_text(self, text: str) -> str | None:
        """A text frame of the client as the upstream gets it; None: not relayed."""

    async def closing(self) -> tuple[int, str]:
        """Returns the close code and reason once the gateway ends the connection."""

    async def keep_fresh(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Runs as long as the connection, sending the upstream what it needs (fresh tokens)."""


async def _gateway_closes(guard: Guard) -> tuple[str, int, str]:
    code, reason = await guard.closing()
    return "gateway", code, reason


def sendable(code: int | None) -> int:
    if not code:
        return 1000
    return _UNSENDABLE.get(code, code)


async def relay(receive: Receive, send: Send, upstream: aiohttp.ClientWebSocketResponse,
                guard: Guard | None = None) -> None:
    """Frames both ways until either side, or the ``guard``, closes; the close code and reason
    cross over (to both sides when the gateway closes)."""

    async def client_to_upstream() -> tuple[str, int, str]:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.receive":
                text, data = msg.get("text"), msg.get("bytes")
                reply = None if guard is None else guard.refuse(text, data)
                if reply is not None:  # a frame the key may not send: answered here, never forwarded
                    if reply:
                        await send({"type": "websocket.send", "text": reply})
                elif text is not None:
                    text = guard.client_text(text) if guard is not None else text
                    if text is not None:
                        await upstream.send_str(text)
                elif data is not None:
                    await upstream.send_bytes(data)
            elif msg["type"] == "websocket.disconnect":
                return "client", msg.get("code") or 1000, msg.get("reason") or ""

    async def upstream_to_client() -> tuple[str, int, str]:
        # Not ``async for``: aiohttp ends that iteration on CLOSE and hides the reason.
        while True:
            msg = await upstream.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                return "upstream", msg.data, msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            else:  # CLOSING, CLOSED, ERROR: the connection broke
                return "upstream", upstream.close_code or 1011, ""

    pumps = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
    tasks = list(pumps)
    if guard is not None:
        pumps.append(asyncio.ensure_future(_gateway_closes(guard)))  # the gateway may end the connection
        tasks += [pumps[-1], asyncio.ensure_future(guard.keep_fresh(upstream.send_str))]
    side, code, reason = "error", 1011, ""
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finished = done.pop()
        if not finished.cancelled() and finished.exception() is None:
            side, code, reason = finished.result()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        code = sendable(code)
        if side != "client":
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": reason})
        if not upstream.closed:
            with contextlib.suppress(Exception):
                await upstream.close(code=code, message=reason.encode()[:123])
