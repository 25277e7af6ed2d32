"""Every decision of the public listener, in one place for both ways it is served: the ASGI app
(gateway.serve.asgi) and the fast path of the listener's own protocol (gateway.serve.fastpath).

A ``Request`` (gateway.request) is one request as the gateway handles it. ``Decider.route``
admits it (431, 400, 404, 403) and answers what the gateway answers itself (preflights,
``/health``); ``grant_now`` decides on its key from memory or says which lookup it needs
(``grant`` does it); ``plan`` applies the key's restrictions, its resource and method rules, the
denied resources, rate limits and quotas, and says where it goes, with which headers; ``record``
writes the access log line and the metrics, once. ``judge`` decides again, from memory, on the
key of a long-lived connection.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass

from gateway import errors, observe, routes
from gateway.auth import Authenticator, DashboardLogin, Grant, KeyHold, Need
from gateway.config import Settings
from gateway.headers import upstream_headers
from gateway.keys.entries import KeyEntry
from gateway.observe import LogFormat
from gateway.request import MAX_HEADER_BYTES, MAX_HEADERS, Request, split_query
from gateway.responses import JSON, Headers, cors_headers, error_headers, preflight_headers
from gateway.routes import BadPath, Cors, Kind, Policy, QueryKey, Route, match, normalize
from gateway.rules.clientip import ClientIp, limit_key, parse_networks
from gateway.rules.guard import Guard
from gateway.rules.keyrules import denied_resources
from gateway.rules.limits import Limiter, RateLimits
from gateway.rules.origins import OriginSet
from gateway.rules.quota import Quotas
from gateway.upstream.services import ReplicaSet, Upstream, configured_upstreams, replica_set

log = logging.getLogger("gateway")

REQUEST_ID = b"sb-request-id"
HEADERS_HINT = f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES // 1024} KiB in all."
HEALTH_BODY = json.dumps({"status": "ok"}).encode()


@dataclass(slots=True)
class Answer:
    """What the gateway answers itself."""

    status: int
    headers: Headers
    body: bytes


@dataclass(slots=True)
class Plan:
    """Where a decided request goes: its upstream, the target below the upstream's base path,
    and the headers it gets (``host`` first)."""

    upstream: Upstream
    target: str
    headers: Headers

    def for_upstream(self, other: Upstream) -> Headers:
        return self.headers if other is self.upstream else [(b"host", other.host), *self.headers[1:]]


@dataclass(frozen=True, slots=True)
class Admission:
    """What admitted a long-lived connection (a relayed WebSocket), for ``Decider.judge``: its key
    (never the plaintext) and where the connection came from."""

    key: KeyHold
    origin: bytes | None
    referer: bytes | None
    client_ip: str
    service: str


def restrict(entry: KeyEntry, origin: bytes | None, referer: bytes | None, client_ip: str, service: str) -> None:
    """The key's restrictions: the refusal of the first one not met, raised."""
    if entry.restrictions is not None:
        entry.restrictions.check(origin, referer, client_ip, service)


def admit(req: Request) -> None:
    """What holds before any key is looked at: header limits (431) and a safe path (400)."""
    if req.info.too_large:
        raise errors.HEADERS_TOO_LARGE(HEADERS_HINT)
    try:
        req.path = normalize(req.path)
    except BadPath as e:
        raise errors.BAD_PATH(str(e)) from None
    found = match(req.path)
    if found is not None:
        req.route, req.upstream_path = found


_PORTS: dict[int, bytes] = {}


def listener_port(server: tuple[str, int | None] | None) -> bytes | None:
    """The port a request came in on, for ``X-Forwarded-Port`` (ASGI's ``server``), as bytes."""
    if not server or server[1] is None:
        return None
    port = _PORTS.get(server[1])
    if port is None:
        port = _PORTS[server[1]] = str(server[1]).encode()
    return port


