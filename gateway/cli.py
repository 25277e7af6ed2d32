"""The ``gateway`` command: serve, migrate, keys, legacy.

Every failure is one line on stderr and a non-zero exit status. Keys are built with the same
request models as the admin API's (``gateway.keys.shapes``), so the same rules hold.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, NoReturn

from gateway import build_info, listing, netcli, routes, version
from gateway.config import ConfigError, Settings, load_settings, one_line
from gateway.keys import shapes
from gateway.keys.answers import key_json
from gateway.keys.checks import InvalidInput
from gateway.keys.db import (
    UNAVAILABLE,
    DatabaseError,
    connect,
    embedded_exists,
    migrate,
    no_embedded_database,
    resolve_dsn,
    safe_reason,
)
from gateway.keys.shapes import CreateApiKeyBody, UpdateApiKeyBody
from gateway.keys.store import NotFound, Store

PROG = "gateway"


def version_line() -> str:
    """What ``gateway --version`` prints: the version and which build runs."""
    return f"{PROG} {version()} ({build_info()}, Python {sys.version.split()[0]})"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    config_help = "TOML configuration file (default: $GATEWAY_CONFIG)"
    parser = _Parser(prog=PROG, description="A self-hostable API key gateway for Supabase.")
    parser.add_argument("--config", metavar="FILE", help=config_help)
    parser.add_argument("--version", action="version", version=version_line())
    # Given again after the subcommand it wins; not given there, it leaves the first one alone.
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)

    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host", help="public listener address (server.host)")
    serve.add_argument("--port", type=int, help="public listener port (server.port)")
    serve.add_argument("--admin-port", type=int, help="admin listener port (admin.port)")
    serve.add_argument("--workers", type=int, help="worker processes (server.workers; default: one per core)")

    sub.add_parser("migrate", parents=[common], help="apply pending database migrations")

    keys = sub.add_parser("keys", parents=[common], help="manage API keys").add_subparsers(
        dest="keys_command", required=True, parser_class=_Parser)
    create = keys.add_parser("create", parents=[common], help="create a key and print it once")
    create.add_argument("--type", required=True, choices=["publishable", "secret"])
    create.add_argument("--name", required=True)
    create.add_argument("--description")
    create.add_argument("--role", help="role of the JWTs minted for a secret key (default service_role)")
    _key_field_flags(create)
    create.add_argument("--json", action="store_true", help="print one JSON object")
    update = keys.add_parser("update", parents=[common],
                             help="change a key's name, description, role, limits, expiry or restrictions")
    update.add_argument("id")
    update.add_argument("--name")
    update.add_argument("--description", help="'' clears it")
    update.add_argument("--role", help="role of the JWTs minted for a secret key")
    _key_field_flags(update, clearing=True)
    update.add_argument("--json", action="store_true", help="print one JSON object")
    lst = keys.add_parser("list", parents=[common], help="list keys (publishable ones in full, secret ones never)")
    lst.add_argument("--json", action="store_true")
    delete = keys.add_parser("delete", parents=[common], help="delete a key for good")
    delete.add_argument("id")
    delete.add_argument("--compromised", action="store_true", help="record that the key leaked")
    delete.add_argument("--reason")
    imp = keys.add_parser("import", parents=[common], help="adopt an existing key (e.g. from a self-hosted .env)")
    imp.add_argument("--type", required=True, choices=["publishable", "secret"])
    imp.add_argument("--name", required=True)
    imp.add_argument("--key", required=True, help="the key; '-' reads it from standard input")
    imp.add_argument("--description")
    imp.add_argument("--role", help="role of the JWTs minted for a secret key (default service_role)")
    _key_field_flags(imp)
    imp.add_argument("--json", action="store_true")

    legacy = sub.add_parser("legacy", parents=[common], help="legacy JWT keys (anon, service_role)")
    legacy.add_argument("action", choices=["enable", "disable", "status"])
    legacy.add_argument("--json", action="store_true")
    netcli.add_parsers(sub, common, _Parser)  # blocks, network
    return parser


def _key_field_flags(p: argparse.ArgumentParser, clearing: bool = False) -> None:
    """The flags of the fields a key's owner sets (docs/protection.md)."""
    clear = "; 'none' removes it" if clearing else ""
    p.add_argument("--limit-per-key", metavar="COUNT/WINDOW", help=f"requests with this key, e.g. 1000/m{clear}")
    p.add_argument("--limit-per-ip", metavar="COUNT/WINDOW", help=f"requests with this key per client IP{clear}")
    expiry = p.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", metavar="DURATION", help="the key ends after this long: 90s, 30m, 2h, 7d")
    expiry.add_argument("--expires-at", metavar="TIME", help=f"the key ends then (RFC 3339){clear}")
    for flag, what in (("--allow-origin", "an origin it may be used from (https://*.example.com); repeat"),
                       ("--allow-ip", "a CIDR it may be used from; repeat"),
                       ("--allow-service", f"a service it may reach ({', '.join(routes.SERVICES)}); repeat"),
                       ("--allow-resource", "a PostgREST resource it may reach (todos, rpc/search_*, graphql); repeat"),
                       ("--allow-method", "an HTTP method it may use (GET allows HEAD); repeat")):
        p.add_argument(flag, action="append", metavar="VALUE", help=what + ("; 'none' lifts it" if clearing else ""))
    p.add_argument("--quota", metavar="COUNT/PERIOD", help=f"requests per UTC day or month, e.g. 100000/month{clear}")


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What the key field flags given say, as the admin API's body would."""
    fields: dict[str, Any] = {}
    limits = {name: (None if _none(value) else value)
              for name, value in (("per_key", args.limit_per_key), ("per_ip", args.limit_per_ip)) if value is not None}
    if limits:
        fields["limits"] = limits
    if args.expires_in is not None:
        fields["expires_at"] = (datetime.now(timezone.utc) + _duration(args.expires_in)).isoformat()
    elif args.expires_at is not None:
        fields["expires_at"] = None if _none(args.expires_at) else args.expires_at
    if args.quota is not None:
        fields["quota"] = None if _none(args.quota) else args.quota
    for name, values in (("allowed_origins", args.allow_origin), ("allowed_ips", args.allow_ip),
                         ("allowed_services", args.allow_service), ("allowed_resources", args.allow_resource),
                         ("allowed_methods", args.allow_method)):
        if values is not None:
            fields[name] = [] if len(values) == 1 and _none(values[0]) else values
    return fields


