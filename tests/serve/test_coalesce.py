"""The coalescing transport: writes of one loop step leave as one; nothing is lost or reordered
on close; the response really arrives whole over a real socket."""

from __future__ import annotations

import asyncio

from gateway.serve.coalesce import CoalescingTransport


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_of_one_step_leave_together():
    rec = Recorder()
    t = CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b"body")
    assert rec.writes == [] and t.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert rec.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    t.write(b"next")
    t.close()  # flushes first
    assert rec.writes[-1] == b"next" and rec.closed
    assert t.is_closing()  # everything else goes to the real transport


async def test_over_a_real_socket():
    received = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    t = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
    for i in range(100):
        t.write(b"%d," % i)
    t.close()
    assert await asyncio.wait_for(received, 5) == b"".join(b"%d," % i for i in range(100))
    server.close()
