"""gateway.errors: refusals are data, raised fresh; a flood of refused requests leaves nothing behind.

The flood runs the real ASGI app in a subprocess of its own and reads its RSS and the number of
objects the collector tracks: counts, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gateway import errors
from gateway.auth import Authenticator, Credentials
from gateway.config import Settings
from gateway.keys import apikeys
from gateway.keys.ring import KeyRing
from gateway.keys.tokens import JwtVerifier, Minter
from gateway.routes import Policy
from tests.upstreams import JWT_SECRET


def test_each_raise_is_a_new_exception_with_its_own_short_traceback():
    raised = []
    for _ in range(3):
        try:
            raise errors.INVALID_API_KEY()
        except errors.Refusal as r:
            raised.append(r)
    assert len({id(r) for r in raised}) == 3
    assert all(r.__traceback__.tb_next is None for r in raised)
    assert raised[0].body == b'{"message": "Invalid API key", "hint": "Double check your API key."}'
    assert (raised[0].status, raised[0].code) == (401, "UNAUTHORIZED_INVALID_API_KEY")


def test_a_hint_or_message_of_its_own():
    r = errors.UPSTREAM_NOT_CONFIGURED("Set upstreams.rest to enable /rest/v1.")
    assert json.loads(r.body) == {"message": "Service not configured", "hint": "Set upstreams.rest to enable /rest/v1."}
    r = errors.INVALID_JWT(message="JWT expired")
    assert json.loads(r.body)["message"] == "JWT expired"
    assert errors.INVALID_JWT().body == errors.INVALID_JWT.body  # the prepared bytes when nothing changes


def test_the_catalogue_codes_are_unique_per_wording():
    specs = [v for v in vars(errors).values() if isinstance(v, errors.ErrorSpec)]
    assert len({(s.code, s.message) for s in specs}) == len(specs)
    assert all(s.code.isupper() and 400 <= s.status < 600 for s in specs)


async def test_refusals_from_the_authenticator_do_not_grow():
    settings = Settings(jwt={"secret": JWT_SECRET})
    auth = Authenticator(KeyRing(None, settings), Minter.from_settings(settings),  # type: ignore[arg-type]
                         JwtVerifier(settings, None), "default", "supabase-self-hosted")
    depths = []
    raised = []
    for _ in range(5):
        with pytest.raises(errors.Refusal) as e:
            await auth.check(Policy.KEY, Credentials(["sb_secret_bad"]))
        raised.append(e.value)
        depth, tb = 0, e.value.__traceback__
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert len(set(depths)) == 1 and len({id(r) for r in raised}) == 5


FLOOD = textwrap.dedent('''
    import asyncio, gc, json, os, sys
    from gateway.keys import apikeys
    from gateway.auth import Authenticator
    from gateway.config import Settings
    from gateway.keys.entries import KeyEntry
    from gateway.keys.ring import KeyRing
    from gateway.serve.asgi import Proxy
    from gateway.keys.tokens import JwtVerifier, Minter

    REF = "supabase-self-hosted"
    BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

    class NoStore:
        async def lookup_hash(self, key_hash):
            return None

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def main(total):
        settings = Settings(jwt={"secret": "JWT_SECRET"}, log={"access": False})
        ring = KeyRing(NoStore(), settings)
        secret = apikeys.generate("secret", REF)
        ring.by_hash[apikeys.hash_key(secret)] = KeyEntry("00000000-0000-0000-0000-000000000001", "secret",
                                                          apikeys.display_prefix(secret), "service_role",
                                                          {"role": "service_role"})
        auth = Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None), "default", REF)
        proxy = Proxy(settings, auth)
        await proxy.start()
        statuses = {}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        def headers(i):
            kind = i % 5
            if kind == 0:  # malformed / bad checksum, a new one every time
                return [(b"apikey", ("sb_publishable_%022d_badcheck" % i).encode())]
            if kind == 1:  # missing
                return [(b"user-agent", b"curl/8")]
            if kind == 2:  # a secret key from a browser
                return [(b"apikey", secret.encode()), (b"user-agent", BROWSER.encode())]
            if kind == 3:  # well formed, valid checksum, unknown
                return [(b"apikey", apikeys.generate("publishable", REF).encode())]
            return [(b"apikey", b"eyJhbGciOiJIUzI1NiJ9.e30.forged-%d" % i)]  # a forged JWT

        async def flood(n, start):
            for i in range(start, start + n):
                scope = {"type": "http", "method": "GET", "path": "/rest/v1/todos", "raw_path": b"/rest/v1/todos",
                         "query_string": b"", "headers": headers(i), "client": ("10.0.0.1", 1234)}
                await proxy.http(scope, receive, send)

        await flood(20_000, 0)
        gc.collect()
        before = (rss(), len(gc.get_objects()))
        await flood(total, 20_000)
        gc.collect()
        after = (rss(), len(gc.get_objects()))
        print(json.dumps({"rss": [before[0], after[0]], "objects": [before[1], after[1]], "statuses": statuses}))

    asyncio.run(main(int(sys.argv[1])))
''').replace("JWT_SECRET", JWT_SECRET, 1)


def test_memory_stays_flat_under_a_flood_of_refused_requests():
    """100,000 refused requests (bad, missing, browser-sent, unknown and forged keys) after a
    warm-up: the process holds no more memory and no more objects than before."""
    out = subprocess.run([sys.executable, "-c", FLOOD, "100000"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    statuses = {int(k): v for k, v in result["statuses"].items()}
    assert set(statuses) == {401} and sum(statuses.values()) == 120_000
    rss_before, rss_after = result["rss"]
    objects_before, objects_after = result["objects"]
    assert rss_after - rss_before < 8 * 1024 * 1024, result
    assert objects_after - objects_before < 5_000, result
    assert "sb_" not in out.stderr


async def test_no_part_of_a_refused_key_stays_referenced():
    """After a refusal, nothing refers to the key text it carried any more."""
    settings = Settings(jwt={"secret": JWT_SECRET})
    auth = Authenticator(KeyRing(None, settings), Minter.from_settings(settings),  # type: ignore[arg-type]
                         JwtVerifier(settings, None), "default", "supabase-self-hosted")
    for key in ("".join(["sb_secret_", "x" * 30]), apikeys.generate("publishable", "elsewhere")):
        key = "".join(list(key))  # an object of our own, not interned
        baseline = sys.getrefcount(key)
        for _ in range(3):
            creds = Credentials([key], authorization="Bearer " + key[:5])
            try:
                await auth.check(Policy.KEY, creds)
            except errors.Refusal:
                pass
            del creds
        assert sys.getrefcount(key) == baseline
