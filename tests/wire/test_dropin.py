"""The drop-in for Supabase's self-hosted stack (docker/docker-compose.gateway.yml).

No container runs here. What is tested for real: the override, the repository's own compose
file and a stand-in of the official stack (tests/fixtures/selfhosted, facts read in
supabase/supabase at commit ``OFFICIAL_COMMIT``) parse and interpolate with Debian's
``docker-compose``; a real gateway started with exactly the environment the override gives
``api-gw`` (the .env of the stack, keys made by the schemes of its scripts) takes the keys the
stack already has through every route of the official Envoy config, in front of local stand-ins
that verify every JWT the way the stack's services are configured to; and its first start
imports the stack's opaque keys instead of making new ones.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from gateway.config import load_settings
from gateway.keys import apikeys
from tests.helpers import REPO, Gateway, create_database, free_port
from tests.selfhosted import (
    FIXTURE,
    OFFICIAL_COMMIT,
    OVERRIDE,
    compose_config,
    docker_compose,
    opaque_key,
    stack_env,
    verify_with_jwks,
)
from tests.upstreams import AUTH_USER_JWK, SERVICES, Upstreams, db_query, echo_header, public_jwk

needs_compose = pytest.mark.skipif(
    docker_compose() is None,
    reason="docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")

STACK_SERVICES = {"studio", "api-gw", "auth", "rest", "realtime", "storage", "meta", "functions", "db", "supavisor"}
UNUSED_SECRETS = ("ANON_KEY_ASYMMETRIC", "SERVICE_ROLE_KEY_ASYMMETRIC")


def test_files_cite_the_official_version_they_follow():
    for path in (OVERRIDE, FIXTURE / "docker-compose.yml"):
        assert OFFICIAL_COMMIT in path.read_text(), path
    assert OFFICIAL_COMMIT in (REPO / "docs" / "dropin.md").read_text()


# --- the compose files ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["env-example", "new-auth-keys"])
def stack(request) -> dict[str, str]:
    """The stack's .env: as .env.example has it, or after add-new-auth-keys.sh ran."""
    if request.param == "env-example":
        return stack_env(new_keys=False, example_secret=True)
    return stack_env(new_keys=True)


@pytest.fixture(scope="module")
def merged(stack, tmp_path_factory) -> dict:
    """``docker-compose config`` of the stand-in stack with the override."""
    if docker_compose() is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return compose_config(stack, tmp_path_factory.mktemp("stack"))


@needs_compose
def test_the_stand_in_stack_parses_alone(stack, tmp_path):
    alone = compose_config(stack, tmp_path, FIXTURE / "docker-compose.yml")
    assert set(alone["services"]) == STACK_SERVICES
    assert alone["services"]["api-gw"]["networks"]["default"]["aliases"] == ["envoy", "kong"]


@needs_compose
def test_override_replaces_api_gw_and_starts_nothing_new(merged):
    services = merged["services"]
    assert set(services) == STACK_SERVICES
    gw = services["api-gw"]
    assert gw["image"] == "supabase-api-gateway"
    assert (gw["entrypoint"], gw["command"]) == (["gateway"], ["serve"])
    # Kept: the stack's log pipeline (Vector) reads the API gateway's lines by this container name.
    assert gw["container_name"] == "supabase-envoy"
    assert gw["stop_grace_period"] in ("15s", 15, 15.0)  # past the gateway's 10 s of grace and 2 s to be gone
    assert gw["networks"]["default"]["aliases"] == ["envoy", "kong"]  # kept: others call it kong or envoy
    assert gw["depends_on"]["db"] == {"condition": "service_healthy"}
    assert "/health" in " ".join(gw["healthcheck"]["test"])  # healthy once serving, not once bound
    assert set(merged["volumes"]) == {"db-config", "deno-cache", "gateway-data"}
    # Everything else is the stack's own, untouched.
    assert services["functions"]["depends_on"]["api-gw"] == {"condition": "service_healthy"}
    assert services["functions"]["environment"]["SUPABASE_URL"] == "http://api-gw:8000"


@needs_compose
def test_override_keeps_the_public_port_and_adds_a_local_admin_port(merged, stack, tmp_path):
    ports = merged["services"]["api-gw"]["ports"]
    published = [p for p in ports if isinstance(p, dict)]
    assert published == [{"protocol": "tcp", "published": 8000, "target": 8000}]
    assert [p for p in ports if isinstance(p, str)] == ["127.0.0.1:8001:8001/tcp"]
    moved = compose_config({**stack, "KONG_HTTP_PORT": "8080", "API_GW_ADMIN_PORT": "9001"}, tmp_path)
    ports = moved["services"]["api-gw"]["ports"]
    assert {"protocol": "tcp", "published": 8080, "target": 8000} in ports
    assert "127.0.0.1:9001:8001/tcp" in ports


