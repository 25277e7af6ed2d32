"""Real local Supabase-like upstream services for the proxy tests, and gateways wired to them.

Every service is a real aiohttp server on its own loopback port, run in one background thread
with its own event loop, shared by the whole test session (``get_upstreams()``). Each one:

- verifies every JWT that reaches it the way PostgREST, Realtime and the Edge runtime do
  (``Authorization: Bearer``, ``apikey``, ``x-api-key``, ``sb-api-key`` and the ``apikey``
  query parameter): HS256 with the test ``jwt.secret``, or ES256/RS256 with the public half of
  the gateway's signing key or the auth service's user key, chosen by ``kid``; ``exp`` is
  required. A token that does not verify gets 401 ``PGRST301``, as from PostgREST;
- echoes what reached it as JSON: method, raw path, raw query string, headers in order, the
  body (its length and SHA256, and the text when small) and the verified claims;
- keeps every byte it received (request line, headers, small bodies) so that tests can prove
  a secret never reached any upstream.

Special paths (below each service's root, i.e. after the gateway stripped its prefix):
``/stream?size=N[&length=1]`` a large chunked (or Content-Length) body of a known pattern;
``/slow?seconds=S``; ``/headers-out`` a response with hop-by-hop, CORS and gzip headers;
``/redirect``; ``/early`` answered before the request body is read; and on realtime
``/socket/websocket`` a WebSocket that checks the minted JWT, echoes text and binary frames
(keeping the text ones, by the ``conn`` query parameter, in ``ws_frames``), answers ``info`` with
what its handshake carried and closes with ``close:<code>``. The auth service publishes
``/.well-known/jwks.json``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from tests.factories import (
    AUTH_USER_JWK,
    GATEWAY_RSA_SIGNING_JWK,
    GATEWAY_SIGNING_JWK,
    LEGACY_ANON,
    LEGACY_SERVICE_ROLE,
    public_jwk,
)
from tests.helpers import ADMIN_TOKEN, JWT_SECRET, Gateway, create_database, free_port, run_async

SERVICE = web.AppKey("service", str)
SERVICES = ("rest", "realtime", "functions", "auth", "storage", "meta")
SMALL_ECHO = 256 * 1024
PATTERN = bytes(range(256)) * 256  # 64 KiB, repeated by /stream


def pattern_bytes(size: int) -> bytes:
    reps, rest = divmod(size, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


# --- the upstream servers ----------------------------------------------------------------------


class JwtRejected(Exception):
    pass


@dataclass
class Upstreams:
    hs_secret: str = JWT_SECRET
    public_jwks: list[dict[str, Any]] = field(
        default_factory=lambda: [public_jwk(GATEWAY_SIGNING_JWK), public_jwk(GATEWAY_RSA_SIGNING_JWK),
                                 public_jwk(AUTH_USER_JWK)])
    urls: dict[str, str] = field(default_factory=dict)
    closed_port: int = 0
    received: list[bytes] = field(default_factory=list)  # every request's bytes, for leak checks
    ws_closes: dict[str, tuple[int, str] | None] = field(default_factory=dict)  # connection id -> client's close
    ws_frames: dict[str, list[str]] = field(default_factory=dict)  # connection id -> text frames received
    jwks_fetches: int = 0
    auth_jwks: list[dict[str, Any]] = field(default_factory=lambda: [public_jwk(AUTH_USER_JWK)])  # what auth publishes
    streams_cut: set[str] = field(default_factory=set)  # endless /stream?id=... whose reader went away
    _holds: dict[str, asyncio.Event] = field(default_factory=dict)
    _first_chunk: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._public = {j["kid"]: jwt.PyJWK(j, algorithm=j.get("alg", "ES256")) for j in self.public_jwks}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runners: list[web.AppRunner] = []

    # --- lifecycle ---
    def start(self) -> "Upstreams":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="upstreams", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("upstream servers did not start")
        self.closed_port = free_port()
        return self

    def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start_all())
        ready.set()
        self._loop.run_forever()

    async def _start_all(self) -> None:
        for service in SERVICES:
            app = web.Application(client_max_size=1024**3)
            app[SERVICE] = service
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=65536,
                                   max_field_size=65536)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)
            self.urls[service] = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._loop is None:
            return

        async def cleanup() -> None:
            for r in self._runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def release(self, hold_id: str) -> None:
        """Let ``/stream-hold?id=hold_id`` send the rest of its body."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._hold(hold_id).set)

    def _hold(self, hold_id: str) -> asyncio.Event:
        return self._holds.setdefault(hold_id, asyncio.Event())

    def first_chunk_arrived(self, upload_id: str) -> threading.Event:
        """Set once ``/upload-hold?id=upload_id`` has received the first bytes of its body."""
        return self._first_chunk.setdefault(upload_id, threading.Event())

    def received_blob(self) -> bytes:
        return b"\n".join(list(self.received))

    # --- JWT verification, as the services do it ---
    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg == "HS256":
                key: Any = self.hs_secret
            elif alg in ("ES256", "RS256"):
                public = self._public.get(header.get("kid"))
                if public is None:
                    raise JwtRejected(f"unknown kid {header.get('kid')!r}")
                key = public.key
            else:
                raise JwtRejected(f"algorithm {alg!r} not allowed")
            claims = jwt.decode(token, key, algorithms=[alg], options={"require": ["exp"], "verify_aud": False})
        except jwt.PyJWTError as e:
            raise JwtRejected(f"{type(e).__name__}: {e}") from None
        if not isinstance(claims.get("role"), str):
            raise JwtRejected("no role claim")
        return {"header": header, "claims": claims}

    def _tokens(self, request: web.Request) -> dict[str, str]:
        """Every credential-carrying value of a request that a Supabase service would verify."""
        found: dict[str, str] = {}
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            found["authorization"] = auth[7:].strip()
        for name in ("apikey", "x-api-key", "sb-api-key"):
            if name in request.headers:
                found[name] = request.headers[name]
        if "apikey" in request.query:
            found["query_apikey"] = request.query["apikey"]
        return found

    def _record(self, request: web.Request, body: bytes = b"") -> None:
        head = f"{request.method} {request.raw_path}\n".encode("latin-1")
        for k, v in request.raw_headers:
            head += k + b": " + v + b"\n"
        self.received.append(head + body[:SMALL_ECHO])

    # --- handlers ---
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        service = request.app[SERVICE]
        path = request.raw_path.partition("?")[0]
        if service == "auth" and path == "/.well-known/jwks.json":
            self._record(request)
            self.jwks_fetches += 1
            return web.json_response({"keys": list(self.auth_jwks)})
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)

        if path == "/stream-hold":
            return await self._stream_hold(request)
        if path == "/early":  # answered before its body was read (as many servers do: a 413, a 401)
            self._record(request)
            return web.json_response({"early": True, "path": path})
        # Stream the body in, hashing it, keeping only the start.
        upload_id = request.query.get("id") if path == "/upload-hold" else None
        digest = hashlib.sha256()
        length = 0
        kept = bytearray()
        chunks = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
            chunks += 1
            if upload_id is not None:
                self.first_chunk_arrived(upload_id).set()
            if len(kept) < SMALL_ECHO:
                kept += chunk[: SMALL_ECHO - len(kept)]
        self._record(request, bytes(kept))

        verified: dict[str, Any] = {}
        for where, token in self._tokens(request).items():
            try:
                verified[where] = self.verify(token)
            except JwtRejected as e:
                return web.json_response({"code": "PGRST301", "message": f"JWT invalid ({where}): {e}"}, status=401)

        if path == "/slow":
            await asyncio.sleep(float(request.query.get("seconds", "5")))
        if path == "/stream":
            return await self._stream(request)
        if path == "/redirect":
            return web.Response(status=302, headers={"Location": "https://example.com/elsewhere"})
        if path == "/headers-out":
            return self._headers_out(request)

        echo = {
            "service": service,
            "method": request.method,
            "path": path,
            "query": request.raw_path.partition("?")[2],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": bytes(kept).decode("latin-1") if length <= SMALL_ECHO else None,
            "body_length": length,
            "body_sha256": digest.hexdigest(),
            "chunked": "chunked" in request.headers.get("Transfer-Encoding", "").lower(),
            "verified": verified,
        }
        return web.json_response(echo, headers={"X-Upstream-Service": service})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", str(1024 * 1024)))
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("length"):
            resp.content_length = size
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        stream_id = request.query.get("id")
        sent = 0
        try:
            while sent < size or stream_id is not None:  # with an id: until the reader goes away
                n = min(len(PATTERN), size - sent) if stream_id is None else len(PATTERN)
                await resp.write(PATTERN[:n])
                sent += n
        except (ConnectionError, RuntimeError):
            if stream_id is not None:
                self.streams_cut.add(stream_id)
            raise
        await resp.write_eof()
        return resp

    async def _stream_hold(self, request: web.Request) -> web.StreamResponse:
        """Send a first chunk, wait until the test releases us, then send the last one."""
        self._record(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"first;")
        await asyncio.wait_for(self._hold(request.query["id"]).wait(), 60)
        await resp.write(b"last")
        await resp.write_eof()
        return resp

    def _headers_out(self, request: web.Request) -> web.Response:
        body = gzip.compress(b'{"compressed": true}')
        return web.Response(body=body, status=201, headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Upstream": "yes",
            "Keep-Alive": "timeout=5",
            "Access-Control-Allow-Origin": "https://upstream.example",
            "Vary": "Accept-Encoding",
            "Set-Cookie": "sid=abc; Path=/; HttpOnly",
            "Content-Range": "0-9/100",
        })

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """Realtime's /socket/websocket: the JWT comes as ``apikey`` query param and ``x-api-key``."""
        self._record(request)
        if request.app[SERVICE] != "realtime" or request.path != "/socket/websocket":
            return web.json_response({"message": "no websocket here"}, status=404)
        tokens = {k: v for k, v in self._tokens(request).items() if k in ("x-api-key", "query_apikey", "authorization")}
        if "x-api-key" not in tokens and "query_apikey" not in tokens:
            return web.json_response({"message": "no api key"}, status=403)
        verified: dict[str, Any] = {}
        for where, token in tokens.items():
            try:
                verified[where] = self.verify(token)
            except JwtRejected as e:
                return web.json_response({"message": f"JWT invalid ({where}): {e}"}, status=403)
        ws = web.WebSocketResponse(protocols=("realtime-v1",), autoclose=False, max_msg_size=0)
        await ws.prepare(request)
        conn_id = request.query.get("conn", uuid.uuid4().hex)
        self.ws_closes.setdefault(conn_id, None)
        frames = self.ws_frames.setdefault(conn_id, [])
        info = {
            "path": request.raw_path.partition("?")[0],
            "query": request.raw_path.partition("?")[2],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "verified": verified,
            "protocol": ws.ws_protocol,
        }
        while True:  # not ``async for``: it ends on CLOSE before we could see the code
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                frames.append(msg.data)
                if msg.data == "info":
                    await ws.send_str(json.dumps(info))
                elif msg.data == "drop":  # vanish without a close frame
                    assert request.transport is not None
                    request.transport.abort()
                    break
                elif msg.data.startswith("close:"):
                    await ws.close(code=int(msg.data[6:]), message=b"upstream says bye")
                    break
                else:
                    await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.CLOSE:
                self.ws_closes[conn_id] = (msg.data, msg.extra)
                await ws.close(code=msg.data)
                break
            else:
                break
        return ws


