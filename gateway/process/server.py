"""``gateway serve``: prepare the database, bind both listeners, run one worker per core.

With one worker this process is it. With more, this process prepares, then becomes the lean
supervisor of ``gateway.process.supervisor`` (same process, so the sockets and the embedded Postgres it
started stay its own), which starts the workers; each holds a key ring, upstream pools and two
servers (the public listener and the admin API).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import pickle
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from gateway import build_info, version
from gateway.config import ConfigError, Settings
from gateway.keys import apikeys
from gateway.keys.answers import key_json
from gateway.keys.checks import InvalidInput
from gateway.keys.db import EmbeddedPostgres, connect, migrate, resolve_dsn
from gateway.keys.store import Store

# The supervisor imports only what it needs; the web stack (uvicorn, FastAPI, aiohttp) is
# imported by the workers, which keeps the supervisor small and its start quick.

log = logging.getLogger("gateway")

CLEANUP_SECONDS = 0.5  # each step after the servers stopped (flushing last use, closing pools)


def run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- preparing: migrations, first-start keys, secrets to show once ---------------------------


def ensure_jwt_secret(settings: Settings) -> Settings:
    """Without ``jwt.secret`` or signing keys, use (or make) one under ``data_dir`` so a first
    start works; services verifying our JWTs must then be configured with it."""
    if settings.jwt.secret is not None or settings.jwt.signing_keys:
        return settings
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(48))
    log.warning("jwt.secret is not set: minting with the generated secret in %s", path)
    from pydantic import SecretStr

    return settings.model_copy(update={"jwt": settings.jwt.model_copy(update={"secret": SecretStr(path.read_text().strip())})})


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


# The keys of a self-hosted Supabase .env (docker/utils/add-new-auth-keys.sh writes them): on a
# first start they become the ``default`` keys, so every client keeps working.
IMPORT_ENV = {"publishable": "SUPABASE_PUBLISHABLE_KEY", "secret": "SUPABASE_SECRET_KEY"}


def keys_to_import() -> dict[str, str]:
    return {t: v.strip() for t, name in IMPORT_ENV.items() if (v := os.environ.get(name, "")).strip()}


async def prepare(settings: Settings, dsn: str) -> None:
    conn = await connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    imports = keys_to_import()
    store = await Store.open(dsn, settings.key_checksum_ref, max_size=1)
    try:
        try:
            created, token = await store.bootstrap(need_admin_token=settings.admin.token is None, imports=imports)
        except InvalidInput as e:
            raise ConfigError(f"{IMPORT_ENV[e.field]} cannot be imported on first start: it is not a valid "
                              f"{e.field} key for key_checksum_ref {settings.key_checksum_ref!r}") from None
        imported = {row["type"] for row, key in created if key is None}
        for key_type, value in imports.items():
            if key_type in imported:
                log.info("first start: imported %s (%s...) as the default %s key",
                         IMPORT_ENV[key_type], apikeys.display_prefix(value), key_type)
            elif await store.lookup_hash(apikeys.hash_key(value)) is None:
                log.warning("%s is set but is not one of the gateway's keys: requests with it get 401 (adopt it "
                            "with `gateway keys import`)", IMPORT_ENV[key_type])
    finally:
        await store.close()
    shown = [key_json(row, key) for row, key in created if key is not None]
    if shown or token:
        show_once(settings, shown, token)


def show_once(settings: Settings, keys: list[dict[str, Any]], admin_token: str | None) -> None:
    """Print first-start secrets on a terminal; otherwise write them to a 0600 file."""
    if sys.stdout.isatty():
        print("\nCreated on first start; shown this once, store them now:\n")
        for k in keys:
            print(f"  {k['type']:<12} {k['name']:<10} {k['api_key']}")
        if admin_token:
            print(f"  admin token             {admin_token}")
        print(flush=True)
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "initial-keys.json"
    payload: dict[str, Any] = {"keys": keys}
    if admin_token:
        payload["admin_token"] = admin_token
    _write_private(path, json.dumps(payload, indent=2) + "\n")
    log.info("first start: initial keys%s written to %s (mode 0600)", " and admin token" if admin_token else "", path)


# --- a worker --------------------------------------------------------------------------------


async def run_worker(settings: Settings, dsn: str, public: socket.socket, admin: socket.socket,
                     lifeline: int | None = None) -> None:
    """One worker; ``lifeline``: a pipe from the supervisor, whose end stops the worker."""
    import uvicorn

    from gateway.admin.app import create_admin_app
    from gateway.auth import Authenticator
    from gateway.keys.ring import KeyRing
    from gateway.keys.tokens import JwtVerifier, Minter
    from gateway.observe import accesslog, metrics
    from gateway.rules.guard import Guard
    from gateway.rules.guardsync import GuardSync
    from gateway.rules.limits import Limiter
    from gateway.rules.limitstore import LimitSync, counter_store
    from gateway.rules.quotastore import QuotaFlusher
    from gateway.serve.asgi import Proxy
    from gateway.serve.listener import GoingAwayWebSocket, protocol_for

    class _Server(uvicorn.Server):
        """uvicorn without its own signal handling (the worker stops both servers together), and
        with nothing left open once its grace for requests in flight is over."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            yield

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            for connection in list(self.server_state.connections):  # still busy after the grace
                connection.transport.abort()

    setup_logging(settings.log.level)
    store = await Store.open(dsn, settings.key_checksum_ref)
    ring = KeyRing(store, settings)
    await ring.start()
    auth_base = settings.upstreams.base("auth")
    verifier = JwtVerifier(settings, f"{auth_base}/.well-known/jwks.json" if auth_base else None)
    auth = Authenticator(ring, Minter.from_settings(settings), verifier, settings.project_ref,
                         settings.key_checksum_ref)
    limiter = Limiter(workers=settings.server.workers or os.cpu_count() or 1)
    limit_sync = LimitSync(limiter, counter_store(settings, dsn), settings.limits.sync_ms / 1000,
                            report=metrics.limit_sync)
    limit_sync.start()
    guard = Guard.from_settings(settings)  # the allow list and blocks read before the listener answers anyone
    guard_sync = GuardSync(guard, store, ring, settings.limits.sync_ms / 1000, settings.keys.refresh_seconds)
    await guard_sync.start()
    proxy = Proxy(settings, auth, limiter, guard=guard)
    await proxy.start()
    quotas = QuotaFlusher(proxy.decider.quotas, store.pool, settings.keys.quota_flush_seconds)
    await quotas.load()  # every quota's use this month, before the first request
    quotas.start()
    common = dict(lifespan="off", log_config=None, access_log=False, server_header=False, proxy_headers=False,
                  timeout_graceful_shutdown=settings.server.grace_seconds, ws=GoingAwayWebSocket,
                  ws_max_size=64 * 1024 * 1024, timeout_keep_alive=settings.server.keepalive_seconds)
    servers = [
        _Server(uvicorn.Config(proxy, http=protocol_for(settings, proxy.decider), **common)),
        _Server(uvicorn.Config(create_admin_app(settings, store, ring), **common)),
    ]

    def stop(*_: Any) -> None:
        for s in servers:
            s.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    if lifeline is not None:

        def supervisor_gone() -> None:
            if not os.read(lifeline, 64):  # the end: the supervisor is gone
                loop.remove_reader(lifeline)
                log.warning("the supervisor is gone: stopping")
                stop()

        loop.add_reader(lifeline, supervisor_gone)
    # What start-up built (modules, the key table) lives as long as the worker: keep it out of
    # the collector's way, and let the young generation grow before collections run.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        await asyncio.gather(servers[0].serve(sockets=[public]), servers[1].serve(sockets=[admin]))
    finally:
        accesslog.ACCESS.flush()
        metrics.TALLIES.flush()
        # Each step bounded: a database or upstream that went away never holds the stop up.
        for step in (proxy.close, limit_sync.stop, quotas.stop, guard_sync.stop, ring.stop, store.close):
            try:
                await asyncio.wait_for(step(), CLEANUP_SECONDS)
            except (asyncio.TimeoutError, Exception) as e:
                log.warning("stopping: %s did not finish (%s)", step.__qualname__, type(e).__name__)


