"""Many clients a benchmark process can be: one request each from its own source address (every
address of 127.0.0.0/8 is loopback on Linux, so the client socket is bound to 127.x.y.z before it
connects), or many requests over a few keep-alive connections; the latency and status of each.
Raw asyncio ``Protocol``s (``bench.scenarios.idle.Client``), uvloop when it is there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.scenarios.idle import Client


@dataclass(frozen=True, slots=True)
class Answer:
    done: float  # time.monotonic() when the answer was complete
    ms: float  # from connecting (or sending, on a kept-alive connection) to the whole answer
    status: int  # 0: closed before answering; -1: could not connect or no answer in time


def source_address(i: int) -> str:
    """The ``i``-th client address: 127.1.0.1, 127.1.0.2, … (never .0 or .255 last, never 127.0.0.1)."""
    if not 0 <= i < 254 * 254 * 256:
        raise ValueError("out of 127.1.0.0 - 127.254.255.255")
    a, rest = divmod(i, 254 * 256)
    b, c = divmod(rest, 254)
    return f"127.{1 + a}.{b}.{c + 1}"


def request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def one_each(host: str, port: int, requests: list[tuple[str, bytes]], concurrency: int) -> list[Answer]:
    """``(source address, request)`` each on a new connection from that address, ``concurrency`` at a time."""
    loop = asyncio.get_running_loop()
    out: list[Answer] = []
    todo = iter(requests)

    async def client() -> None:
        for src, req in todo:
            t0 = time.monotonic()
            c: Client | None = None
            try:
                _, c = await loop.create_connection(partial(Client, req), host, port, local_addr=(src, 0))
                status = await asyncio.wait_for(c.ask(), 10)
            except (OSError, asyncio.TimeoutError):
                status = -1
            finally:
                if c is not None:
                    c.close()
            done = time.monotonic()
            out.append(Answer(done, (done - t0) * 1000, status))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return out


async def kept_alive(host: str, port: int, requests: list[bytes], concurrency: int) -> list[Answer]:
    """Every request on one of ``concurrency`` keep-alive connections from 127.0.0.1 (a new one
    when the gateway closed one)."""
    loop = asyncio.get_running_loop()
    out: list[Answer] = []
    todo = iter(requests)

    async def client() -> None:
        c: Client | None = None
        for req in todo:
            t0 = time.monotonic()
            try:
                if c is None or c.closed:
                    _, c = await loop.create_connection(partial(Client, req), host, port)
                c.request = req
                status = await asyncio.wait_for(c.ask(), 10)
            except (OSError, asyncio.TimeoutError):
                status, c = -1, None
            done = time.monotonic()
            out.append(Answer(done, (done - t0) * 1000, status))
        if c is not None:
            c.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return out


def run(coro: Callable[[], Coroutine[Any, Any, list[Answer]]]) -> list[Answer]:
    """Run a client coroutine to its end on a fresh loop (uvloop's when installed)."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro())
