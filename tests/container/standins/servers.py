"""The stand-in services, each configured from the environment variables the real one reads in the
stack's docker-compose.yml, on the port the real one listens on.

- ``rest`` (PostgREST): tests.compat.services.Rest on the real Postgres (``PGRST_DB_URI``, the
  ``authenticator`` login, ``SET LOCAL ROLE`` and Row Level Security), JWTs by
  ``PGRST_JWT_SECRET`` (a secret, a JWK or a JWKS); ``GET /`` is the OpenAPI root.
- ``auth`` (GoTrue): tests.compat.services.Auth with the compat suite's two users; sessions signed
  with ``GOTRUE_JWT_KEYS``' first key, else HS256 with ``GOTRUE_JWT_SECRET``; issuer
  ``GOTRUE_JWT_ISSUER``; its JWKS lists the public signing key.
- ``realtime``: tests.compat.services.Realtime (the Phoenix protocol, tenant from the Host) with
  ``API_JWT_SECRET`` / ``API_JWT_JWKS``, and ``/api/*`` echoing as below.
- ``storage`` (``AUTH_JWT_SECRET`` / ``JWT_JWKS``) and ``functions`` (the edge runtime:
  ``JWT_SECRET`` / ``SUPABASE_JWKS``, ``VERIFY_JWT``): echo what reached them as JSON, after
  verifying every JWT they got (``Authorization``, ``apikey``, ``sb-api-key``, ``x-api-key``);
  one that does not verify is answered 401. ``/slow?seconds=S`` answers after S seconds.
- ``supavisor``: relays its two ports (5432, 6543) to the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.compat.services import Auth, BadJwt, PgrstError, Realtime, Rest
from tests.compat.stack import ALICE, BOB
from tests.container.standins.keys import EnvKeys

JWT_HEADERS = ("apikey", "sb-api-key", "x-api-key")


def tokens(request: web.Request) -> dict[str, str]:
    """Every value of the request that a Supabase service would verify as a JWT."""
    found = {}
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        found["authorization"] = token.strip()
    for name in JWT_HEADERS:
        if request.headers.get(name):
            found[name] = request.headers[name]
    if request.query.get("apikey"):
        found["query_apikey"] = request.query["apikey"]
    return found


class Echo:
    """Storage, the edge runtime, Realtime's REST API: what reached them, once it verified."""

    def __init__(self, service: str, keys: EnvKeys, verify_jwt: bool = False) -> None:
        self.service = service
        self.keys = keys
        self.verify_jwt = verify_jwt

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verified: dict[str, Any] = {}
        for where, token in tokens(request).items():
            try:
                verified[where] = self.keys.verify(token)
            except BadJwt as e:
                return web.json_response({"message": f"invalid JWT in {where}: {e.message}"}, status=401)
        if self.verify_jwt and "authorization" not in verified:
            return web.json_response({"msg": "Missing authorization header"}, status=401)
        if request.path.endswith("/slow"):
            await asyncio.sleep(float(request.query.get("seconds", "1")))
        return web.json_response({
            "service": self.service, "method": request.method, "path": request.path,
            "query": request.query_string, "headers": {k.lower(): v for k, v in request.headers.items()},
            "verified": verified, "body_length": len(body),
        })

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


class RestStandin(Rest):
    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/", self.root)
        app.on_startup.append(lambda _: self._connect())
        app.on_cleanup.append(lambda _: self.close())
        return app

    async def _connect(self) -> None:
        for _ in range(60):  # the database may still be starting
            try:
                return await self.start()
            except (OSError, ConnectionError):
                await asyncio.sleep(1)
        await self.start()

    async def root(self, request: web.Request) -> web.Response:
        try:
            role = self._claims(request).get("role")
        except PgrstError as e:
            return e.response()
        return web.json_response({"swagger": "2.0", "info": {"title": "PostgREST stand-in", "version": role},
                                  "paths": {}})


class AuthStandin(Auth):
    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": self.keys.published})


def rest(env: Mapping[str, str]) -> tuple[web.Application, int]:
    keys = EnvKeys.from_values(env.get("PGRST_JWT_SECRET"))
    return RestStandin(keys, env["PGRST_DB_URI"], []).app(), int(env.get("PGRST_SERVER_PORT", "3000"))


def auth(env: Mapping[str, str]) -> tuple[web.Application, int]:
    keys = EnvKeys.from_values(env.get("GOTRUE_JWT_SECRET"), signing_keys=env.get("GOTRUE_JWT_KEYS"))
    service = AuthStandin(keys, [ALICE, BOB], [])  # type: ignore[arg-type]
    service.issuer = env.get("GOTRUE_JWT_ISSUER") or service.issuer
    return service.app(), int(env.get("GOTRUE_API_PORT", "9999"))


def realtime(env: Mapping[str, str]) -> tuple[web.Application, int]:
    keys = EnvKeys.from_values(env.get("API_JWT_SECRET"), env.get("API_JWT_JWKS"))
    app = Realtime(keys).app()  # type: ignore[arg-type]
    app.router.add_route("*", "/api/{tail:.*}", Echo("realtime", keys).handle)
    return app, int(env.get("PORT", "4000"))


def storage(env: Mapping[str, str]) -> tuple[web.Application, int]:
    keys = EnvKeys.from_values(env.get("AUTH_JWT_SECRET"), env.get("JWT_JWKS"))
    return Echo("storage", keys).app(), int(env.get("PORT", "5000"))


def functions(env: Mapping[str, str]) -> tuple[web.Application, int]:
    keys = EnvKeys.from_values(env.get("JWT_SECRET"), env.get("SUPABASE_JWKS"))
    verify = env.get("VERIFY_JWT", "false").lower() == "true"
    return Echo("functions", keys, verify).app(), int(env.get("PORT", "9000"))


HTTP = {"rest": rest, "auth": auth, "realtime": realtime, "storage": storage, "functions": functions}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def supavisor(env: Mapping[str, str]) -> None:
    host, port = env.get("POSTGRES_HOST", "db"), int(env.get("POSTGRES_PORT", "5432"))

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    servers = [await asyncio.start_server(relay, "0.0.0.0", p) for p in (5432, 6543)]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(json.dumps({"standin": "supavisor", "relays_to": f"{host}:{port}"}), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(name: str) -> None:
    if name == "supavisor":
        asyncio.run(supavisor(os.environ))
        return
    app, port = HTTP[name](os.environ)
    print(json.dumps({"standin": name, "port": port}), flush=True)
    web.run_app(app, host="0.0.0.0", port=port, access_log=None, print=None, shutdown_timeout=5)