class Decider:
    """The decisions, made once at start where they can be (settings parsed, upstreams built)."""

    def __init__(self, settings: Settings, auth: Authenticator, limiter: Limiter | None = None,
                 guard: Guard | None = None) -> None:
        self.settings = settings
        self.guard = guard or Guard.from_settings(settings)  # network rules and blocks, before anything else
        self.auth = auth
        self.limiter = limiter or Limiter()
        self.rate_limits = RateLimits.from_settings(settings)
        self.client_ips = ClientIp(parse_networks(settings.server.trusted_proxies))
        self.meta_origins = OriginSet.parse(settings.cors.meta_origins)
        self.upstreams: dict[str, Upstream] = {}
        self.replicas: ReplicaSet | None = None  # PostgREST's read replicas with the primary
        self.functions_required = settings.functions.verify == "required"
        self.functions_open = frozenset(settings.functions.open)
        self.log_format = (LogFormat.OFF if not settings.log.access else
                           LogFormat.COMBINED if settings.log.format == "combined" else LogFormat.JSON)
        dash = settings.dashboard
        self.dashboard = None if settings.upstreams.studio is None else DashboardLogin(
            dash.username, None if dash.password is None else dash.password.get_secret_value())
        self.denied = denied_resources(settings.rest.denied_resources)  # None: no list
        self.quotas = Quotas()  # counts written and read by gateway.rules.quotastore

    async def start(self) -> None:
        self.upstreams = configured_upstreams(self.settings)
        self.replicas = replica_set(self.settings, self.upstreams.get("rest"))

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()
        for upstream in self.replicas.targets[1:] if self.replicas else ():
            await upstream.close()

    def request(self, method: str, raw_path: str, query: bytes, headers: Headers, peer: str, https: bool,
                port: bytes | None, websocket: bool = False, protocol: str = "HTTP/1.1") -> Request:
        req = Request(method, raw_path, query, headers, peer, https, port, websocket, protocol)
        req.client_ip = self.client_ips.resolve(peer, req.info.xff)
        return req

    # --- the steps, in order --------------------------------------------------------------------

    def route(self, req: Request, ws: bool = False) -> Answer | None:
        """Admit the request and find its route; the gateway's own answer if it has one."""
        if req.path != "/health":
            self.guard.check(req.client_ip)
        admit(req)
        if req.route is routes.DASHBOARD and (self.dashboard is None or ws):
            req.route = None  # no dashboard here (upstreams.studio unset), nor WebSockets to it: 404
        origin = req.info.origin
        if not ws and req.method == "OPTIONS" and origin is not None and req.info.acr_method is not None:
            req.status = 200  # a preflight
            cors = req.route.cors if req.route is not None else Cors.ANY
            headers = preflight_headers(origin, req.info.acr_headers, cors, self.meta_origins)
            return Answer(200, [*headers, (REQUEST_ID, req.id)], b"")
        if req.route is None:
            raise errors.NOT_FOUND()
        if req.route.kind is Kind.FORBIDDEN:
            raise errors.FORBIDDEN_ROUTE()
        if req.route is routes.HEALTH:
            if ws:
                raise errors.NOT_FOUND()
            req.status = 200
            return Answer(200, [(b"content-type", JSON), (b"content-length", b"%d" % len(HEALTH_BODY)),
                                *self.answer_headers(req)], HEALTH_BODY)
        req.info.query_keys, req.query = split_query(req.query)  # read once: the key, and the target without it
        return None

    def grant_now(self, req: Request) -> Grant | Need:
        """The decision on the request's key from memory, or the lookup it needs first."""
        if self.dashboard is not None and req.route is routes.DASHBOARD:
            return self.dashboard.check(req.info)  # basic auth, not a key
        return self.auth.decide(self.policy(req.routed, req.upstream_path), req.info)

    async def grant(self, req: Request) -> Grant:
        """``grant_now`` with the lookups done (a key not in memory, a user JWT not seen yet)."""
        if self.dashboard is not None and req.route is routes.DASHBOARD:
            return self.dashboard.check(req.info)
        return await self.auth.check(self.policy(req.routed, req.upstream_path), req.info)

    def policy(self, route: Route, upstream_path: str) -> Policy:
        """The route's policy; with functions.verify = "required", a function not named in
        functions.open needs a key or a user JWT (its name: the first segment, normalised)."""
        if route.service == "functions" and self.functions_required:
            if upstream_path.split("/", 2)[1] not in self.functions_open:
                return Policy.KEY_OR_USER
        return route.policy

    def plan(self, req: Request, grant: Grant, ws: bool = False) -> Plan:
        """Restrictions, rules, rate limits and quotas on the granted request, then where it goes, with
        which headers."""
        req.grant = grant
        route = req.routed
        entry = grant.entry
        if entry is not None:
            restrict(entry, req.info.origin, req.info.referer, req.client_ip, route.service)
        if entry is not None and entry.rules is not None:  # resources and methods (gateway.rules.keyrules)
            entry.rules.check("GET" if ws else req.method, route, req.upstream_path, req.headers_in)
        if self.denied is not None and route.upstream == "rest" and (entry is None or not entry.is_secret):
            self.denied.check(req.method, route, req.upstream_path, req.headers_in)
        self._limit(req)
        if entry is not None and entry.quota is not None:
            self.quotas.admit(req, entry)
        query = req.query
        if route.query_key is QueryKey.REPLACE and req.info.query_keys and grant.token is not None:
            token = grant.token.encode()
            query = query + b"&apikey=" + token if query else b"apikey=" + token
        upstream = self.upstreams.get(route.upstream)
        if upstream is None:
            raise errors.UPSTREAM_NOT_CONFIGURED(f"Set upstreams.{route.upstream} (GATEWAY_UPSTREAMS__"
                                                 f"{route.upstream.upper()}) to enable {route.prefix}.")
        sent_id = req.info.request_id  # a trusted proxy's X-Request-Id stays; anyone else's is ours
        proxy_id = sent_id if sent_id is not None and self.client_ips.trusts(req.peer) else None
        headers = upstream_headers(req.headers_in, req.info, route, grant, upstream.host, req.client_ip.encode(),
                                   req.https, ws, req.port, req.id, proxy_id)
        return Plan(upstream, req.upstream_path + ("?" + query.decode("latin-1") if query else ""), headers)

    # --- a long-lived connection, judged again while it lasts -----------------------------------------

    def admission(self, req: Request) -> Admission | None:
        """What ``judge`` needs of a planned request that a key admitted (None: no key did)."""
        hold = self.auth.hold(req.info, req.grant)
        if hold is None:
            return None
        return Admission(hold, req.info.origin, req.info.referer, req.client_ip, req.routed.service)

    def judge(self, a: Admission, now: float | None = None) -> KeyEntry | None:
        """The connection's key as it is now, if a request with it from where the connection came
        would still get through the key's checks and restrictions; else that request's refusal,
        raised. None while the key's row is read again after a change. From memory: nothing is
        recorded, minted or counted against a rate limit."""
        entry = self.auth.key_now(a.key, time.time() if now is None else now)
        if entry is not None:
            self.guard.check(a.client_ip)  # the network rules and blocks as they are now
            restrict(entry, a.origin, a.referer, a.client_ip, a.service)
        return entry

    def refusal_now(self, a: Admission, now: float | None = None) -> errors.Refusal | None:
        """``judge``'s refusal, or None (still admitted, or undecided)."""
        try:
            self.judge(a, now)
        except errors.Refusal as r:
            return r
        return None

    def _limit(self, req: Request) -> None:
        """Count the request against its rate limits (from memory), or refuse it with 429."""
        scopes = self.rate_limits.scopes(req.grant.entry, req.grant.claims, limit_key(req.client_ip),
                                         req.route is not routes.DASHBOARD)
        if not scopes:
            return
        outcome = self.limiter.admit(scopes)
        if outcome.refused is not None:
            req.limited = outcome.refused
            raise outcome.refusal()
        req.rate_limit_headers = outcome.headers()

    def replicas_for(self, req: Request) -> ReplicaSet | None:
        """The read targets a request may go to (primary and replicas), or None."""
        if self.replicas is None or req.method not in req.routed.replica_methods:
            return None
        return self.replicas

    # --- answers and records --------------------------------------------------------------------

    def answer_headers(self, req: Request) -> Headers:
        """What the gateway adds to any answer: its request id, CORS for a request with Origin,
        RateLimit."""
        out = [(REQUEST_ID, req.id)]
        if req.info.origin is not None:
            out = cors_headers(req.info.origin, req.route.cors if req.route is not None else Cors.ANY,
                               self.meta_origins) + out
        return out + req.rate_limit_headers if req.rate_limit_headers else out

    def refusal(self, req: Request, r: errors.Refusal) -> Answer:
        self.refused(req, r)
        return Answer(r.status, error_headers(r, self.answer_headers(req)), r.body)

    def refused(self, req: Request, r: errors.Refusal) -> None:
        """Every refusal of either way of serving passes here: its status, and the guard's count."""
        req.status = r.status
        req.blocked = self.guard.refused(req.client_ip, r.spec, req.info.authorization is not None)

    def record(self, req: Request) -> None:
        if req.blocked:  # counted by the guard; a flood of blocked requests writes no log
            return
        observe.record(req, self.log_format)


def log_unexpected(e: BaseException) -> None:
    """A bug or an unforeseen failure: where it happened, never its message (which may quote a
    URL with the minted JWT in it, or a header)."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    log.error("unexpected %s while proxying; traceback (message withheld):\n%s", type(e).__name__, frames)
