"""The fast path of the public listener: a bodiless request (a GET, a HEAD, a preflight)
answered without the ASGI machinery, with the same decisions (gateway.decide) and the same
header rules (gateway.headers) as the ASGI app.

The decision runs synchronously from memory; only a key not in memory or a user JWT not seen
before takes a task. The request head goes to a kept-alive upstream connection in one write and
the answer is pushed to the client as it arrives, its head and a small body in one write;
reading from the upstream pauses while the client cannot keep up. Everything else (bodies,
WebSockets, pipelined requests) is uvicorn's and the ASGI app's, as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from gateway import errors, observe
from gateway.auth import Need
from gateway.decide import Answer, Exchange, Gateway, Plan, log_unexpected
from gateway.headers import RESPONSE_DROP
from gateway.upstream.connection import NO_BODY_STATUS, Connection, State, request_head
from gateway.upstream.pool import UpstreamConnectError, UpstreamTimeout
from gateway.upstream.services import RETRY_STATUS, Reads, Upstream

log = logging.getLogger("gateway")

FAST_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE"})
# Headers that announce a body (a Content-Length of 0 does not): such a request is the ASGI app's.
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"expect"})
_CLOSE = (b"connection", b"close")
STREAMING_CHUNK = 16 * 1024  # a body chunk this large is written at once, not coalesced
_TASKS: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def eligible(method: bytes, url: bytes) -> bool:
    """A bodiless request the fast path serves: one of its methods, in origin form."""
    return method in FAST_METHODS and url.startswith(b"/")


class _Event:
    """What uvicorn's protocol may call on a cycle's event; nothing waits on ours."""

    __slots__ = ()

    def set(self) -> None:
        pass


class FastCycle:
    """Stands in for uvicorn's RequestResponseCycle while the fast path answers a request, so
    that the protocol's bookkeeping (shutdown, pipelining, connection loss) holds."""

    __slots__ = ("response_complete", "keep_alive", "disconnected", "more_body", "body")
    message_event = _Event()

    def __init__(self, keep_alive: bool) -> None:
        self.response_complete = False
        self.keep_alive = keep_alive
        self.disconnected = False
        self.more_body = False
        self.body = b""