# --- the parent ------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def setup_logging(level: str) -> None:
    """Plain lines on stderr for the gateway (the access log writes its own JSON to stdout)."""
    root = logging.getLogger("gateway")
    if getattr(root, "_gateway_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    root._gateway_configured = True  # type: ignore[attr-defined]


def page_url(host: str, port: int) -> str:
    """Where a browser on this machine finds the admin listener (a wildcard address is reached
    on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


SERVICES = ("rest", "auth", "realtime", "storage", "functions", "meta")  # gateway.upstream.services.UPSTREAMS
NO_UPSTREAMS = ("no upstream is configured: every route answers 503 until upstreams.* are set ("
                + ", ".join(f"GATEWAY_UPSTREAMS__{name.upper()}" for name in SERVICES) + ")")


def configured_services(settings: Settings) -> list[str]:
    return [name for name in SERVICES if settings.upstreams.base(name) is not None]


def _stop_starting(*_: Any) -> None:
    raise SystemExit(128 + signal.SIGTERM)  # unwinds through the finally that stops Postgres


def serve(settings: Settings) -> int:
    from gateway.keys.tokens import Minter

    setup_logging(settings.log.level)
    signal.signal(signal.SIGTERM, _stop_starting)
    settings = ensure_jwt_secret(settings)
    Minter.from_settings(settings)  # fail now, not in a worker, if nothing can sign
    # Bind first: a port in use fails before anything is started or written.
    public = bind(settings.server.host, settings.server.port)
    admin = bind(settings.admin.host, settings.admin.port)
    dsn, embedded = resolve_dsn(settings)
    try:
        if embedded is not None:
            log.info("embedded PostgreSQL in %s (data_dir; set database_url to use your own)",
                     embedded.data_dir.absolute() / "pgdata")
        run(prepare(settings, dsn))
        workers = settings.server.workers or os.cpu_count() or 1
        admin_port = admin.getsockname()[1]
        log.info("gateway %s (%s) listening on http://%s:%d (public) and http://%s:%d (admin), %d worker%s",
                 version(), build_info(), settings.server.host, public.getsockname()[1], settings.admin.host,
                 admin_port, workers, "" if workers == 1 else "s")
        log.info("API Keys page: %s (sign in with the admin token)", page_url(settings.admin.host, admin_port))
        if not configured_services(settings):
            log.warning(NO_UPSTREAMS)
        if workers > 1:
            _become_supervisor(settings, dsn, public, admin, workers, embedded)
        run(run_worker(settings, dsn, public, admin))
        log.info("stopped")
        return 0
    finally:
        if embedded is not None:
            embedded.stop()


def _become_supervisor(settings: Settings, dsn: str, public: socket.socket, admin: socket.socket, workers: int,
                       embedded: EmbeddedPostgres | None) -> None:
    """Replace this process by the supervisor (``os.execv`` does not return): what it passes
    on are the two sockets, the settings in a memory file, and the metrics directory."""
    from gateway.process import supervisor

    metrics_dir = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings_fd = os.memfd_create("gateway-settings", 0)
    os.write(settings_fd, pickle.dumps((settings, dsn)))
    os.set_inheritable(settings_fd, True)
    plan = {"public_fd": public.fileno(), "admin_fd": admin.fileno(), "settings_fd": settings_fd,
            "workers": workers, "grace_seconds": settings.server.grace_seconds,
            "log_level": settings.log.level.upper(),
            "embedded_data_dir": str(embedded.data_dir.resolve()) if embedded is not None else None}
    for handler in logging.getLogger("gateway").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, supervisor.STOP_SIGNALS)  # held until its handlers are set
    os.execv(sys.executable, supervisor.command(plan))
