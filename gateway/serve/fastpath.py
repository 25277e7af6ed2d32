"""The fast path of the public listener: a bodiless request (a GET, a HEAD, a preflight)
answered without the ASGI machinery, with the same decisions (gateway.decide), the same header
rules (gateway.headers) and the same forwarding rules (gateway.upstream.attempts and errors) as
the ASGI app.

The decision runs synchronously from memory; only a key not in memory or a user JWT not seen
before takes a task. The request head goes to a kept-alive upstream connection in one write and
the answer is pushed to the client as it arrives, its head and a small body in one write;
reading from the upstream pauses while the client cannot keep up. Everything else (bodies,
WebSockets, pipelined requests) is uvicorn's and the ASGI app's.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any

from gateway import errors
from gateway.auth import Need
from gateway.decide import Answer, Decider, Plan, log_unexpected
from gateway.headers import response_headers
from gateway.request import Request
from gateway.responses import head_bytes
from gateway.upstream import messages
from gateway.upstream.attempts import Attempts
from gateway.upstream.connection import Connection
from gateway.upstream.errors import UpstreamError, refusal_for
from gateway.upstream.services import Upstream

log = logging.getLogger("gateway")

FAST_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE"})
# Headers that announce a body (a Content-Length of 0 does not): such a request is the ASGI app's.
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"expect"})
_CLOSE = (b"connection", b"close")
_CHUNKED = (b"transfer-encoding", b"chunked")
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


class Phase(enum.Enum):
    DECIDING = "deciding"  # the decision, maybe waiting on a lookup
    FORWARDING = "forwarding"  # on its way upstream; nothing answered yet
    ANSWERING = "answering"  # the answer's head went to the client; its body follows
    DONE = "done"  # answered whole: the client connection may serve its next request
    CUT = "cut"  # an answer cut short: the client connection is closed
    GONE = "gone"  # the client left


class FastRequest:
    """One request on the fast path, from its decision to the last byte of its answer: the sink
    of its upstream connection (``upstream_head`` ... ``upstream_done``)."""

    __slots__ = ("protocol", "decider", "req", "cycle", "plan", "attempts", "upstream", "conn", "chunked", "phase")

    def __init__(self, protocol: Any, decider: Decider, req: Request, keep_alive: bool) -> None:
        self.protocol = protocol
        self.decider = decider
        self.req = req
        self.cycle = FastCycle(keep_alive)
        self.plan: Plan | None = None
        self.attempts: Attempts | None = None
        self.upstream: Upstream | None = None  # of the connection in use
        self.conn: Connection | None = None
        self.chunked = False  # the answer's body goes to the client chunked
        self.phase = Phase.DECIDING

    # --- the decision -------------------------------------------------------------------------------

    def start(self) -> None:
        d, req = self.decider, self.req
        try:
            answer = d.route(req)
            if answer is not None:
                self._answer(answer)
                return
            grant = d.grant_now(req)
            if isinstance(grant, Need):  # a lookup first: the rest in a task
                _spawn(self._decide_later())
                return
            self._forward(d.plan(req, grant))
        except errors.Refusal as r:
            self._answer(d.refusal(req, r))
        except Exception as e:
            self._unexpected(e)

    async def _decide_later(self) -> None:
        d, req = self.decider, self.req
        try:
            grant = await d.grant(req)
            if self.phase is Phase.GONE:
                self._finish()
                return
            self._forward(d.plan(req, grant))
        except errors.Refusal as r:
            self._answer(d.refusal(req, r))
        except Exception as e:
            self._unexpected(e)

    def _unexpected(self, e: BaseException) -> None:
        log_unexpected(e)
        if self.conn is not None:  # in an unknown state: never reused, nothing more pushed to us
            self.conn.close()
            self._release()
        if self.phase is Phase.ANSWERING:
            self.req.status = 500
            self.phase = Phase.CUT
            self._finish()
        else:
            self._answer(self.decider.refusal(self.req, errors.INTERNAL_ERROR()))

    # --- forwarding (gateway.upstream.attempts decides where, and whether again) --------------------

    def _forward(self, plan: Plan) -> None:
        self.plan = plan
        self.phase = Phase.FORWARDING
        self.attempts = Attempts(plan.upstream, self.decider.replicas_for(self.req))
        self._try()

    def _try(self) -> None:
        attempts = self.attempts
        assert attempts is not None
        upstream = self.upstream = attempts.target
        self.req.upstream = upstream.name
        conn = None if attempts.fresh else upstream.pool.take_idle()
        if conn is None:
            _spawn(self._connect(upstream))
        else:
            self._send(conn)

    async def _connect(self, upstream: Upstream) -> None:
        try:
            conn = await upstream.pool.connect()
        except UpstreamError as e:
            self._upstream_error(e)
            return
        except Exception as e:
            self._unexpected(e)
            return
        if self.phase is Phase.GONE:
            upstream.pool.release(conn)  # never used: closed
            if self.attempts is not None:
                self.attempts.abandoned()
            self._finish()
            return
        self._send(conn)

    def _send(self, conn: Connection) -> None:
        upstream, plan, method = self.upstream, self.plan, self.req.method
        assert upstream is not None and plan is not None
        self.conn = conn
        head, _ = messages.request_head(method, upstream.base_path + plan.target, plan.for_upstream(upstream), None)
        conn.start(method, head, self)

    def _release(self) -> None:
        conn = self.conn
        if conn is not None and self.upstream is not None:
            self.conn = None
            self.upstream.pool.release(conn)

    def _upstream_error(self, e: UpstreamError) -> None:
        attempts = self.attempts
        assert attempts is not None
        if self.phase is Phase.ANSWERING:  # the answer had begun: all we can do is cut it short
            attempts.broke_off()
            log.warning("upstream %s broke off a response", self.req.routed.upstream)
            self.phase = Phase.CUT
            self._finish()
        elif attempts.again(e):
            self._try()
        else:
            self._answer(self.decider.refusal(self.req, refusal_for(e, self.req.routed.upstream)))

    # --- the upstream's answer (Connection's sink) -----------------------------------------------------

    def upstream_head(self, conn: Connection) -> None:
        status = conn.status
        assert self.attempts is not None
        if self.attempts.again_after(status):
            self._release()
            self._try()
            return
        headers = response_headers(conn.headers, self.decider.answer_headers(self.req))
        headers += self.protocol.server_state.default_headers  # Date, as uvicorn sends it
        if not (conn.head_only or status in messages.NO_BODY_STATUS or any(n == b"content-length" for n, _ in headers)):
            self.chunked = True
            headers.append(_CHUNKED)
        if not self.cycle.keep_alive:
            headers.append(_CLOSE)
        self.req.status = status
        self.phase = Phase.ANSWERING
        self.protocol.transport.write(head_bytes(status, headers))

    def upstream_body(self, piece: bytes) -> None:
        if not piece or self.phase is Phase.GONE:
            return
        self.req.sent += len(piece)
        transport = self.protocol.transport
        transport.write(messages.chunk(piece) if self.chunked else piece)
        if len(piece) >= STREAMING_CHUNK:
            # A stream: to the socket now, not at the end of the loop step, so that the client
            # transport's flow control sees it before the upstream is read again (the loop may
            # read a socket many times in one step).
            transport.flush()
        if self.protocol.flow.write_paused and self.conn is not None:
            self.conn.pause()  # resumed by client_can_write, or when the connection is released

    def upstream_done(self, conn: Connection) -> None:
        if self.chunked and self.phase is not Phase.GONE:
            self.protocol.transport.write(messages.LAST_CHUNK)
        if self.attempts is not None:
            self.attempts.answered(conn.status)
        self._release()
        if self.phase is Phase.ANSWERING:
            self.phase = Phase.DONE
        self._finish()

    def upstream_failed(self, conn: Connection, e: UpstreamError) -> None:
        if self.conn is not conn:
            return
        self._release()
        self._upstream_error(e)

    # --- the client ------------------------------------------------------------------------------------

    def _answer(self, answer: Answer) -> None:
        """The gateway's own answer, head and body in one write."""
        if self.phase is Phase.GONE:
            self._finish()
            return
        headers = answer.headers + self.protocol.server_state.default_headers
        if not any(k == b"content-length" for k, _ in answer.headers):
            headers.append((b"content-length", b"%d" % len(answer.body)))
        if not self.cycle.keep_alive:
            headers.append(_CLOSE)
        self.req.status = answer.status
        self.phase = Phase.DONE
        body = b"" if self.req.method == "HEAD" else answer.body
        self.req.sent = len(body)
        self.protocol.transport.write(head_bytes(answer.status, headers) + body)
        self._finish()

    def client_can_write(self) -> None:
        if self.conn is not None:
            self.conn.resume()

    def client_lost(self) -> None:
        self.phase = Phase.GONE
        if self.conn is not None:
            self._release()  # half-read: closed, never reused
            if self.attempts is not None:
                self.attempts.abandoned()
            self._finish()

    def _finish(self) -> None:
        if self.cycle.response_complete:
            return
        self.cycle.response_complete = True
        try:
            self.decider.record(self.req)
        finally:
            self.protocol.fast_done(self, self.cycle.keep_alive and self.phase is Phase.DONE)
