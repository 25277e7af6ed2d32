"""Stand-ins for the Supabase services behind the gateway, faithful where the clients look.

- ``Rest``: PostgREST's semantics for the routes the suite uses (``GET /<table>`` with ``select``,
  filters and ``order``; ``POST /<table>`` with ``Prefer: return=representation``;
  ``GET|POST /rpc/<fn>``). It verifies the JWT as PostgREST documents (HS256 secret or a JWKS,
  ``exp``, the ``role`` claim, no token: the anon role), then runs the request in one
  transaction as the ``authenticator`` login with ``SET LOCAL ROLE <role>`` and
  ``request.jwt.claims`` set, so that Postgres and its Row Level Security decide which rows come
  back. Errors have PostgREST's JSON shape and status codes.
- ``Auth``: Supabase Auth (GoTrue) for password sign-in: ``POST /token?grant_type=password``
  (and ``refresh_token``) returns the session shape the clients parse, with an ES256 user JWT
  (``sub``, ``role: authenticated``, ``aud``, ``exp``, ``session_id``...) whose key it
  publishes at ``/.well-known/jwks.json``; ``GET /user``; ``POST /logout``.
- ``Realtime``: the Phoenix channel protocol of Supabase Realtime on ``/socket/websocket``,
  serializers 1.0.0 (JSON objects, realtime-py) and 2.0.0 (JSON arrays and binary user
  broadcasts, realtime-js): ``phx_join``, ``heartbeat``, ``broadcast`` fan-out, ``access_token``
  updates, ``phx_leave``. The connection's token (``x-api-key`` header, else the ``apikey``
  query parameter) and every ``access_token`` a client sends must verify as JWTs.

Every service records what it saw (roles, subjects, tokens' claims) for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric import ec

JSON_CT = "application/json; charset=utf-8"


# --- JWT verification, as PostgREST and Realtime do it ---------------------------------------------


class BadJwt(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Keys:
    """The project's JWT keys: the legacy HS256 secret and Supabase Auth's ES256 signing key."""

    secret: str
    kid: str = field(default_factory=lambda: "auth-" + uuid.uuid4().hex[:8])
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]})
        return jwk

    def jwks(self) -> dict[str, Any]:
        """What the services are configured with: the secret as an ``oct`` key and Auth's key."""
        oct_key = {"kty": "oct", "k": base64.urlsafe_b64encode(self.secret.encode()).rstrip(b"=").decode(),
                   "alg": "HS256"}
        return {"keys": [oct_key, self.public_jwk()]}

    def sign_user(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"})

    def verify(self, token: str) -> dict[str, Any]:
        """PostgREST's rules: signature by the JWKS key the header names, ``exp`` if present."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise BadJwt("PGRST301", "Expected 3 parts in JWT; got 1") from None
        alg = header.get("alg")
        if alg == "HS256":
            key: Any = self.secret
        elif alg == "ES256" and header.get("kid") == self.kid:
            key = self.private.public_key()
        else:
            raise BadJwt("PGRST301", "No suitable key or wrong key type")
        try:
            return jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False, "require": []})
        except jwt.ExpiredSignatureError:
            raise BadJwt("PGRST303", "JWT expired") from None
        except jwt.PyJWTError:
            raise BadJwt("PGRST301", "JWSError JWSInvalidSignature") from None


KEY_PREFIXES = ("sb_publishable_", "sb_secret_")


def carries_key(request: web.Request) -> bool:
    """Does anything in the request line or headers hold an API key's plaintext? It never should:
    the gateway forwards minted JWTs only (docs/requests.md)."""
    values = [request.raw_path, *request.headers.values()]
    return any(prefix in v for v in values for prefix in KEY_PREFIXES)


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- PostgREST -------------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict"}


class PgrstError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint

    def response(self) -> web.Response:
        body = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        headers = {}
        if self.status == 401 and self.code.startswith("PGRST"):
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{self.message}"'
        return web.Response(status=self.status, text=json.dumps(body), content_type="application/json",
                            charset="utf-8", headers=headers)


def _q(ident: str) -> str:
    if not _IDENT.match(ident):
        raise PgrstError(400, "PGRST100", f'"failed to parse identifier" ({ident})')
    return '"' + ident + '"'


@dataclass
class RequestLog:
    service: str
    method: str
    path: str
    role: str | None
    sub: str | None
    claims: dict[str, Any] | None
    plaintext_key: bool = False


class Rest:
    def __init__(self, keys: Keys, dsn: str, log: list[RequestLog]) -> None:
        self.keys = keys
        self.dsn = dsn
        self.log = log
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/rpc/{fn}", self.rpc)
        app.router.add_route("*", "/{table}", self.table)
        return app

    def _claims(self, request: web.Request) -> dict[str, Any]:
        token = _bearer(request)
        if token is None:
            return {"role": "anon"}  # PostgREST's db-anon-role
        try:
            claims = self.keys.verify(token)
        except BadJwt as e:
            raise PgrstError(401, e.code, e.message) from None
        return claims

    async def _run(self, request: web.Request, work: Any) -> web.Response:
        try:
            claims = self._claims(request)
            role = str(claims.get("role") or "anon")
            self.log.append(RequestLog("rest", request.method, request.path, role, claims.get("sub"), claims,
                                       carries_key(request)))
            assert self.pool is not None
            async with self.pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL ROLE {_q(role)}")
                        await conn.execute(
                            "SELECT set_config('request.jwt.claims', $1, true),"
                            " set_config('request.method', $2, true), set_config('request.path', $3, true)",
                            json.dumps(claims), request.method, request.path)
                        return await work(conn)
                except asyncpg.PostgresError as e:
                    raise _pg_error(e, role) from None
        except PgrstError as e:
            return e.response()

    # GET /<table>, POST /<table>
    async def table(self, request: web.Request) -> web.Response:
        table = request.match_info["table"]
        if request.method in ("GET", "HEAD"):
            return await self._run(request, lambda conn: self._select(conn, request, table))
        if request.method == "POST":
            body = await request.read()
            return await self._run(request, lambda conn: self._insert(conn, request, table, body))
        return PgrstError(405, "PGRST117", f"Unsupported HTTP method: {request.method}").response()

    async def _columns(self, conn: asyncpg.Connection, table: str) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped", table)
        if not rows:
            raise PgrstError(404, "PGRST205", f"Could not find the table 'public.{table}' in the schema cache")
        return {r["attname"]: r["type"] for r in rows}

    def _select_list(self, request: web.Request, table: str, columns: dict[str, str]) -> str:
        raw = request.query.get("select", "*")
        parts = [p.strip() for p in raw.split(",") if p.strip()] or ["*"]
        out = []
        for p in parts:
            if p == "*":
                out.append("*")
            elif p in columns:
                out.append(_q(p))
            else:
                raise PgrstError(400, "42703", f"column {table}.{p} does not exist")
        return ", ".join(out)

    def _where(self, request: web.Request, columns: dict[str, str], args: list[Any]) -> str:
        conds = []
        for name, value in request.query.items():
            if name in _RESERVED:
                continue
            if name not in columns:
                raise PgrstError(400, "42703", f"column {name} does not exist")
            op, _, operand = value.partition(".")
            negate = op == "not"
            if negate:
                op, _, operand = operand.partition(".")
            col = _q(name)
            if op in _OPS:
                args.append(operand)
                cond = f"{col} {_OPS[op]} ${len(args)}::text::{columns[name]}"
            elif op == "is" and operand in ("null", "true", "false"):
                cond = f"{col} IS {operand.upper()}"
            elif op == "in" and operand.startswith("(") and operand.endswith(")"):
                items = [i.strip().strip('"') for i in operand[1:-1].split(",") if i.strip()]
                args.append(items)
                cond = f"{col} = ANY(${len(args)}::text[]::{columns[name]}[])"
            else:
                raise PgrstError(400, "PGRST100", f'"failed to parse filter ({value})" (line 1, column 1)')
            conds.append(f"NOT ({cond})" if negate else cond)
        return (" WHERE " + " AND ".join(conds)) if conds else ""

    def _order(self, request: web.Request, columns: dict[str, str]) -> str:
        raw = request.query.get("order")
        if not raw:
            return ""
        terms = []
        for term in raw.split(","):
            name, *mods = term.split(".")
            if name not in columns:
                raise PgrstError(400, "42703", f"column {name} does not exist")
            sql = _q(name)
            for m in mods:
                sql += {"asc": " ASC", "desc": " DESC", "nullsfirst": " NULLS FIRST", "nullslast": " NULLS LAST"}[m]
            terms.append(sql)
        return " ORDER BY " + ", ".join(terms)

    async def _select(self, conn: asyncpg.Connection, request: web.Request, table: str) -> web.Response:
        columns = await self._columns(conn, table)
        args: list[Any] = []
        sql = f"SELECT {self._select_list(request, table, columns)} FROM public.{_q(table)}"
        sql += self._where(request, columns, args) + self._order(request, columns)
        if "limit" in request.query:
            sql += f" LIMIT {int(request.query['limit'])}"
        if "offset" in request.query:
            sql += f" OFFSET {int(request.query['offset'])}"
        body = await conn.fetchval(f"SELECT coalesce(json_agg(t), '[]')::text FROM ({sql}) t", *args)
        rows = json.loads(body)
        single = "application/vnd.pgrst.object+json" in request.headers.get("Accept", "")
        if single:
            if len(rows) != 1:
                raise PgrstError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                                 f"The result contains {len(rows)} rows")
            body = json.dumps(rows[0])
        return web.Response(status=200, text=body, content_type="application/json", charset="utf-8",
                            headers={"Content-Range": f"0-{len(rows) - 1}/*" if rows else "*/*"})

    async def _insert(self, conn: asyncpg.Connection, request: web.Request, table: str,
                      body: bytes) -> web.Response:
        columns = await self._columns(conn, table)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise PgrstError(400, "PGRST102", "Empty or invalid json") from None
        rows = payload if isinstance(payload, list) else [payload]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise PgrstError(400, "PGRST102", "Empty or invalid json")
        if "columns" in request.query:
            names = [c.strip().strip('"') for c in request.query["columns"].split(",")]
        else:
            names = list(rows[0])
        for n in names:
            if n not in columns:
                raise PgrstError(400, "PGRST204", f"Could not find the '{n}' column of '{table}' in the schema cache")
        cols = ", ".join(_q(n) for n in names)
        prefer = request.headers.get("Prefer", "")
        representation = "return=representation" in prefer
        select = self._select_list(request, table, columns) if representation else "1"
        sql = (f"WITH ins AS (INSERT INTO public.{_q(table)} ({cols}) SELECT {cols}"
               f" FROM json_populate_recordset(null::public.{_q(table)}, $1::json) RETURNING *)"
               f" SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT {select} FROM ins) t")
        out = await conn.fetchval(sql, json.dumps(rows))
        count = len(json.loads(out))
        headers = {"Content-Range": f"*/{count}"}
        if representation:
            return web.Response(status=201, text=out, content_type="application/json", charset="utf-8",
                                headers={**headers, "Preference-Applied": "return=representation"})
        return web.Response(status=201, headers=headers)

    # GET|POST /rpc/<fn>
    async def rpc(self, request: web.Request) -> web.Response:
        fn = request.match_info["fn"]
        if request.method == "POST":
            raw = await request.read()
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return PgrstError(400, "PGRST102", "Empty or invalid json").response()
        elif request.method in ("GET", "HEAD"):
            args = dict(request.query)
        else:
            return PgrstError(405, "PGRST101", "Only GET or POST is allowed for rpc").response()
        if not isinstance(args, dict):
            return PgrstError(400, "PGRST102", "Empty or invalid json").response()
        return await self._run(request, lambda conn: self._call(conn, fn, args))

    async def _call(self, conn: asyncpg.Connection, fn: str, args: dict[str, Any]) -> web.Response:
        procs = await conn.fetch(
            "SELECT p.proretset, coalesce(p.proargnames, '{}') AS names,"
            " p.proargtypes::regtype[]::text[] AS types, p.prorettype::regtype::text AS rettype"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.proname = $1", fn)
        wanted = set(args)
        proc = next((p for p in procs if wanted <= set(p["names"][:len(p["types"])])), None)
        if proc is None:
            keys = ", ".join(sorted(args))
            raise PgrstError(404, "PGRST202", f"Could not find the function public.{fn}({keys}) in the schema cache",
                             hint=None)
        types = dict(zip(proc["names"], proc["types"]))
        call = ", ".join(f"{_q(name)} => ($1::json ->> '{name}')::{types[name]}" for name in args)
        target = f"public.{_q(fn)}({call})"
        if proc["proretset"]:
            sql = f"SELECT coalesce(json_agg(t), '[]')::text FROM {target} t"
        else:
            sql = f"SELECT to_json({target})::text"
        out = await conn.fetchval(sql, json.dumps(args))
        return web.Response(status=200, text=out, content_type="application/json", charset="utf-8")


def _pg_error(e: asyncpg.PostgresError, role: str) -> PgrstError:
    code = getattr(e, "sqlstate", None) or "XX000"
    message = getattr(e, "message", None) or str(e)
    details = getattr(e, "detail", None)
    hint = getattr(e, "hint", None)
    if code == "42501":  # insufficient privilege: 401 for the anonymous role, else 403
        status = 401 if role == "anon" else 403
    elif code in ("42P01", "42883"):
        status = 404
    elif code in ("23505", "23503"):
        status = 409
    elif code.startswith(("22", "23", "42")) or code == "P0001":
        status = 400
    else:
        status = 500
    return PgrstError(status, code, message, details, hint)


# --- Supabase Auth (GoTrue) ------------------------------------------------------------------------


@dataclass
class User:
    id: str
    email: str
    password: str
    created_at: str = "2024-01-01T00:00:00Z"


class Auth:
    TTL = 3600

    def __init__(self, keys: Keys, users: list[User], log: list[RequestLog]) -> None:
        self.keys = keys
        self.users = {u.email: u for u in users}
        self.by_id = {u.id: u for u in users}
        self.refresh: dict[str, tuple[User, str]] = {}  # refresh token -> user, session id
        self.issuer = "http://localhost/auth/v1"
        self.log = log

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.jwks)
        app.router.add_post("/token", self.token)
        app.router.add_get("/user", self.user)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "GoTrue", "version": "compat"})

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.keys.public_jwk()]})

    @staticmethod
    def _error(status: int, error_code: str, msg: str) -> web.Response:
        return web.json_response({"code": status, "error_code": error_code, "msg": msg}, status=status)

    def _user_json(self, user: User, now: int) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {
            "id": user.id, "aud": "authenticated", "role": "authenticated", "email": user.email,
            "email_confirmed_at": user.created_at, "phone": "", "confirmed_at": user.created_at,
            "last_sign_in_at": stamp, "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"email": user.email, "email_verified": True},
            "identities": [{
                "identity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "identity:" + user.id)), "id": user.id,
                "user_id": user.id, "identity_data": {"email": user.email, "sub": user.id},
                "provider": "email", "last_sign_in_at": stamp, "created_at": user.created_at,
                "updated_at": stamp, "email": user.email,
            }],
            "created_at": user.created_at, "updated_at": stamp, "is_anonymous": False,
        }

    def _session(self, user: User, session_id: str) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": user.id, "aud": "authenticated", "exp": now + self.TTL, "iat": now,
            "email": user.email, "phone": "", "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"email": user.email, "email_verified": True}, "role": "authenticated",
            "aal": "aal1", "amr": [{"method": "password", "timestamp": now}], "session_id": session_id,
            "is_anonymous": False,
        }
        refresh = uuid.uuid4().hex[:12]
        self.refresh[refresh] = (user, session_id)
        return {
            "access_token": self.keys.sign_user(claims), "token_type": "bearer", "expires_in": self.TTL,
            "expires_at": now + self.TTL, "refresh_token": refresh, "user": self._user_json(user, now),
            "weak_password": None,
        }

    async def token(self, request: web.Request) -> web.Response:
        grant = request.query.get("grant_type")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "bad_json", "Could not parse request body as JSON")
        self.log.append(RequestLog("auth", "POST", f"/token?grant_type={grant}", None, None, None,
                                   carries_key(request)))
        if grant == "password":
            user = self.users.get(str(body.get("email", "")).lower())
            if user is None or body.get("password") != user.password:
                return self._error(400, "invalid_credentials", "Invalid login credentials")
            return web.json_response(self._session(user, str(uuid.uuid4())))
        if grant == "refresh_token":
            found = self.refresh.pop(str(body.get("refresh_token", "")), None)
            if found is None:
                return self._error(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
            return web.json_response(self._session(*found))
        return self._error(400, "validation_failed", "unsupported_grant_type")

    def _caller(self, request: web.Request) -> User | web.Response:
        token = _bearer(request)
        if not token:
            return self._error(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            claims = self.keys.verify(token)
        except BadJwt as e:
            return self._error(403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {e.message}")
        user = self.by_id.get(str(claims.get("sub")))
        if user is None:
            return self._error(403, "bad_jwt", "invalid claim: missing sub claim")
        return user

    async def user(self, request: web.Request) -> web.Response:
        self.log.append(RequestLog("auth", "GET", "/user", None, None, None, carries_key(request)))
        user = self._caller(request)
        if isinstance(user, web.Response):
            return user
        return web.json_response(self._user_json(user, int(time.time())))

    async def logout(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        if isinstance(user, web.Response):
            return user
        return web.Response(status=204)


# --- Supabase Realtime -----------------------------------------------------------------------------


@dataclass
class Join:
    topic: str
    role: str | None
    sub: str | None
    vsn: str
    connection_role: str | None
    token_from: str  # "access_token", "user_token" or "connection" (the x-api-key / apikey token)


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    vsn: str
    tenant_token: str
    tenant_claims: dict[str, Any]
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic -> {join_ref, self, ack, claims}
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> None:
        if self.vsn == "2.0.0":
            text = json.dumps([join_ref, ref, topic, event, payload])
        else:
            text = json.dumps({"event": event, "topic": topic, "payload": payload, "ref": ref, "join_ref": join_ref})
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        async with self.lock:
            if not self.ws.closed:
                await self.ws.send_bytes(data)


class Realtime:
    """Tenant ``realtime-dev`` (from the Host header, as Realtime derives it)."""

    TENANT = "realtime-dev"

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.joins: list[Join] = []
        self.token_updates: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.received_tokens: list[str] = []
        self.plaintext_keys = 0  # handshakes and frames that held an API key's plaintext
        self.conns: set[_Conn] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/socket/websocket", self.socket)
        return app

    def _verify(self, token: str) -> dict[str, Any]:
        claims = self.keys.verify(token)
        if "role" not in claims or "exp" not in claims:
            raise BadJwt("InvalidJWTToken", "Fields `role` and `exp` are required in JWT")
        return claims

    async def socket(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host.split(".", 1)[0].split(":", 1)[0] != self.TENANT:
            self.refused.append("tenant")
            return web.json_response({"message": "Tenant not found"}, status=403)
        if carries_key(request):
            self.plaintext_keys += 1
        token = request.headers.get("x-api-key") or request.query.get("apikey")
        if not token:
            self.refused.append("no token")
            return web.json_response({"message": "Missing token"}, status=403)
        self.received_tokens.append(token)
        try:
            claims = self._verify(token)
        except BadJwt as e:
            self.refused.append(e.message)
            return web.json_response({"message": e.message}, status=403)
        vsn = request.query.get("vsn", "1.0.0")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, vsn, token, claims)
        self.conns.add(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._binary(conn, msg.data)
        finally:
            self.conns.discard(conn)
        return ws

    async def _text(self, conn: _Conn, data: str) -> None:
        if any(prefix in data for prefix in KEY_PREFIXES):
            self.plaintext_keys += 1
        decoded = json.loads(data)
        if isinstance(decoded, list):
            join_ref, ref, topic, event, payload = decoded
        else:
            join_ref, ref, topic, event, payload = (decoded.get("join_ref"), decoded.get("ref"), decoded["topic"],
                                                    decoded["event"], decoded.get("payload") or {})
        if topic == "phoenix" and event == "heartbeat":
            await conn.send(None, ref, "phoenix", "phx_reply", {"status": "ok", "response": {}})
        elif event == "phx_join":
            await self._join(conn, join_ref or ref, ref, topic, payload)
        elif event == "access_token":
            await self._access_token(conn, topic, payload)
        elif event == "broadcast":
            await self._broadcast(conn, ref, topic, payload.get("event"), payload.get("payload"), None)
        elif event == "phx_leave":
            channel = conn.channels.pop(topic, None)
            await conn.send(join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}})
            if channel is not None:
                await conn.send(channel["join_ref"], channel["join_ref"], topic, "phx_close", {})
        elif topic in conn.channels:
            await conn.send(join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}})

    async def _join(self, conn: _Conn, join_ref: str | None, ref: str | None, topic: str,
                    payload: dict[str, Any]) -> None:
        if not topic.startswith("realtime:") or topic == "realtime:":
            await conn.send(join_ref, ref, topic, "phx_reply",
                            {"status": "error",
                             "response": {"reason": "TopicNameRequired: You must provide a topic name"}})
            return
        token_from = next((k for k in ("access_token", "user_token") if payload.get(k)), "connection")
        token = payload.get(token_from) or conn.tenant_token
        try:
            # Every access_token must be a JWT: a plaintext API key here would be a key that
            # reached the service (the gateway must have put the minted JWT in its place).
            claims = self._verify(token)
        except BadJwt as e:
            reason = ("MalformedJWT: The token provided is not a valid JWT" if e.code == "PGRST301"
                      else f"InvalidJWTToken: {e.message}")
            self.refused.append(reason)
            await conn.send(join_ref, ref, topic, "phx_reply", {"status": "error", "response": {"reason": reason}})
            return
        self.received_tokens.append(token)
        config = payload.get("config") or {}
        broadcast = config.get("broadcast") or {}
        conn.channels[topic] = {"join_ref": join_ref, "self": bool(broadcast.get("self")),
                                "ack": bool(broadcast.get("ack")), "claims": claims}
        self.joins.append(Join(topic, claims.get("role"), claims.get("sub"), conn.vsn,
                               conn.tenant_claims.get("role"), token_from))
        await conn.send(join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {"postgres_changes": []}})

    async def _access_token(self, conn: _Conn, topic: str, payload: dict[str, Any]) -> None:
        channel = conn.channels.get(topic)
        if channel is None:
            return
        token = payload.get("access_token") or ""
        try:
            claims = self._verify(token)
        except BadJwt as e:
            self.refused.append("access_token: " + e.message)
            conn.channels.pop(topic, None)
            await conn.send(None, None, topic, "system", {"extension": "system", "status": "error",
                                                           "message": "The token provided is not a valid JWT",
                                                           "channel": topic.removeprefix("realtime:")})
            await conn.send(channel["join_ref"], channel["join_ref"], topic, "phx_close", {})
            return
        self.received_tokens.append(token)
        channel["claims"] = claims
        self.token_updates.append({"topic": topic, "role": claims.get("role"), "sub": claims.get("sub")})

    async def _binary(self, conn: _Conn, data: bytes) -> None:
        """Serializer 2.0.0's user broadcast push (kind 3)."""
        if not data or data[0] != 3:
            return
        jl, rl, tl, el, ml, encoding = struct.unpack_from("6B", data, 1)
        offset = 7
        fields = []
        for n in (jl, rl, tl, el, ml):
            fields.append(data[offset:offset + n].decode())
            offset += n
        _join_ref, ref, topic, event, _meta = fields
        raw = data[offset:]
        payload: Any = json.loads(raw) if encoding == 1 else raw
        await self._broadcast(conn, ref or None, topic, event, payload, encoding)

    async def _broadcast(self, sender: _Conn, ref: str | None, topic: str, event: str | None, payload: Any,
                         encoding: int | None) -> None:
        channel = sender.channels.get(topic)
        if channel is None:
            return
        for conn in list(self.conns):
            if topic not in conn.channels or (conn is sender and not channel["self"]):
                continue
            await self._deliver(conn, topic, event or "", payload)
        if channel["ack"] and ref:
            await sender.send(channel["join_ref"], ref, topic, "phx_reply", {"status": "ok", "response": {}})

    @staticmethod
    async def _deliver(conn: _Conn, topic: str, event: str, payload: Any) -> None:
        if conn.vsn == "2.0.0":  # user broadcast, kind 4: topic, event, metadata, encoding, payload
            t, e = topic.encode(), event.encode()
            if isinstance(payload, (bytes, bytearray)):
                body, encoding = bytes(payload), 0
            else:
                body, encoding = json.dumps(payload).encode(), 1
            await conn.send_bytes(struct.pack("5B", 4, len(t), len(e), 0, encoding) + t + e + body)
        else:
            await conn.send(None, None, topic, "broadcast", {"type": "broadcast", "event": event, "payload": payload})