def _head(status: int, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    line = STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status
    out = [line]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    return out


class FastExchange:
    """One request on the fast path, from its decision to the last byte of its answer."""

    __slots__ = ("protocol", "gateway", "x", "cycle", "plan", "reads", "attempts", "attempt", "conn", "upstream",
                 "head_sent", "chunked", "raced", "closing", "client_gone")

    def __init__(self, protocol: Any, gateway: Gateway, x: Exchange, keep_alive: bool) -> None:
        self.protocol = protocol
        self.gateway = gateway
        self.x = x
        self.cycle = FastCycle(keep_alive)
        self.plan: Plan | None = None
        self.reads: Reads | None = None
        self.attempts: list[Upstream] = []
        self.attempt = 0
        self.conn: Connection | None = None
        self.upstream: Upstream | None = None
        self.head_sent = False
        self.chunked = False
        self.raced = False
        self.closing = False
        self.client_gone = False

    # --- the decision -----------------------------------------------------------------------------

    def start(self) -> None:
        g, x = self.gateway, self.x
        try:
            answer = g.route(x)
            if answer is not None:
                self._answer(answer)
                return
            grant = g.grant_now(x)
            if isinstance(grant, Need):  # a lookup first: the rest in a task
                _spawn(self._decide_later())
                return
            self._forward(g.plan(x, grant))
        except errors.Refusal as r:
            self._answer(g.refusal(x, r))
        except Exception as e:
            self._unexpected(e)

    async def _decide_later(self) -> None:
        g, x = self.gateway, self.x
        try:
            grant = await g.grant(x)
            if self.client_gone:
                self._finish()
                return
            self._forward(g.plan(x, grant))
        except errors.Refusal as r:
            self._answer(g.refusal(x, r))
        except Exception as e:
            self._unexpected(e)

    def _unexpected(self, e: BaseException) -> None:
        log_unexpected(e)
        conn = self.conn
        if conn is not None:  # in an unknown state: never reused, nothing more pushed to us
            conn.close()
            self._release()
        if self.head_sent:
            self.x.status = 500
            self.closing = True
            self._finish()
        else:
            self._answer(self.gateway.refusal(self.x, errors.INTERNAL_ERROR()))

    # --- forwarding ---------------------------------------------------------------------------------

    def _forward(self, plan: Plan) -> None:
        self.plan = plan
        self.reads = self.gateway.reads_for(self.x)
        self.attempts = self.reads.pick() if self.reads is not None else [plan.upstream]
        self._try(0)

    def _try(self, attempt: int) -> None:
        self.attempt = attempt
        upstream = self.upstream = self.attempts[attempt]
        self.x.upstream = upstream.name
        conn = upstream.pool.take_idle()
        if conn is None:
            _spawn(self._connect(upstream))
        else:
            self._send(conn)

    async def _connect(self, upstream: Upstream) -> None:
        try:
            conn = await upstream.pool.connect()
        except UpstreamConnectError as e:
            observe.UPSTREAM_CONNECT_ERRORS.labels(upstream.name).inc()
            self._upstream_error(e, connecting=True)
            return
        except Exception as e:
            self._unexpected(e)
            return
        if self.client_gone:
            conn.close()
            self._abandon()
            return
        self._send(conn)

    def _send(self, conn: Connection) -> None:
        upstream, plan = self.upstream, self.plan
        self.conn = conn
        upstream.pool.outstanding += 1  # type: ignore[union-attr]
        conn.begin(self.x.method, self)
        head, _ = request_head(self.x.method, upstream.base_path + plan.target,  # type: ignore[union-attr]
                               plan.for_upstream(upstream), None)  # type: ignore[union-attr, arg-type]
        if not conn.send_now(head):
            conn.transport.write(head)  # type: ignore[union-attr]  # a few hundred bytes: never worth waiting
        conn.request_done()  # bodiless: the head is the whole request
        conn._arm(upstream.pool.read_timeout)  # type: ignore[union-attr]

    @property
    def _retryable(self) -> bool:
        return self.reads is not None and self.attempt < len(self.attempts) - 1

    def _release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.upstream.pool.release(conn)  # type: ignore[union-attr]

    # --- the upstream's answer (Connection's sink) ---------------------------------------------------

    def upstream_head(self, conn: Connection) -> None:
        status = conn.status
        if self._retryable and status in RETRY_STATUS:
            conn.close()
            self._release()
            self.reads.failed(self.upstream)  # type: ignore[union-attr, arg-type]
            observe.UPSTREAM_RETRIES.labels(self.upstream.name).inc()  # type: ignore[union-attr]
            self._try(self.attempt + 1)
            return
        head = [STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status]
        length = False
        for name, value in conn.headers:  # the upstream's, less hop-by-hop and CORS ones
            if name in RESPONSE_DROP:
                continue
            if name == b"content-length":
                length = True
            head += (name, b": ", value, b"\r\n")
        for name, value in self.gateway.extra(self.x) + self.protocol.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")  # CORS, RateLimit; Date, as uvicorn sends it
        if not length and not (conn.head_only or status in NO_BODY_STATUS):
            self.chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
        if not self.cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.x.status = status
        self.head_sent = True
        self.protocol.transport.write(b"".join(head))

    def upstream_body(self, chunk: bytes) -> None:
        if not chunk or self.client_gone:
            return
        transport = self.protocol.transport
        transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk)
        if len(chunk) >= STREAMING_CHUNK:
            # A stream: to the socket now, not at the end of the loop step, so that the client
            # transport's flow control sees it before the upstream is read again (the loop may
            # read a socket many times in one step).
            transport.flush()
        if self.protocol.flow.write_paused and self.conn is not None:
            self.conn.pause()  # resumed by client_can_write, or when the connection is released

    def upstream_done(self, conn: Connection) -> None:
        if self.chunked and not self.client_gone:
            self.protocol.transport.write(b"0\r\n\r\n")
        if self.reads is not None:
            (self.reads.failed if conn.status in RETRY_STATUS else self.reads.served)(self.upstream)  # type: ignore
        self._release()
        self._finish()

    def upstream_failed(self, conn: Connection, exc: BaseException) -> None:
        if self.conn is not conn:
            return
        if not self.head_sent and not self.raced and conn.exchanges > 1 and conn.lost_in is State.WAITING:
            self.raced = True  # a kept-alive connection the upstream had just closed: a fresh one
            self._release()
            _spawn(self._connect(self.upstream))  # type: ignore[arg-type]
            return
        self._release()
        self._upstream_error(exc, connecting=False)

    def _upstream_error(self, exc: BaseException, connecting: bool) -> None:
        if self.head_sent:  # the answer had begun: all we can do is cut it short
            if self.reads is not None:
                self.reads.served(self.upstream)  # type: ignore[arg-type]  # it answered (as the ASGI path counts)
            log.warning("upstream %s broke off a response", self.x.route.upstream)  # type: ignore[union-attr]
            self.closing = True
            self._finish()
            return
        if self.reads is not None:
            self.reads.failed(self.upstream)  # type: ignore[arg-type]
            if connecting and self._retryable:
                observe.UPSTREAM_RETRIES.labels(self.upstream.name).inc()  # type: ignore[union-attr]
                self._try(self.attempt + 1)
                return
        service = self.x.route.upstream  # type: ignore[union-attr]
        if isinstance(exc, UpstreamTimeout):
            r = errors.UPSTREAM_TIMEOUT(f"The {service} service did not answer in time.")
        else:
            r = errors.UPSTREAM_UNAVAILABLE(f"The {service} service could not be reached.")
        self._answer(self.gateway.refusal(self.x, r))

    # --- the client ------------------------------------------------------------------------------

    def _answer(self, answer: Answer) -> None:
        """The gateway's own answer, head and body in one write."""
        if self.client_gone:
            self._finish()
            return
        headers = answer.headers + self.protocol.server_state.default_headers
        if not any(k == b"content-length" for k, _ in answer.headers):
            headers.append((b"content-length", b"%d" % len(answer.body)))
        if not self.cycle.keep_alive:
            headers.append(_CLOSE)
        head = _head(answer.status, headers)
        head += (b"\r\n", b"" if self.x.method == "HEAD" else answer.body)
        self.x.status = answer.status
        self.head_sent = True
        self.protocol.transport.write(b"".join(head))
        self._finish()

    def client_can_write(self) -> None:
        if self.conn is not None:
            self.conn.resume()

    def client_lost(self) -> None:
        self.client_gone = True
        conn = self.conn
        if conn is not None:
            conn.close()  # half-read: never reused
            self._release()
            self._abandon()

    def _abandon(self) -> None:
        """The client left before its answer was complete."""
        if self.reads is not None and self.upstream is not None:
            self.reads.abandoned(self.upstream)
        self._finish()

    def _finish(self) -> None:
        if self.cycle.response_complete:
            return
        self.cycle.response_complete = True
        try:
            self.gateway.record(self.x)
        finally:
            self.protocol.fast_done(self, self.cycle.keep_alive and not self.closing and not self.client_gone)
