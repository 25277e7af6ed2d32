"""gateway.decide as tables, from memory (no network, no database): which requests the gateway
answers itself, refuses, or forwards where with which target, under which policy; what it adds
to every answer. Both ways of serving call these same methods."""

from __future__ import annotations

import uuid

import pytest

from gateway import errors
from gateway.auth import Authenticator
from gateway.config import Settings
from gateway.decide import Answer, Decider
from gateway.keys import apikeys
from gateway.keys.entries import KeyEntry
from gateway.keys.ring import KeyRing
from gateway.keys.tokens import JwtVerifier, Minter
from gateway.routes import Policy
from gateway.rules.clientip import ClientIp, parse_networks
from tests.upstreams import JWT_SECRET

REF = "supabase-self-hosted"


KEY = apikeys.generate("publishable", REF)  # the one key the decider knows


@pytest.fixture
async def decider():
    settings = Settings(jwt={"secret": JWT_SECRET}, key_checksum_ref=REF,
                        upstreams={"rest": "http://rest.internal:3000/base", "functions": "http://fn.internal:9000",
                                   "rest_replicas": ["http://replica.internal:3000"]},
                        functions={"verify": "required", "open": ["stripe-webhook"]})
    ring = KeyRing(None, settings)  # type: ignore[arg-type]
    auth = Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None), "default", REF)
    d = Decider(settings, auth)
    await d.start()
    ring.by_hash[apikeys.hash_key(KEY)] = KeyEntry("00000000-0000-0000-0000-000000000001", "publishable",
                                                    apikeys.display_prefix(KEY), "anon", {"role": "anon"})
    yield d
    await d.close()


def request(d: Decider, method: str, path: str, *headers: tuple[bytes, bytes], query: bytes = b""):
    return d.request(method, path, query, list(headers), "203.0.113.9", False, b"8000")


@pytest.mark.parametrize(("method", "path", "headers", "status", "code"), [
    ("GET", "/health", [], 200, None),
    ("OPTIONS", "/rest/v1/t", [(b"origin", b"https://a.example"), (b"access-control-request-method", b"GET")],
     200, None),
    ("GET", "/nowhere", [], 404, "NOT_FOUND"),
    ("GET", "/realtime/v1/api/tenants", [], 403, "FORBIDDEN_ROUTE"),
    ("GET", "/mcp", [], 403, "FORBIDDEN_ROUTE"),
    ("GET", "/rest/v1/a%2Fb", [], 400, "BAD_PATH"),
    ("GET", "/rest/v1/t", [(b"x-h%d" % i, b"v") for i in range(101)], 431, "REQUEST_HEADERS_TOO_LARGE"),
])
def test_what_the_gateway_answers_itself(decider, method, path, headers, status, code):
    req = request(decider, method, path, *headers)
    try:
        answer = decider.route(req)
    except errors.Refusal as r:
        assert (r.status, r.code) == (status, code)
        return
    assert isinstance(answer, Answer) and answer.status == status == req.status and code is None


@pytest.mark.parametrize(("path", "policy"), [
    ("/rest/v1/t", Policy.KEY), ("/rest/v1/", Policy.SECRET), ("/storage/v1/object/a", Policy.OPTIONAL),
    ("/functions/v1/hello", Policy.KEY_OR_USER),  # functions.verify = "required"
    ("/functions/v1/stripe-webhook/event", Policy.OPTIONAL),  # ... except the open ones
    ("/functions/v1/stripe-webhook%2Fx", Policy.KEY_OR_USER),  # refused earlier anyway (400)
    ("/auth/v1/verify", Policy.OPEN), ("/pg/tables", Policy.SECRET),
])
def test_the_policy_of_a_route(decider, path, policy):
    req = request(decider, "GET", path)
    try:
        decider.route(req)
    except errors.Refusal:
        assert "%2F" in path
        return
    assert decider.policy(req.route, req.upstream_path) is policy


