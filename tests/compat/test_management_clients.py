"""The real Management API clients against a real gateway's admin listener (docs/management-clients.md):
supabase-management-js (every api-keys and legacy-keys call it has, with and without a trailing
slash in its base URL) and the Supabase CLI binary (``supabase projects api-keys`` through a
profile file, in table, ``-o json`` and ``-o env`` output)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.keys import apikeys
from tests import factories
from tests.compat.node import node_command
from tests.compat.stack import HERE, NODE_MODULES, ensure_node_modules
from tests.helpers import JWT_SECRET, Gateway
from tests.upstreams import LEGACY_ANON, LEGACY_SERVICE_ROLE

pytestmark = pytest.mark.compat

MASK = apikeys.MASK_CHAR
REF = "abcdefghijklmnopqrst"  # the Supabase CLI insists on 20 lower-case letters


@pytest.fixture(scope="module")
def admin_gw(pg_server) -> Iterator[Gateway]:
    """A gateway with legacy keys, a Management-API-shaped admin token and project ref."""
    from tests.helpers import create_database

    ensure_node_modules()
    env = {"GATEWAY_DATABASE_URL": create_database(pg_server), "GATEWAY_JWT__SECRET": JWT_SECRET,
           "GATEWAY_ADMIN__TOKEN": "sbp_" + secrets.token_hex(20), "GATEWAY_PROJECT_REF": REF,
           "GATEWAY_LEGACY__ANON_KEY": LEGACY_ANON, "GATEWAY_LEGACY__SERVICE_ROLE_KEY": LEGACY_SERVICE_ROLE}
    with Gateway(env) as gw:
        yield gw


# --- supabase-management-js -------------------------------------------------------------------


def run_management_js(base_url: str, token: str, script: str = "management.mjs") -> dict:
    args = json.dumps({"baseUrl": base_url, "token": token, "ref": REF})
    proc = subprocess.run([*node_command(), str(HERE / script), args], capture_output=True, text=True,
                          timeout=60, cwd=HERE)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1])


def ok(result: dict, status: int = 200):
    assert "error" not in result, result
    assert result["status"] == status, result
    assert result["contentType"] == "application/json; charset=utf-8"
    return result["data"]


def failed(result: dict, status: int) -> str:
    error = result.get("error")
    assert error and error["name"] == "SupabaseManagementAPIError" and error["status"] == status, result
    return error["message"]


@pytest.mark.parametrize("trailing_slash", [False, True])
def test_supabase_management_js(admin_gw, trailing_slash):
    token = admin_gw.env["GATEWAY_ADMIN__TOKEN"]
    r = run_management_js(admin_gw.admin_url + ("/" if trailing_slash else ""), token)

    project = ok(r["project"])
    assert (project["ref"], project["status"]) == (REF, "ACTIVE_HEALTHY")

    listed = ok(r["list"])
    assert [k["id"] for k in listed[:2]] == ["anon", "service_role"]
    anon, service_role = listed[0], listed[1]
    assert anon["api_key"] == LEGACY_ANON and LEGACY_SERVICE_ROLE not in json.dumps(listed)
    for legacy, jwt in ((anon, LEGACY_ANON), (service_role, LEGACY_SERVICE_ROLE)):
        assert (legacy["type"], legacy["hash"]) == ("legacy", apikeys.hash_key(jwt)) and legacy["prefix"]
    assert ok(r["listRevealed"])[1]["api_key"] == LEGACY_SERVICE_ROLE

    pub = ok(r["createPublishable"], 201)
    assert (pub["type"], pub["name"], pub["description"]) == ("publishable", "mgmt_web", "from management-js")
    assert apikeys.parse(pub["api_key"], "supabase-self-hosted") == "publishable"
    secret = ok(r["createSecret"], 201)
    assert secret["secret_jwt_template"] == {"role": "service_role"}
    plaintext = secret["api_key"]
    assert apikeys.parse(plaintext, "supabase-self-hosted") == "secret"
    assert "expose_as_env" not in secret

    for label in ("get", "getRevealed"):  # a secret key: masked afterwards, even with reveal
        got = ok(r[label])
        assert got["id"] == secret["id"] and got["api_key"] == "sb_secret_" + MASK * 32
        assert got["hash"] == apikeys.hash_key(plaintext)
    assert ok(r["getPublishable"])["api_key"] == pub["api_key"]  # a publishable key: in full, always
    assert ok(r["getAnon"])["api_key"] == LEGACY_ANON

    updated = ok(r["update"])
    assert (updated["name"], updated["description"], updated["id"]) == ("mgmt_backend_two", None, secret["id"])

    assert ok(r["legacy"]) == {"enabled": True, "configured": ["anon", "service_role"]}
    assert ok(r["legacyOff"]) == {"enabled": False, "configured": ["anon", "service_role"]}
    assert [k for k in ok(r["listWithoutLegacy"]) if k["type"] == "legacy"] == []
    assert ok(r["legacyOn"]) == {"enabled": True, "configured": ["anon", "service_role"]}

    assert ok(r["delete"])["id"] == secret["id"]
    assert ok(r["deletePublishable"])["id"] == pub["id"]
    assert "API key not found" in failed(r["getDeleted"], 404)
    assert "name" in failed(r["badBody"], 400)
    assert "Project not found" in failed(r["unknownRef"], 404)
    assert "admin token" in failed(r["wrongToken"], 401)
    assert plaintext not in admin_gw.logs()


def test_supabase_management_js_network(admin_gw):
    store_ban(admin_gw, "203.0.113.9")
    store_ban(admin_gw, "2001:db8:1:2::/64")
    r = run_management_js(admin_gw.admin_url, admin_gw.env["GATEWAY_ADMIN__TOKEN"], "management_network.mjs")
    listed = ok(r["bans"], 201)
    assert listed["banned_ipv4_addresses"] == ["203.0.113.9", "2001:db8:1:2::/64"]
    assert [b["reason"] for b in listed["bans"]] == ["30 refused requests"] * 2
    enriched = ok(r["bansEnriched"], 201)["banned_ipv4_addresses"]
    assert [(b["banned_address"], b["identifier"]) for b in enriched] == [("203.0.113.9", REF),
                                                                          ("2001:db8:1:2::/64", REF)]
    assert ok(r["lift"]) == {"lifted": ["203.0.113.9"]}
    assert ok(r["bansAfter"], 201)["banned_ipv4_addresses"] == ["2001:db8:1:2::/64"]
    assert ok(r["restrictions"])["config"] == {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}
    applied = ok(r["apply"], 201)
    assert (applied["config"], applied["status"]) == (
        {"dbAllowedCidrs": ["203.0.113.0/24"], "dbAllowedCidrsV6": ["2001:db8::/32"]}, "applied")
    patched = ok(r["patch"])
    assert patched["config"] == {"dbAllowedCidrs": [{"address": "203.0.113.0/24", "type": "v4"},
                                                    {"address": "198.51.100.0/24", "type": "v4"}]}
    assert "dbAllowedCidrs" in failed(r["badApply"], 400) and "not-a-cidr" not in json.dumps(r["badApply"])
    assert ok(r["reset"], 201)["config"] == {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}
    assert admin_gw.admin("DELETE", "/network-bans", json={"ipv4_addresses": ["2001:db8:1:2::1"]}).json() == {
        "lifted": ["2001:db8:1:2::/64"]}


# --- the Supabase CLI ---------------------------------------------------------------------------


CLI = NODE_MODULES / ".bin" / "supabase"


def supabase_cli() -> Path:
    """The pinned CLI from tests/compat/package.json; its binary is an optional per-platform npm
    package (@supabase/cli-<os>-<arch>), so it installs through the npm registry alone."""
    if not CLI.exists():
        pytest.skip(f"the Supabase CLI is not installed in {NODE_MODULES} (run npm ci --prefix tests/compat)")
    probe = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"the Supabase CLI binary does not run on this machine: {probe.stderr.strip()[:200]}")
    assert probe.stdout.strip() == "2.117.0"
    return CLI


@pytest.fixture(scope="module")
def cli_gw(pg_server, tmp_path_factory) -> Iterator[tuple[Gateway, str, Path, dict[str, str]]]:
    """A gateway as a new user has it: admin token and the two ``default`` keys from first start."""
    from tests.helpers import create_database

    ensure_node_modules()
    env = {"GATEWAY_DATABASE_URL": create_database(pg_server), "GATEWAY_JWT__SECRET": JWT_SECRET,
           "GATEWAY_PROJECT_REF": REF, "GATEWAY_LEGACY__ANON_KEY": LEGACY_ANON,
           "GATEWAY_LEGACY__SERVICE_ROLE_KEY": LEGACY_SERVICE_ROLE}
    with Gateway(env) as gw:
        initial = json.loads((gw.workdir / "data" / "initial-keys.json").read_text())
        gw.env["GATEWAY_ADMIN__TOKEN"] = initial["admin_token"]  # for gw.admin()
        first = {k["type"]: k["api_key"] for k in initial["keys"]}
        first["web_app"] = gw.create_key("publishable", "web_app")["api_key"]
        yield gw, initial["admin_token"], tmp_path_factory.mktemp("supabase-cli"), first


def run_supabase(cli_gw, *args: str, trailing_slash: bool = False) -> str:
    return supabase(cli_gw, "projects", "api-keys", "--project-ref", REF, *args, trailing_slash=trailing_slash)


def supabase(cli_gw, *args: str, trailing_slash: bool = False, ok: bool = True) -> str:
    """Run the CLI against the gateway's admin listener through a profile file; its stdout (and
    stderr after it with ``ok=False``, which expects it to fail)."""
    gw, token, workdir, _ = cli_gw
    profile = workdir / "gateway-profile.json"  # read as YAML, so JSON does
    profile.write_text(json.dumps({"name": "self-hosted", "api_url": gw.admin_url + ("/" if trailing_slash else ""),
                                   "dashboard_url": gw.admin_url, "project_host": "localhost"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
    env.update({"SUPABASE_ACCESS_TOKEN": token, "HOME": str(workdir), "SUPABASE_TELEMETRY_DISABLED": "1",
                "DO_NOT_TRACK": "1", "NO_COLOR": "1"})
    proc = subprocess.run([str(supabase_cli()), *args, "--profile", str(profile)], capture_output=True, text=True,
                          timeout=120, cwd=workdir, env=env)
    assert (proc.returncode == 0) is ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert token not in proc.stdout + proc.stderr
    return proc.stdout if ok else proc.stdout + proc.stderr


SECRET_MASKED = "sb_secret_" + MASK * 32


def test_supabase_cli_table(cli_gw):
    first = cli_gw[3]
    out = run_supabase(cli_gw)
    rows = [tuple(cell.strip() for cell in line.split("|")) for line in out.splitlines() if "|" in line]
    assert rows[0] == ("NAME", "KEY VALUE")
    assert rows[2:] == [("anon", LEGACY_ANON), ("service_role", "eyJ" + MASK * 32), ("default", first["publishable"]),
                        ("web_app", first["web_app"]), ("default", SECRET_MASKED)]
    assert first["secret"] not in out and LEGACY_SERVICE_ROLE not in out


@pytest.mark.parametrize("trailing_slash", [False, True])
def test_supabase_cli_json(cli_gw, trailing_slash):
    first = cli_gw[3]
    listed = json.loads(run_supabase(cli_gw, "-o", "json", trailing_slash=trailing_slash))
    assert [(k["type"], k["name"]) for k in listed] == [
        ("legacy", "anon"), ("legacy", "service_role"), ("publishable", "default"), ("publishable", "web_app"),
        ("secret", "default")]
    assert [k["api_key"] for k in listed[2:]] == [first["publishable"], first["web_app"], SECRET_MASKED]
    assert [k["hash"] for k in listed] == [apikeys.hash_key(k) for k in (
        LEGACY_ANON, LEGACY_SERVICE_ROLE, first["publishable"], first["web_app"], first["secret"])]
    assert listed[4]["secret_jwt_template"] == {"role": "service_role"}


def test_supabase_cli_env(cli_gw):
    """The CLI names the ``default`` publishable key SUPABASE_PUBLISHABLE_KEY, the others by name."""
    first = cli_gw[3]
    out = run_supabase(cli_gw, "-o", "env")
    env = {k: v.strip('"') for k, v in (line.split("=", 1) for line in out.splitlines() if "=" in line)}
    assert env == {"SUPABASE_ANON_KEY": LEGACY_ANON, "SUPABASE_SERVICE_ROLE_KEY": "eyJ" + MASK * 32,
                   "SUPABASE_PUBLISHABLE_KEY": first["publishable"], "SUPABASE_WEB_APP_KEY": first["web_app"],
                   "SUPABASE_DEFAULT_KEY": SECRET_MASKED}


def test_supabase_cli_caches_the_project_it_read(cli_gw):
    """The CLI reads GET /v1/projects/{ref} and keeps its ref and name in its workdir."""
    run_supabase(cli_gw)
    cached = json.loads((cli_gw[2] / "supabase" / ".temp" / "linked-project.json").read_text())
    assert (cached["ref"], cached["name"]) == (REF, REF)


# --- network bans and restrictions (docs/protection.md) ---------------------------------------------


def store_ban(gw: Gateway, address: str) -> None:
    factories.store_ban(gw.env["GATEWAY_DATABASE_URL"], address, reason="30 refused requests")


def bans(cli_gw, command: str, *args: str, ok: bool = True) -> str:
    """``supabase network-bans``: the CLI calls it experimental."""
    return supabase(cli_gw, "network-bans", command, "--project-ref", REF, "--experimental", *args, ok=ok)


def restrictions(cli_gw, command: str, *args: str) -> str:
    return supabase(cli_gw, "network-restrictions", command, "--project-ref", REF, "--experimental", *args)


def test_supabase_cli_network_bans(cli_gw):
    gw = cli_gw[0]
    assert json.loads(bans(cli_gw, "get", "-o", "json")) == []
    store_ban(gw, "203.0.113.9")
    store_ban(gw, "2001:db8:1:2::/64")
    assert json.loads(bans(cli_gw, "get", "-o", "json")) == ["203.0.113.9", "2001:db8:1:2::/64"]
    assert "203.0.113.9" in bans(cli_gw, "get")
    # An IPv6 address inside the /64 lifts its block (the CLI takes addresses, not CIDRs).
    out = bans(cli_gw, "remove", "--db-unban-ip", "203.0.113.9", "--db-unban-ip", "2001:db8:1:2::5")
    assert "Successfully removed network bans" in out
    assert json.loads(bans(cli_gw, "get", "-o", "json")) == []
    audited = gw.admin("POST", "/network-bans/retrieve").json()
    assert audited == {"banned_ipv4_addresses": [], "bans": []}


def test_supabase_cli_network_restrictions(cli_gw):
    gw = cli_gw[0]
    try:
        out = restrictions(cli_gw, "get")
        assert out.splitlines() == ["DB Allowed IPv4 CIDRs: &[0.0.0.0/0]", "DB Allowed IPv6 CIDRs: &[::/0]",
                                    "Restrictions applied successfully: true"]
        out = restrictions(cli_gw, "update", "--db-allow-cidr", "203.0.113.0/24", "--db-allow-cidr", "2001:db8::/32",
                           "--db-allow-cidr", "127.0.0.1/32")
        assert out.splitlines()[:3] == ["DB Allowed IPv4 CIDRs: &[203.0.113.0/24 127.0.0.1/32]",
                                        "DB Allowed IPv6 CIDRs: &[2001:db8::/32]",
                                        "Restrictions applied successfully: true"]
        out = restrictions(cli_gw, "update", "--db-allow-cidr", "198.51.100.0/24", "--append")
        assert out.splitlines()[:3] == ["DB Allowed IPv4 CIDRs: &[203.0.113.0/24 127.0.0.1/32 198.51.100.0/24]",
                                        "DB Allowed IPv6 CIDRs: &[2001:db8::/32]",
                                        "Restrictions applied successfully: true"]
        got = json.loads(restrictions(cli_gw, "get", "-o", "json"))
        assert got["config"] == {"dbAllowedCidrs": ["203.0.113.0/24", "127.0.0.1/32", "198.51.100.0/24"],
                                 "dbAllowedCidrsV6": ["2001:db8::/32"]}
        assert gw.admin("GET", "/network-restrictions").json()["config"] == got["config"]
    finally:
        restrictions(cli_gw, "update", "--db-allow-cidr", "0.0.0.0/0", "--db-allow-cidr", "::/0")
    assert gw.admin("GET", "/network-restrictions").json()["config"] == {"dbAllowedCidrs": ["0.0.0.0/0"],
                                                                         "dbAllowedCidrsV6": ["::/0"]}
