"""``gateway blocks list|lift`` and ``gateway network show|allow`` (docs/protection.md): the admin
API's network-bans and network-restrictions from the command line, on the same store and the same
rules (gateway.admin.netshapes, gateway.rules.banstore). A change reaches every running instance
through its notification, as one made over the admin API does.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from gateway.admin.netshapes import bans_json, lift_keys, restrictions_json
from gateway.config import load_settings
from gateway.keys.shapes import InvalidInput
from gateway.rules import banstore
from gateway.rules.network import canonical_cidrs


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    blocks = sub.add_parser("blocks", parents=[common], help="clients blocked after too many refused requests")
    cmds = blocks.add_subparsers(dest="blocks_command", required=True, parser_class=parser_class)
    lst = cmds.add_parser("list", parents=[common], help="the running blocks: address, when and why they started")
    lst.add_argument("--json", action="store_true", help="print one JSON object (the admin API's answer)")
    lift = cmds.add_parser("lift", parents=[common], help="lift the blocks on these addresses (an IPv6 address "
                                                          "lifts its /64)")
    lift.add_argument("addresses", nargs="+", metavar="ADDRESS")
    lift.add_argument("--json", action="store_true")

    network = sub.add_parser("network", parents=[common], help="the client networks the public listener answers")
    cmds = network.add_subparsers(dest="network_command", required=True, parser_class=parser_class)
    show = cmds.add_parser("show", parents=[common], help="the allow list (and protection.deny_ips)")
    show.add_argument("--json", action="store_true")
    allow = cmds.add_parser("allow", parents=[common], help="replace the allow list; 0.0.0.0/0 ::/0 is everyone")
    allow.add_argument("cidrs", nargs="+", metavar="CIDR")
    allow.add_argument("--json", action="store_true")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def block_lines(bans: list[Any], now: float) -> list[str]:
    """The table of ``gateway blocks list``."""
    if not bans:
        return ["no client is blocked"]
    width = max(len("ADDRESS"), *(len(b.address) for b in bans))
    lines = [f"{'ADDRESS':<{width}}  {'STARTED':<25}  {'LEFT':>6}  REASON"]
    for b in bans:
        left = max(0, round(b.ends_at - now))
        lines.append(f"{b.address:<{width}}  {_time(b.started_at):<25}  {left:>5}s  {b.reason}")
    return lines


async def blocks(session: Any, args: argparse.Namespace, actor: Callable[[], str]) -> int:
    pool = session.store.pool
    if args.blocks_command == "list":
        found = await banstore.active_bans(pool, time.time())
        print(json.dumps(bans_json(found)) if args.json else "\n".join(block_lines(found, time.time())))
        return 0
    keys = lift_keys("address", args.addresses)
    lifted = await banstore.lift_bans(pool, keys, actor())
    if args.json:
        print(json.dumps({"lifted": lifted}))
    else:
        for key in keys:
            print(f"lifted the block on {key}" if key in lifted else f"{key} was not blocked")
    return 0


async def network(session: Any, args: argparse.Namespace, actor: Callable[[], str]) -> int:
    pool = session.store.pool
    deny_ips = load_settings(args.config).protection.deny_ips  # as gateway.cli read them: known good
    if args.network_command == "show":
        allow = await banstore.allow_list(pool)
    else:
        try:
            cidrs = canonical_cidrs(args.cidrs)
        except ValueError as e:
            raise InvalidInput("CIDR", str(e)) from None
        _, allow = await banstore.set_allow_list(pool, lambda _old: cidrs, actor())
    if args.json:
        print(json.dumps({**restrictions_json(allow), "deny_ips": deny_ips}))
        return 0
    everyone = allow.texts == ["0.0.0.0/0", "::/0"]
    print(f"allowed: {' '.join(allow.texts) or 'nobody'}{' (everyone)' if everyone else ''}")
    if deny_ips:
        print(f"denied (protection.deny_ips): {' '.join(deny_ips)}")
    return 0


def commands(actor: Callable[[], str]) -> dict[str, Callable[[Any, argparse.Namespace], Awaitable[int]]]:
    """The handlers ``gateway.cli`` runs, by command."""
    return {"blocks": lambda session, args: blocks(session, args, actor),
            "network": lambda session, args: network(session, args, actor)}