def test_a_plan_says_where_with_which_target_and_headers(decider):
    key = KEY
    req = request(decider, "GET", "/rest/v1//todos", (b"apikey", key.encode()), (b"host", b"gw.example"),
                  query=b"select=id&apikey=" + key.encode())
    assert decider.route(req) is None
    plan = decider.plan(req, decider.grant_now(req))
    assert plan.upstream.name == "rest" and plan.target == "/todos?select=id"  # the key taken out
    headers = dict(plan.headers)
    assert headers[b"host"] == b"rest.internal:3000" and plan.upstream.base_path == "/base"
    assert headers[b"x-forwarded-for"] == b"203.0.113.9" and headers[b"x-forwarded-host"] == b"gw.example"
    assert headers[b"x-forwarded-prefix"] == b"/rest/v1" and headers[b"x-forwarded-port"] == b"8000"
    assert headers[b"authorization"].startswith(b"Bearer ey") and key.encode() not in b"".join(headers.values())
    assert decider.replicas_for(req) is decider.replicas  # a read: primary or replica
    replica = decider.replicas.targets[1]
    assert dict(plan.for_upstream(replica))[b"host"] == b"replica.internal:3000"


def test_writes_never_go_to_a_replica_and_an_unset_upstream_answers_503(decider):
    key = KEY.encode()
    req = request(decider, "DELETE", "/rest/v1/todos", (b"apikey", key))
    decider.route(req)
    decider.plan(req, decider.grant_now(req))
    assert decider.replicas_for(req) is None
    req = request(decider, "GET", "/auth/v1/user", (b"apikey", key))
    decider.route(req)
    with pytest.raises(errors.Refusal) as e:
        decider.plan(req, decider.grant_now(req))
    assert (e.value.status, e.value.code) == (503, "UPSTREAM_NOT_CONFIGURED")


def test_what_the_gateway_adds_to_every_answer(decider):
    plain = request(decider, "GET", "/rest/v1/t")
    rid = (b"sb-request-id", plain.id)
    assert decider.answer_headers(plain) == [rid]
    assert uuid.UUID(plain.id.decode()).version == 7
    browser = request(decider, "GET", "/rest/v1/t", (b"origin", b"https://app.example"))
    decider.route(browser)
    assert decider.answer_headers(browser) == [(b"access-control-allow-origin", b"*"),
                                               (b"access-control-expose-headers", b"*"),
                                               (b"sb-request-id", browser.id)]
    browser.rate_limit_headers = [(b"ratelimit", b'"per_ip";r=1;t=9')]
    assert decider.answer_headers(browser)[-1] == (b"ratelimit", b'"per_ip";r=1;t=9')
    assert plain.id != browser.id


def test_the_request_id_goes_upstream_and_a_trusted_proxys_own_stays(decider):
    key = KEY.encode()
    req = request(decider, "GET", "/rest/v1/t", (b"apikey", key), (b"x-request-id", b"from-client"),
                  (b"sb-request-id", b"forged"))
    decider.route(req)
    headers = decider.plan(req, decider.grant_now(req)).headers
    assert [v for n, v in headers if n == b"sb-request-id"] == [req.id]  # the client's is dropped
    assert [v for n, v in headers if n == b"x-request-id"] == [req.id]  # an untrusted peer's is replaced
    decider.client_ips = ClientIp(parse_networks(["203.0.113.0/24"]))  # now the peer is a trusted proxy
    req = request(decider, "GET", "/rest/v1/t", (b"apikey", key), (b"x-request-id", b"from-proxy"))
    decider.route(req)
    headers = decider.plan(req, decider.grant_now(req)).headers
    assert [v for n, v in headers if n == b"x-request-id"] == [b"from-proxy"]
    assert [v for n, v in headers if n == b"sb-request-id"] == [req.id]


def test_what_the_access_log_shows_before_anything_is_answered(decider):
    assert request(decider, "GET", "/rest/v1/t").status == 500
    assert decider.request("WEBSOCKET", "/realtime/v1/websocket", b"", [], "::ffff:127.0.0.2", False, None,
                           websocket=True).status == 101
    assert request(decider, "GET", "/x").client_ip == "203.0.113.9"