@needs_compose
def test_override_environment_reads_the_stack_env_as_it_is(merged, stack):
    env = merged["services"]["api-gw"]["environment"]
    for name in ("JWT_SECRET", "ANON_KEY", "SERVICE_ROLE_KEY"):
        assert env[name] == stack[name]
    for name in ("JWT_KEYS", "SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY"):
        assert env[name] == stack.get(name, "")
    for name in UNUSED_SECRETS:
        assert env[name] == ""  # Envoy's; the gateway holds no secret it does not use
    for name in ("DASHBOARD_USERNAME", "DASHBOARD_PASSWORD"):
        assert env[name] == stack[name]  # the dashboard keeps its password
    assert env["GATEWAY_LOG__FORMAT"] == "combined"  # the lines the stack's Vector parses
    dsn = urlsplit(env["GATEWAY_DATABASE_URL"])
    assert (dsn.scheme, dsn.username, dsn.password) == ("postgresql", "supabase_admin", stack["POSTGRES_PASSWORD"])
    assert (dsn.hostname, dsn.port, dsn.path) == (stack["POSTGRES_HOST"], int(stack["POSTGRES_PORT"]),
                                                  "/" + stack["POSTGRES_DB"])
    assert json.loads(env["GATEWAY_CORS__META_ORIGINS"])[0] == stack["SUPABASE_PUBLIC_URL"]


@needs_compose
def test_upstreams_are_the_services_of_the_stack(merged):
    services = merged["services"]
    by_name = {**{n: s for n, s in services.items()}, **{s["container_name"]: s for s in services.values()
                                                       if "container_name" in s}}
    env = services["api-gw"]["environment"]
    for service in (*SERVICES, "studio"):
        url = urlsplit(env[f"GATEWAY_UPSTREAMS__{service.upper()}"])
        target = by_name[url.hostname]
        assert str(url.port) in [str(p) for p in target.get("expose", [])], (service, url)
    # Realtime takes its tenant from the Host: the gateway's default Host is its container name.
    assert urlsplit(env["GATEWAY_UPSTREAMS__REALTIME"]).hostname == "realtime-dev.supabase-realtime"


