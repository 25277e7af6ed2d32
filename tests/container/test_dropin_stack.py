"""The drop-in, run for real: the gateway's image in Supabase's self-hosted stack, in containers.

The stack (tests/container/stack.py) is switched as docs/dropin.md says, then checked from
outside the containers as its "After switching" list does, and beyond: the stack's own keys (the
.env's opaque keys, imported, and the legacy JWTs) through the published port with supabase-py
and supabase-js, the dashboard behind its password, one line per request that the stack's Vector
parses, and the container's life: ``docker compose restart``, ``docker stop`` with a request in
flight, ``down`` and ``up`` again. The tests run in this order; the stack is removed at the end.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from supabase import create_client

from gateway.config.sections import ServerSettings
from tests.compat.node import run_js
from tests.compat.stack import ALICE, ALICE_ROWS, ALL_ROWS, ANON_ROWS
from tests.container import stack as dropin
from tests.container.engine import docker, health, logs, psql, wait_healthy
from tests.factories import random_part
from tests.helpers import REPO
from tests.vector_nginx import parse_nginx_combined

ROLES = {"publishable": "anon", "secret": "service_role", "anon": "anon", "service_role": "service_role"}
ROWS = {"anon": ANON_ROWS, "service_role": ALL_ROWS}
GRACE_SECONDS = ServerSettings.model_fields["grace_seconds"].default  # the override gives Docker 15 s


@pytest.fixture(scope="module")
def stack(images, tmp_path_factory):
    s = dropin.start(tmp_path_factory.mktemp("supabase-docker"))
    try:
        yield s
    finally:
        dropin.stop(s)


def rows(client) -> set[int]:
    return {r["id"] for r in client.table("todos").select("id").order("id").execute().data}


def secrets_of(stack) -> list[str]:
    """What no log line may hold: every key, the JWT secret, the dashboard's password."""
    env = stack.env
    return [*stack.keys.values(), env["JWT_SECRET"], env["DASHBOARD_PASSWORD"], env["POSTGRES_PASSWORD"],
            random_part(env["SUPABASE_SECRET_KEY"])]


def test_the_docs_give_these_commands():
    text = (REPO / "docs" / "dropin.md").read_text()
    for command in (dropin.SWITCH_BUILD, dropin.SWITCH_COPY, dropin.SWITCH_UP):
        assert command in text, command


def test_1_the_gateway_is_healthy_and_took_the_env_keys(stack):
    assert health(dropin.GATEWAY) == "healthy"
    image = json.loads(docker("inspect", dropin.GATEWAY).stdout)[0]["Config"]["Image"]
    assert image == "supabase-api-gateway"  # built from this repository's Dockerfile
    for container, port in ((dropin.GATEWAY, 8000), ("supabase-pooler", 5432)):
        bound = docker("port", container, f"{port}/tcp").stdout.split()
        assert bound and all(b.startswith("127.0.0.1:") for b in bound), bound  # this machine only
    said = logs(dropin.GATEWAY)
    assert "(compiled request path (mypyc)) listening on" in said  # the image's build (issue 25)
    assert "(compiled request path (mypyc), Python 3." in docker("exec", dropin.GATEWAY, "gateway", "--version").stdout
    for name in ("SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY"):
        assert f"first start: imported {name} (" in said
    for secret in secrets_of(stack):
        assert secret not in said


def test_2_3_the_first_start_wrote_an_admin_token_and_lists_the_env_keys(stack):
    initial = json.loads(docker("exec", dropin.GATEWAY, "cat", "/data/initial-keys.json").stdout)
    assert initial["keys"] == [] and initial["admin_token"]  # imported: no new key to show
    docker("exec", dropin.GATEWAY, "rm", "/data/initial-keys.json")
    listed = docker("exec", dropin.GATEWAY, "gateway", "keys", "list").stdout
    for kind in ("publishable", "secret"):  # a display prefix: the type's, then 6 characters
        assert stack.keys[kind][:len(f"sb_{kind}_") + 6] in listed
    rows = [line.split() for line in listed.splitlines() if re.match(r"[0-9a-f]{8}-", line)]
    assert [row[1] for row in rows] == ["default", "default"]  # both imported keys, named as hosted names them


def test_4_the_keys_through_the_public_port(stack):
    keys, url = stack.keys, stack.url
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/rest/v1/", headers={"apikey": keys["secret"]}).json()["swagger"] == "2.0"
        assert c.get("/rest/v1/", headers={"apikey": keys["publishable"]}).status_code == 401
        assert c.get("/auth/v1/health", headers={"apikey": keys["publishable"]}).status_code == 200
        for name, key in keys.items():
            r = c.get("/rest/v1/todos?select=id", headers={"apikey": key})
            assert r.status_code == 200 and {row["id"] for row in r.json()} == ROWS[ROLES[name]], (name, r.text)
            echo = c.post("/functions/v1/hello", headers={"apikey": key}).json()
            assert echo["verified"]["sb-api-key"]["role"] == ROLES[name]
            echo = c.get("/storage/v1/object/public/x", headers={"apikey": key}).json()
            assert echo["verified"]["authorization"]["role"] == ROLES[name]
        tables = c.get("/pg/tables", headers={"apikey": keys["secret"]})  # the real postgres-meta
        assert "todos" in {t["name"] for t in tables.json()}
        assert c.get("/pg/tables", headers={"apikey": keys["anon"]}).status_code == 401
        assert c.get("/rest/v1/todos").status_code == 401


