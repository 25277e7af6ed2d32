"""A WebSocket echo upstream for the benchmark: stands in for Realtime at /socket/websocket.

Usage: python bench/ws_echo.py PORT   (listens on 127.0.0.1:PORT, echoes every frame back)
"""

from __future__ import annotations

import sys

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0, autoping=True, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application()
    app.router.add_get("/socket/websocket", echo)
    app.router.add_get("/health", health)
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop, backlog=2048)


if __name__ == "__main__":
    main()
