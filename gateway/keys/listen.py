"""The LISTEN connection on ``gateway_changes``: every change of a key, a setting, a block or the
allow list is announced there (by the admin API, the CLI and other instances), and this holds
the connection that hears it. Lost, it is opened again (at least twice a second, so changes flow
again within a second of the database's return) and ``connected`` is told, since what was
announced meanwhile is not replayed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("gateway")

CHANNEL = "gateway_changes"
RETRY_MAX = 0.5  # seconds between attempts to open a lost connection, at most


class ChangeListener:
    """``heard`` gets each announcement (a JSON object); ``connected(first)`` runs each time the
    connection is (re)opened, before anything heard on it is trusted to be complete."""

    def __init__(self, dsn: str, heard: Callable[[dict[str, Any]], None],
                 connected: Callable[[bool], Awaitable[None]]) -> None:
        self.dsn = dsn
        self.heard = heard
        self.connected = connected
        self._conn: asyncpg.Connection | None = None

    async def run(self) -> None:
        delay = 0.1
        first = True
        failing = False  # warn once per outage, not on every attempt
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                self._conn = conn
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                await self.connected(first)
                if failing:
                    log.warning("listening for key changes again")
                first = failing = False
                delay = 0.1
                await lost.wait()
                log.warning("lost the database notification connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not failing:
                    log.warning("cannot listen for key changes: %s; retrying", type(e).__name__)
                failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if isinstance(event, dict):
            self.heard(event)