@needs_compose
def test_override_environment_is_a_valid_gateway_configuration(merged, monkeypatch):
    env = merged["services"]["api-gw"]["environment"]
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name in ("JWT_SECRET", "JWT_KEYS", "ANON_KEY", "SERVICE_ROLE_KEY"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.upstreams.functions_timeout == 160
    assert settings.admin.host == "0.0.0.0" and settings.admin.token is None  # generated on first start
    assert settings.server.workers == 2
    assert bool(settings.jwt.signing_keys) == bool(env["JWT_KEYS"])
    assert settings.dashboard.username == env["DASHBOARD_USERNAME"] and settings.log.format == "combined"


@needs_compose
def test_the_repository_compose_file_builds_the_image_the_override_runs(tmp_path):
    own = compose_config({}, tmp_path, REPO / "docker-compose.yml", project_dir=REPO)
    gateway = own["services"]["gateway"]
    assert Path(gateway["build"]["context"]) == REPO
    assert gateway["image"] == "supabase-api-gateway"
    assert all(p.startswith("127.0.0.1:") for p in gateway["ports"])  # both listeners local


# --- a real gateway with the override's environment -----------------------------------------------


# Every route of the official Envoy config (docker/volumes/api/envoy/lds.template.yaml), with what
# it needs: "open" (no key), "optional" (a key, if any, must be valid), "key" (any key), "secret"
# (secret or legacy service_role key), "forbidden". Studio's catch-all `/`: test_the_dashboard_keeps_its_password.
ENVOY_ROUTES = [
    ("GET", "/auth/v1/verify?token=t&type=signup", "open"),
    ("GET", "/auth/v1/callback?code=c", "open"),
    ("GET", "/auth/v1/authorize?provider=github", "open"),
    ("GET", "/auth/v1/.well-known/jwks.json", "open"),
    ("GET", "/.well-known/oauth-authorization-server", "open"),
    ("POST", "/auth/v1/sso/saml/acs", "open"),
    ("GET", "/auth/v1/sso/saml/metadata", "open"),
    ("POST", "/functions/v1/hello", "optional"),
    ("GET", "/storage/v1/object/public/avatars/a.png", "optional"),
    ("GET", "/auth/v1/user", "key"),
    ("GET", "/rest/v1/", "secret"),
    ("GET", "/rest/v1/todos?select=*", "key"),
    ("POST", "/graphql/v1", "key"),
    ("GET", "/realtime/v1/api/openapi", "forbidden"),
    ("GET", "/realtime/v1/api/tenants/realtime-dev", "forbidden"),
    ("GET", "/realtime/v1/api/ping", "key"),
    ("GET", "/pg/tables", "secret"),
    ("GET", "/api/mcp", "forbidden"),
    ("GET", "/mcp", "forbidden"),
]
ROLES = {"publishable": "anon", "secret": "service_role", "anon": "anon", "service_role": "service_role"}


def expected_status(need: str, credential: str) -> int:
    if need == "forbidden":
        return 403
    if need in ("open", "optional"):
        return 200
    if credential == "none":
        return 401
    if need == "secret" and ROLES[credential] != "service_role":
        return 401
    return 200


@pytest.fixture(scope="module")
def served(merged, stack, pg_server):
    """The gateway with the override's environment, in front of stand-ins configured like the
    stack's services: HS256 with JWT_SECRET, ES256 with the public key of JWT_JWKS."""
    jwks = json.loads(stack["JWT_JWKS"])["keys"] if "JWT_JWKS" in stack else []
    up = Upstreams(hs_secret=stack["JWT_SECRET"],
                   public_jwks=[k for k in jwks if k["kty"] == "EC"] + [public_jwk(AUTH_USER_JWK)],
                   auth_jwks=[public_jwk(AUTH_USER_JWK)]).start()
    env = dict(merged["services"]["api-gw"]["environment"])
    # What cannot be the same outside the stack, and only that: where the database and the
    # services are, and where the gateway listens.
    env["GATEWAY_DATABASE_URL"] = create_database(pg_server)
    for service, url in up.urls.items():
        env[f"GATEWAY_UPSTREAMS__{service.upper()}"] = url
    env["GATEWAY_UPSTREAMS__STUDIO"] = up.urls["meta"]  # an echo in Studio's place
    env["GATEWAY_ADMIN__HOST"] = "127.0.0.1"
    for name in ("GATEWAY_CONFIG", "DATABASE_URL"):  # the shell's, not the stack's
        os.environ.pop(name, None)
    gw = Gateway(env, workers=int(env["GATEWAY_SERVER__WORKERS"])).start(timeout=60)
    yield gw, up, env
    gw.stop()
    up.stop()


@pytest.fixture(scope="module")
def credentials(served, stack) -> dict[str, str]:
    """The keys clients of the stack already hold; where the stack has no opaque keys yet, the
    ones the gateway made on its first start."""
    gw, _, _ = served
    keys = {"anon": stack["ANON_KEY"], "service_role": stack["SERVICE_ROLE_KEY"]}
    initial = json.loads((gw.workdir / "data" / "initial-keys.json").read_text())
    if "SUPABASE_PUBLISHABLE_KEY" in stack:
        keys.update(publishable=stack["SUPABASE_PUBLISHABLE_KEY"], secret=stack["SUPABASE_SECRET_KEY"])
        assert initial["keys"] == []  # imported: nothing new to show
    else:
        keys.update({k["type"]: k["api_key"] for k in initial["keys"]})
    assert initial["admin_token"]  # .env has no API_GW_ADMIN_TOKEN: one was made
    return keys


@needs_compose
def test_first_start_imports_the_stack_keys_and_shows_nothing_of_them(served, stack, credentials):
    gw, _, env = served
    rows = db_query(env["GATEWAY_DATABASE_URL"], "SELECT type, name, hash FROM gateway.api_keys ORDER BY type")
    assert [(r["type"], r["name"]) for r in rows] == [("publishable", "default"), ("secret", "default")]
    assert [r["hash"] for r in rows] == [apikeys.hash_key(credentials[t]) for t in ("publishable", "secret")]
    logs = gw.logs()
    for value in credentials.values():
        assert value not in logs
    if "SUPABASE_PUBLISHABLE_KEY" in stack:
        assert "imported SUPABASE_PUBLISHABLE_KEY" in logs and "imported SUPABASE_SECRET_KEY" in logs


@needs_compose
@pytest.mark.parametrize("method,target,need", ENVOY_ROUTES, ids=[f"{m} {t}" for m, t, _ in ENVOY_ROUTES])
@pytest.mark.parametrize("credential", ["publishable", "secret", "anon", "service_role", "none"])
def test_every_envoy_route_takes_the_stack_keys(served, stack, credentials, method, target, need, credential):
    gw, up, _ = served
    headers = {} if credential == "none" else {"apikey": credentials[credential]}
    r = httpx.request(method, gw.url + target, headers=headers, content=b"{}" if method == "POST" else None,
                      timeout=30)
    assert r.status_code == expected_status(need, credential), r.text
    if r.status_code != 200 or target.endswith("jwks.json"):
        return
    echo = r.json()
    for value in credentials.values():
        assert value not in r.text  # no key reached the service as it was sent
    if credential == "none":
        assert echo["verified"] == {}
        return
    # The stand-in verified every token it got; the minted one also verifies with JWT_JWKS.
    token = echo_header(echo, "authorization")[0].removeprefix("Bearer ")
    assert echo["verified"]["authorization"]["claims"]["role"] == ROLES[credential]
    if "JWT_JWKS" in stack:
        header, claims = verify_with_jwks(token, stack["JWT_JWKS"])
        assert claims["role"] == ROLES[credential]
        signing_kid = json.loads(stack["JWT_KEYS"])[0]["kid"]
        if credential in ("publishable", "secret"):  # as Envoy's *_ASYMMETRIC: ES256 with the kid
            assert (header["alg"], header["kid"]) == ("ES256", signing_kid)
        else:  # legacy keys: HS256 with JWT_SECRET, as the legacy keys themselves
            assert header["alg"] == "HS256" and "kid" not in header


@needs_compose
def test_route_headers_as_envoy_sets_them(served, credentials):
    gw, _, _ = served
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        echo = client.post("/graphql/v1", headers={"apikey": credentials["publishable"]}, content=b"{}").json()
        assert (echo["service"], echo["path"]) == ("rest", "/rpc/graphql")
        assert echo_header(echo, "content-profile") == ["graphql_public"]
        echo = client.get("/realtime/v1/api/ping", headers={"apikey": credentials["anon"]}).json()
        assert echo_header(echo, "host") == ["realtime-dev.supabase-realtime"]
        assert echo["verified"]["x-api-key"]["claims"]["role"] == "anon"
        echo = client.post("/functions/v1/hello", headers={"apikey": credentials["secret"]}).json()
        assert echo["verified"]["sb-api-key"]["claims"]["role"] == "service_role"
        echo = client.get("/storage/v1/object/sign/b/o")
        assert echo_header(echo.json(), "x-forwarded-prefix") == ["/storage/v1"]  # Storage builds URLs with it
        echo = client.get(f"/rest/v1/todos?apikey={credentials['publishable']}&select=id").json()
        assert echo["query"] == "select=id"  # Envoy reads the key from the query too; it goes no further


@needs_compose
def test_the_dashboard_keeps_its_password(served, stack, credentials):
    gw, _, _ = served
    login = (stack["DASHBOARD_USERNAME"], stack["DASHBOARD_PASSWORD"])
    for target in ("/", "/project/default"):
        assert httpx.get(gw.url + target).status_code == 401
        assert httpx.get(gw.url + target, auth=(login[0], "not-it")).status_code == 401
        r = httpx.get(gw.url + target, auth=login)
        assert r.status_code == 200 and echo_header(r.json(), "authorization") == []
        # A key is no way in: the dashboard takes its password only.
        assert httpx.get(gw.url + target, headers={"apikey": credentials["service_role"]}).status_code == 401
    assert stack["DASHBOARD_PASSWORD"] not in gw.logs()


@needs_compose
def test_pg_meta_cors_for_the_dashboard_public_url(served, stack):
    gw, _, _ = served
    ask = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "apikey"}
    r = httpx.options(gw.url + "/pg/tables", headers={"Origin": stack["SUPABASE_PUBLIC_URL"], **ask})
    assert r.headers["access-control-allow-origin"] == stack["SUPABASE_PUBLIC_URL"]
    r = httpx.options(gw.url + "/pg/tables", headers={"Origin": "http://localhost", **ask})
    assert r.headers["access-control-allow-origin"] == "http://localhost"
    r = httpx.options(gw.url + "/pg/tables", headers={"Origin": "https://elsewhere.example", **ask})
    assert "access-control-allow-origin" not in r.headers


