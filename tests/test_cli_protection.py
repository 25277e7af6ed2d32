"""``gateway blocks list|lift`` and ``gateway network show|allow`` (docs/protection.md), run as real
subprocesses against a real Postgres, and a running gateway obeying what they change."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest

from tests import factories
from tests.helpers import JWT_SECRET, cli_error_line, cli_ok, free_port, run_cli
from tests.test_cli import cli, workdir  # noqa: F401  (fixtures)
from tests.upstreams import within


def store_ban(dsn: str, address: str, seconds: float = 600) -> None:
    factories.store_ban(dsn, address, seconds, refusals=12,
                        reason="12 refused requests (block_after 10/m); the last: UNAUTHORIZED_INVALID_API_KEY")


def test_blocks_list_and_lift(cli, dsn):
    cli_ok(cli("migrate"))
    assert cli_ok(cli("blocks", "list")).strip() == "no client is blocked"
    assert json.loads(cli_ok(cli("blocks", "list", "--json"))) == {"banned_ipv4_addresses": [], "bans": []}
    store_ban(dsn, "203.0.113.9")
    store_ban(dsn, "2001:db8:1:2::/64", seconds=90)
    lines = cli_ok(cli("blocks", "list")).splitlines()
    assert lines[0].split() == ["ADDRESS", "STARTED", "LEFT", "REASON"]
    assert lines[1].startswith("203.0.113.9 ") and "12 refused requests (block_after 10/m)" in lines[1]
    assert lines[2].startswith("2001:db8:1:2::/64 ") and (" 90s " in lines[2] or " 89s " in lines[2])
    listed = json.loads(cli_ok(cli("blocks", "list", "--json")))
    assert listed["banned_ipv4_addresses"] == ["203.0.113.9", "2001:db8:1:2::/64"]
    assert listed["bans"][0]["reason"].endswith("UNAUTHORIZED_INVALID_API_KEY")
    out = cli_ok(cli("blocks", "lift", "2001:db8:1:2::abcd", "192.0.2.1"))
    assert out.splitlines() == ["lifted the block on 2001:db8:1:2::/64", "192.0.2.1 was not blocked"]
    assert json.loads(cli_ok(cli("blocks", "lift", "::ffff:203.0.113.9", "--json"))) == {"lifted": ["203.0.113.9"]}
    assert cli_ok(cli("blocks", "list")).strip() == "no client is blocked"


@pytest.mark.parametrize(("argv", "line"), [
    (["blocks", "lift", "203.0.113.9", "secret-entry"], "gateway: error: address: entry 1 is not an IP address"),
    (["blocks", "lift", "203.0.113.0/24"], "gateway: error: address: entry 0 is not an IP address"),
    (["network", "allow", "10.0.0.0/8", "secret-entry"],
     "gateway: error: CIDR: entry 1 is not an IP address or CIDR"),
    (["network", "allow", "10.0.0.0/33"], "gateway: error: CIDR: entry 0 is not an IP address or CIDR"),
])
def test_bad_addresses_are_one_line_errors_that_never_echo_them(cli, argv, line):
    result = cli(*argv)
    assert cli_error_line(result) == line
    assert "secret-entry" not in result.stderr + result.stdout


@pytest.mark.parametrize("argv", [["blocks"], ["blocks", "lift"], ["network", "allow"], ["network", "open"]])
def test_bad_flags(cli, argv):
    cli_error_line(cli(*argv), status=2)


@pytest.mark.parametrize("argv", [["blocks", "list"], ["network", "show"], ["network", "allow", "0.0.0.0/0"]])
def test_unreachable_database(workdir, argv):  # noqa: F811
    env = {"GATEWAY_DATABASE_URL": f"postgresql://gw:hunter2-password@127.0.0.1:{free_port()}/postgres",
           "GATEWAY_DATA_DIR": str(workdir / "data")}
    line = cli_error_line(run_cli(*argv, cwd=workdir, env=env, timeout=30))
    assert "database" in line and "hunter2-password" not in line


def test_network_show_and_allow(cli):
    assert cli_ok(cli("network", "show")).strip() == "allowed: 0.0.0.0/0 ::/0 (everyone)"
    out = cli_ok(cli("network", "allow", "203.0.113.7/24", "2001:db8::/32", "::ffff:198.51.100.0/120"))
    assert out.strip() == "allowed: 203.0.113.0/24 198.51.100.0/24 2001:db8::/32"
    shown = json.loads(cli_ok(cli("network", "show", "--json", env={"GATEWAY_PROTECTION__DENY_IPS": '["192.0.2.0/24"]'})))
    assert shown["config"] == {"dbAllowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
                               "dbAllowedCidrsV6": ["2001:db8::/32"]}
    assert shown["deny_ips"] == ["192.0.2.0/24"] and shown["status"] == "applied" and shown["updated_at"]
    assert "denied (protection.deny_ips): 192.0.2.0/24" in cli_ok(cli("network", "show", env={
        "GATEWAY_PROTECTION__DENY_IPS": '["192.0.2.0/24"]'}))
    assert cli_ok(cli("network", "allow", "0.0.0.0/0", "::/0")).strip() == "allowed: 0.0.0.0/0 ::/0 (everyone)"


def test_a_running_gateway_obeys_the_cli(gateways, dsn, cli):
    g = gateways(dsn=dsn, GATEWAY_JWT__SECRET=JWT_SECRET)
    pub = g.create_key("publishable")["api_key"]

    def status(ip: str) -> int:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=10) as c:
            return c.get(g.url + "/rest/v1/todos", headers={"apikey": pub}).status_code

    cli_ok(cli("network", "allow", "127.0.0.4/32"))
    within(1, lambda: status("127.0.0.3") == 403)
    assert status("127.0.0.4") == 200
    cli_ok(cli("network", "allow", "0.0.0.0/0", "::/0"))
    within(1, lambda: status("127.0.0.3") == 200)
    store_ban(dsn, "127.0.0.3")
    within(1, lambda: status("127.0.0.3") == 429)
    cli_ok(cli("blocks", "lift", "127.0.0.3"))
    within(1, lambda: status("127.0.0.3") == 200)
    assert [a.partition(" by cli:")[0] for a in asyncio.run(_audit(dsn))] == [
        "network_restrictions.apply", "network_restrictions.apply", "network_ban.lift"]


async def _audit(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [f"{r['action']} by {r['actor']}" for r in await conn.fetch(
            "SELECT action, actor FROM gateway.audit_log WHERE action LIKE 'network%' ORDER BY id")]
    finally:
        await conn.close()