_upstreams: Upstreams | None = None
_lock = threading.Lock()


def get_upstreams() -> Upstreams:
    """The session's upstream servers, started on first use (they die with the process)."""
    global _upstreams
    with _lock:
        if _upstreams is None:
            _upstreams = Upstreams().start()
        return _upstreams


# --- gateways wired to them ----------------------------------------------------------------------


def proxy_env(pg_server: str, upstreams: Upstreams | None, dsn: str | None = None, **extra: str) -> dict[str, str]:
    """A gateway env on its own database (or ``dsn``) with every upstream pointed at ours,
    and the legacy keys configured; ``extra`` overrides (``None``-valued ones are dropped)."""
    env = {
        "GATEWAY_DATABASE_URL": dsn or create_database(pg_server),
        "GATEWAY_JWT__SECRET": JWT_SECRET,
        "GATEWAY_ADMIN__TOKEN": ADMIN_TOKEN,
        "GATEWAY_KEYS__LAST_USED_FLUSH_SECONDS": "0.5",
        "GATEWAY_LEGACY__ANON_KEY": LEGACY_ANON,
        "GATEWAY_LEGACY__SERVICE_ROLE_KEY": LEGACY_SERVICE_ROLE,
        "GATEWAY_UPSTREAMS__REALTIME_HOST": "realtime-dev.supabase-realtime",
    }
    if upstreams is not None:
        for service, url in upstreams.urls.items():
            env[f"GATEWAY_UPSTREAMS__{service.upper()}"] = url
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def start_gateway(env: dict[str, str], workers: int = 1) -> Gateway:
    # Keep a stray variable of the developer's shell from changing what the tests see.
    for name in ("JWT_SECRET", "JWT_KEYS", "ANON_KEY", "SERVICE_ROLE_KEY", "DATABASE_URL", "GATEWAY_CONFIG",
                 "SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY"):
        os.environ.pop(name, None)
    return Gateway(env, workers=workers).start()


