"""A steady load that wrk cannot make: requests at a fixed rate, in turn on several URLs, each on a
new connection (so that they spread over every worker), each answer recorded with its time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Answer:
    sent: float  # seconds from the start of the load
    ms: float  # until the whole answer was read
    status: int  # 0: no answer (connection error or timeout)
    target: int  # index of the URL it went to


def paced(urls: list[str], headers: dict[str, str], rate: float, seconds: float,
          timeout: float = 10) -> list[Answer]:
    """``rate × seconds`` GETs, one every ``1 / rate`` s (late ones go at once: the count holds
    even if this process falls behind); the answers in the order they were sent."""
    return asyncio.run(_paced(urls, headers, rate, seconds, timeout))


async def _paced(urls: list[str], headers: dict[str, str], rate: float, seconds: float,
                 timeout: float) -> list[Answer]:
    answers: list[Answer] = []
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        t0 = time.monotonic()

        async def one(i: int) -> None:
            sent = time.monotonic()
            try:
                async with session.get(urls[i % len(urls)], headers=headers) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            answers.append(Answer(sent - t0, (time.monotonic() - sent) * 1000, status, i % len(urls)))

        tasks = []
        for i in range(round(rate * seconds)):
            if (delay := t0 + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return sorted(answers, key=lambda a: a.sent)