@needs_compose
@pytest.mark.parametrize("credential", ["publishable", "secret", "anon", "service_role"])
def test_realtime_websocket_takes_the_stack_keys(served, stack, credentials, credential):
    gw, _, _ = served
    with connect(f"{gw.ws_url}/realtime/v1/websocket?apikey={credentials[credential]}&vsn=1.0.0",
                 open_timeout=10) as conn:
        conn.send("info")
        seen = json.loads(conn.recv(timeout=10))
    assert credentials[credential] not in json.dumps(seen)
    for where in ("x-api-key", "query_apikey"):
        assert seen["verified"][where]["claims"]["role"] == ROLES[credential]
    if "JWT_JWKS" in stack:
        token = dict(p.split("=", 1) for p in seen["query"].split("&"))["apikey"]
        assert verify_with_jwks(token, stack["JWT_JWKS"])[1]["role"] == ROLES[credential]


# --- first start on other stacks (no docker-compose needed) ----------------------------------------


def _serve_once(env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    from tests.helpers import gateway_cmd

    full = {"PATH": os.environ["PATH"], "GATEWAY_SERVER__HOST": "127.0.0.1",
            "GATEWAY_SERVER__PORT": str(free_port()), "GATEWAY_ADMIN__PORT": str(free_port()),
            "GATEWAY_DATA_DIR": str(workdir / "data"), **env}
    return subprocess.run(gateway_cmd("serve"), env=full, cwd=workdir, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_a_stack_key_that_cannot_be_imported_stops_the_first_start(dsn, tmp_path):
    stack = stack_env(new_keys=True)
    bad = opaque_key("sb_publishable_")[:-1] + "A"  # one checksum character off (or two)
    if apikeys.parse(bad, "supabase-self-hosted"):
        bad = bad[:-1] + "B"
    result = _serve_once({"GATEWAY_DATABASE_URL": dsn, "JWT_SECRET": stack["JWT_SECRET"],
                          "SUPABASE_PUBLISHABLE_KEY": bad, "SUPABASE_SECRET_KEY": stack["SUPABASE_SECRET_KEY"]},
                         tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("gateway: error: SUPABASE_PUBLISHABLE_KEY cannot be imported"), result.stderr
    assert bad not in result.stderr + result.stdout
    assert stack["SUPABASE_SECRET_KEY"] not in result.stderr + result.stdout
    assert db_query(dsn, "SELECT count(*) AS n FROM gateway.api_keys")[0]["n"] == 0  # nothing half-written


def test_later_starts_import_nothing_and_say_so(dsn, monkeypatch):
    for name in ("SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY", "JWT_KEYS"):
        monkeypatch.delenv(name, raising=False)
    stack = stack_env(new_keys=True)
    env = {"GATEWAY_DATABASE_URL": dsn, "JWT_SECRET": stack["JWT_SECRET"],
           "GATEWAY_ADMIN__TOKEN": "admin-token-for-this-test-0123456789"}
    gw = Gateway(env).start(timeout=60)  # first start without the stack's keys: new defaults
    gw.stop()
    first = json.loads((gw.workdir / "data" / "initial-keys.json").read_text())
    assert len(first["keys"]) == 2
    again = Gateway({**env, "SUPABASE_PUBLISHABLE_KEY": stack["SUPABASE_PUBLISHABLE_KEY"]}).start(timeout=60)
    try:
        r = httpx.get(again.url + "/rest/v1/x", headers={"apikey": stack["SUPABASE_PUBLISHABLE_KEY"]})
        assert r.status_code == 401
    finally:
        again.stop()
    logs = again.logs()
    assert "SUPABASE_PUBLISHABLE_KEY is set but is not one of the gateway's keys" in logs
    assert stack["SUPABASE_PUBLISHABLE_KEY"] not in logs


def test_minting_hs256_only_as_the_readme_says(monkeypatch):
    """README: with JWT_KEYS in .env but services that know only JWT_SECRET, the override's
    environment can take ``GATEWAY_JWT__SIGNING_KEYS: "[]"``."""
    from gateway.keys.tokens import Minter

    stack = stack_env(new_keys=True)
    for name in ("JWT_SECRET", "JWT_KEYS"):
        monkeypatch.setenv(name, stack[name])
    assert Minter.from_settings(load_settings()).alg == "ES256"
    monkeypatch.setenv("GATEWAY_JWT__SIGNING_KEYS", "[]")
    assert Minter.from_settings(load_settings()).alg == "HS256"