def db_query(dsn: str, sql: str, *args: Any) -> list[Any]:
    """Run one statement on ``dsn`` from synchronous test code; the rows it returned."""
    import asyncpg

    out: list[Any] = []

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                out.extend(await conn.fetch(sql, *args))
            else:  # may be several statements
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    run_async(go())
    return out


def within(seconds: float, predicate: Any, interval: float = 0.02) -> float:
    """Poll ``predicate`` until it holds; fail if it does not within ``seconds``. Returns the wait."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(interval)


# --- request helpers --------------------------------------------------------------------------------


def random_part(key: str) -> str:
    """The 22 random characters of an opaque key (they may hold ``_`` themselves)."""
    body = key.removeprefix("sb_publishable_").removeprefix("sb_secret_")
    return body[:22]


def echo_header(echo: dict[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` that reached the upstream, in order."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(base_url: str, method: str, target: str, headers: list[tuple[str, str]] = (),
                body: bytes | None = None) -> RawResponse:
    """A request sent exactly as given (path not normalised, headers repeated as listed), and
    the answer's bytes as they came (no decompression)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=any(k.lower() == "host" for k, _ in headers),
                        skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return RawResponse(resp.status, list(resp.getheaders()), resp.read())
    finally:
        conn.close()


# --- a small server that answers and counts, to be stopped and started again --------------------------


class RecordingServer:
    """A real HTTP server on a fixed loopback port answering every request with JSON naming
    itself; it counts what it served, can answer a forced status, and can be stopped and started
    again on the same port (a replica going away and coming back)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.seen: list[tuple[str, str]] = []  # (method, path)
        self.status = 200
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._loop.run_forever, name=f"recording-{name}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.method, request.raw_path))
        return web.json_response({"served_by": self.name, "method": request.method, "path": request.raw_path},
                                 status=self.status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> "RecordingServer":
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _ in list(self.seen) if method is None or m == method)