RESTRICTION_FIELDS = ("allowed_origins", "allowed_ips", "allowed_services", "allowed_resources", "allowed_methods")


def _none(value: str) -> bool:
    return value.strip().lower() == "none"


def _duration(text: str) -> timedelta:
    m = re.fullmatch(r"\s*([1-9][0-9]{0,6})\s*([smhd])\s*", text)
    if m is None:
        raise InvalidInput("--expires-in", "must be a number and a unit, e.g. 90s, 30m, 2h or 7d")
    return timedelta(seconds=int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "serve":
            return _serve(settings, args)
        return _with_store(settings, lambda session: _COMMANDS[args.command](session, args),
                           create=args.command == "migrate")
    except (ConfigError, DatabaseError, InvalidInput, OSError) as e:
        return _fail(str(e))
    except NotFound as e:
        return _fail(f"no API key with id {e}")
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback: name the failure, keep its text out (it may quote input)
        return _fail(f"unexpected {type(e).__name__}; run with GATEWAY_LOG__LEVEL=debug for details")


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {one_line(message)}\n")
    return 1


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.process.server import serve

    updates: dict[str, Any] = {}
    server = settings.server.model_copy(update={k: v for k, v in (
        ("host", args.host), ("port", args.port), ("workers", args.workers)) if v is not None})
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    updates["server"] = server
    if args.admin_port is not None:
        updates["admin"] = settings.admin.model_copy(update={"port": args.admin_port})
    return serve(settings.model_copy(update=updates))


@dataclass(frozen=True)
class Session:
    """What a command works with: the store, and the migrations this run applied."""

    store: Store
    applied: list[str]


def _with_store(settings: Settings, fn: Callable[[Session], Awaitable[int]], create: bool = False) -> int:
    """Run ``fn`` on the configured database. An embedded one is made only by ``migrate``
    (``create``), and said so: any other command run where ``serve`` never ran would otherwise
    show a new, empty database as if it were the gateway's."""
    if settings.database_url is None and not embedded_exists(settings.data_dir):
        if not create:
            raise ConfigError(no_embedded_database(settings.data_dir))
        sys.stderr.write(f"creating an embedded database in {settings.data_dir.absolute() / 'pgdata'}\n")
    dsn, embedded = resolve_dsn(settings)
    try:
        return asyncio.run(_session(settings, dsn, fn))
    except UNAVAILABLE as e:  # lost in the middle of a command: nothing half-written (one transaction)
        raise DatabaseError(f"database unavailable: {safe_reason(e)}") from None
    finally:
        if embedded is not None:
            embedded.stop()


async def _session(settings: Settings, dsn: str, fn: Callable[[Session], Awaitable[int]]) -> int:
    conn = await connect(dsn)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    store = await Store.open(dsn, settings.key_checksum_ref, max_size=1)
    try:
        return await fn(Session(store, applied))
    finally:
        await store.close()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


async def _migrate(session: Session, _args: argparse.Namespace) -> int:
    applied = session.applied
    print(f"applied {', '.join(applied)}" if applied else "migrations are up to date")
    return 0


async def _keys(session: Session, args: argparse.Namespace) -> int:
    store, cmd = session.store, args.keys_command
    if cmd in ("create", "import"):
        api_key = None
        if cmd == "import":
            api_key = sys.stdin.readline().strip() if args.key == "-" else args.key.strip()
        if args.role and args.type != "secret":
            raise InvalidInput("--role", "only secret keys have a role of their own (publishable keys act as anon)")
        new = shapes.parse(CreateApiKeyBody, type=args.type, name=args.name, description=args.description,
                           secret_jwt_template={"role": args.role} if args.role else None, **_key_fields(args))
        row, plaintext = await store.create_key(new, actor=_actor(), api_key=api_key)
        out = key_json(row, plaintext)
        if args.json:
            print(json.dumps(out))
        elif cmd == "import":
            print(f"imported {row['type']} key {row['name']} ({row['prefix']}…) as {row['id']}")
        else:
            sys.stderr.write(f"created {row['type']} key {row['name']} ({row['id']}); it is shown only this once:\n")
            print(plaintext)
        return 0
    if cmd == "update":
        fields = _key_fields(args)
        if args.name is not None:
            fields["name"] = args.name
        if args.description is not None:
            fields["description"] = args.description or None
        if args.role is not None:
            fields["secret_jwt_template"] = {"role": args.role}
        if not fields:
            raise InvalidInput("update", "give at least one field to change (see gateway keys update --help)")
        row = await store.update_key(args.id, shapes.parse(UpdateApiKeyBody, **fields), actor=_actor())
        if args.json:
            print(json.dumps(key_json(row)))
        else:
            print(f"updated {row['type']} key {row['name']} ({row['id']})")
        return 0
    if cmd == "list":  # as the admin API lists them: publishable keys in full, secret keys masked
        records = await store.list_keys()
        if args.json:
            print(json.dumps([key_json(r) for r in records]))
        else:
            print("\n".join(listing.table([key_json(r) for r in records], datetime.now(timezone.utc))))
        return 0
    row = await store.delete_key(args.id, actor=_actor(), was_compromised=args.compromised, reason=args.reason)
    print(f"deleted {row['type']} key {row['name']} ({row['id']})")
    return 0


async def _legacy(session: Session, args: argparse.Namespace) -> int:
    if args.action == "status":
        state = await session.store.legacy()
    else:
        state = await session.store.set_legacy(args.action == "enable", actor=_actor())
    if args.json:
        print(json.dumps({"enabled": state.enabled,
                          "changed_at": state.changed_at.isoformat() if state.changed_at else None}))
    else:
        since = f" since {state.changed_at.isoformat(timespec='seconds')}" if state.changed_at else ""
        print(f"legacy API keys are {'enabled' if state.enabled else 'disabled'}{since}")
    return 0


_COMMANDS: dict[str, Callable[[Session, argparse.Namespace], Awaitable[int]]] = {
    "migrate": _migrate, "keys": _keys, "legacy": _legacy, **netcli.commands(_actor),
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
