"""What an operator sees of each request: its access-log line (gateway.observe.accesslog) and its
share of the metrics (gateway.observe.metrics). ``record`` is called once for every request, by
gateway.decide, whichever way it was served."""

from __future__ import annotations

import enum
import time
from typing import Protocol

from gateway.observe.accesslog import ACCESS, combined_line, json_line
from gateway.observe.metrics import TALLIES

_STATUS = {code: str(code) for code in range(100, 600)}


class LogFormat(enum.Enum):
    OFF = "off"
    JSON = "json"
    COMBINED = "combined"


class Recorded(Protocol):
    """What ``record`` reads of a request (gateway.request.Request)."""

    id: bytes
    method: str
    path: str
    sent_query: bytes
    protocol: str
    status: int
    sent: int
    started: float
    client_ip: str
    limited: str | None
    upstream: str | None

    @property
    def service(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def key_id(self) -> str | None: ...

    @property
    def key_prefix(self) -> str | None: ...

    @property
    def referer(self) -> str | None: ...

    @property
    def user_agent(self) -> str | None: ...


def record(req: Recorded, log: LogFormat) -> None:
    duration = time.perf_counter() - req.started
    status = req.status
    TALLIES.add((req.service, _STATUS.get(status) or str(status), req.role, req.upstream or "none"), duration,
                req.limited)
    if log is LogFormat.JSON:
        ACCESS.add(json_line(req, duration))
    elif log is LogFormat.COMBINED:
        ACCESS.add(combined_line(req.client_ip, time.time(), req.method, req.path, req.sent_query.decode("latin-1"),
                                 req.protocol, status, req.sent, req.referer, req.user_agent, req.key_id, req.role,
                                 req.upstream, req.id))