@pytest.mark.parametrize("name", ["publishable", "secret", "anon", "service_role"])
def test_supabase_py_with_the_stack_keys(stack, name):
    stack.reseed()
    client = create_client(stack.url, stack.keys[name])
    assert rows(client) == ROWS[ROLES[name]]
    assert client.rpc("whoami", {"tag": "py"}).execute().data["db_role"] == ROLES[name]
    seen = client.functions.invoke("hello", {"body": {"hello": "py"}, "responseType": "json"})
    assert seen["verified"]["sb-api-key"]["role"] == ROLES[name]
    if ROLES[name] == "anon":
        client.auth.sign_in_with_password({"email": ALICE.email, "password": ALICE.password})
        assert rows(client) == ALICE_ROWS  # the user's JWT, verified by the gateway, reached Postgres


@pytest.mark.parametrize("name", ["publishable", "anon"])
def test_supabase_js_with_the_stack_keys(stack, name):
    stack.reseed()
    out = run_js(stack.url, "user", stack.keys[name], email=ALICE.email, password=ALICE.password,
                 other_owner="b0b00000-0000-4000-8000-000000000b0b")
    assert out["signin"]["user_id"] == ALICE.id and out["signin"]["error"] is None
    assert set(out["before"]["ids"]) == ALICE_ROWS
    assert out["insert_other"]["status"] == 403  # Row Level Security, in the real Postgres
    out = run_js(stack.url, "realtime", stack.keys[name], topic=f"room-{name}")
    assert out["receiver"]["status"] == "SUBSCRIBED" and out["message"]["payload"]["from"] == "supabase-js"


def test_the_dashboard_keeps_its_password(stack):
    login = (stack.env["DASHBOARD_USERNAME"], stack.env["DASHBOARD_PASSWORD"])
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for target in ("/", "/project/default"):
            r = c.get(target)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
            assert r.headers["sb-error-code"] == "UNAUTHORIZED_DASHBOARD"
            assert c.get(target, auth=(login[0], "wrong")).status_code == 401
            assert c.get(target, headers={"apikey": stack.keys["secret"]}).status_code == 401
            r = c.get(target, auth=login)
            assert r.status_code == 200 and r.headers["x-standin"] == "studio", r.text
            assert r.json()["path"] == target and "authorization" not in r.json()["headers"]


def test_every_request_left_a_line_the_stacks_vector_parses(stack):
    time.sleep(0.5)  # the access log is written in batches
    out = docker("logs", dropin.GATEWAY)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    parsed = [parse_nginx_combined(line) for line in lines]  # every line, or NotParsed fails the test
    assert len(parsed) > 40
    rest = [p for p in parsed if p["path"].startswith("/rest/v1/todos?select=id") and p["status"] == 200]
    assert {p["compression"].split()[1] for p in rest} >= {"role=anon", "role=service_role"}
    assert all(" upstream=rest request_id=" in p["compression"] and p["size"] > 0 for p in rest)
    assert any(p["status"] == 401 and p["path"] == "/" for p in parsed)
    assert any(p["status"] == 200 and " upstream=studio " in p["compression"] for p in parsed)
    assert any(p["method"] == "GET" and p["status"] == 101 for p in parsed)  # realtime-js's socket
    for secret in secrets_of(stack):
        assert secret not in out.stdout and secret not in out.stderr


def test_restart_keeps_every_key(stack):
    stack.compose("restart", "api-gw", timeout=120)
    wait_healthy(dropin.GATEWAY)
    for name, key in stack.keys.items():
        r = httpx.get(stack.url + "/rest/v1/todos?select=id", headers={"apikey": key}, timeout=30)
        assert r.status_code == 200, (name, r.text)


def test_stop_waits_for_a_request_in_flight(stack):
    answer: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answer.append(httpx.post(
        stack.url + "/functions/v1/slow?seconds=3", headers={"apikey": stack.keys["publishable"]}, timeout=60)))
    slow.start()
    time.sleep(1)
    started = time.monotonic()
    docker("stop", dropin.GATEWAY, timeout=120)  # Docker's own timeout: the override's 15 s
    took = time.monotonic() - started
    slow.join(60)
    assert answer and answer[0].status_code == 200 and answer[0].json()["service"] == "functions"
    assert took < GRACE_SECONDS + 2
    state = json.loads(docker("inspect", dropin.GATEWAY).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)  # stopped by itself, not killed
    with pytest.raises(httpx.TransportError):
        httpx.get(stack.url + "/health", timeout=5)


def test_down_and_up_again_imports_nothing_twice(stack):
    stack.compose("down", timeout=180)
    stack.compose("up", "-d", timeout=300)
    wait_healthy(dropin.GATEWAY)
    said = logs(dropin.GATEWAY)
    assert "first start" not in said and "imported" not in said
    count = psql(dropin.DB, "SELECT count(*) FROM gateway.api_keys").strip()
    assert count == "2"
    assert docker("exec", dropin.GATEWAY, "test", "-e", "/data/initial-keys.json", check=False).returncode == 1
    for name, key in stack.keys.items():
        r = httpx.get(stack.url + "/rest/v1/todos?select=id", headers={"apikey": key}, timeout=30)
        assert r.status_code == 200, (name, r.text)
