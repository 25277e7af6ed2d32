"""The Python cost of one fast-path request, without syscalls: the real listener protocol and
upstream connection, fed bytes through fake transports, the key in memory.

    .venv/bin/python bench/micro.py              # µs per request, on the compiled build
    .venv/bin/python bench/micro.py --build pure # on the pure-Python one (docs/builds.md)
    .venv/bin/python bench/micro.py --steps      # and the inclusive time of each step
    .venv/bin/python bench/micro.py --limits     # with per_key and per_ip limits that never refuse
    .venv/bin/python bench/micro.py --rules      # with resource and method rules that allow it

What the wire benchmark (bench/run.py) adds on top is the event loop and the four socket
syscalls of a proxied request.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = argparse.ArgumentParser(add_help=False)
BUILD.add_argument("--build", choices=("compiled", "pure"), default="compiled")


def _source_path(build: str) -> str:
    """Where ``gateway`` is imported from: the source tree, or scripts/build-compiled's directory."""
    if build == "pure":
        return str(ROOT)
    done = subprocess.run([str(ROOT / "scripts" / "build-compiled")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    if done.returncode != 0:
        raise SystemExit(f"the compiled build failed:\n{done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


sys.path.insert(0, _source_path(BUILD.parse_known_args()[0].build))

import uvicorn  # noqa: E402
import uvloop  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from gateway import build_info, decide  # noqa: E402
from gateway.auth import Authenticator  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.keys import apikeys  # noqa: E402
from gateway.keys.entries import KeyEntry  # noqa: E402
from gateway.keys.ring import KeyRing  # noqa: E402
from gateway.keys.tokens import JwtVerifier, Minter  # noqa: E402
from gateway.rules.keyrules import rules_for  # noqa: E402
from gateway.rules.limits import parse_limit  # noqa: E402
from gateway.serve import fastpath, listener  # noqa: E402
from gateway.upstream.connection import Connection  # noqa: E402

BODY = b'{"id":1,"name":"bench","items":[1,2,3],"ok":true}'
ANSWER = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 23:00:00 GMT\r\n"
          b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(BODY), BODY))
REF = "supabase-self-hosted"
STEPS = [(listener.HttpProtocol, "_start_fast"), (decide.Decider, "request"), (decide.Decider, "route"),
         (decide.Decider, "grant_now"), (decide.Decider, "plan"), (fastpath.FastRequest, "_send"),
         (fastpath.FastRequest, "upstream_head"), (fastpath.FastRequest, "upstream_done"), (decide.Decider, "record")]


class Transport:
    """Both ends: the client's (the answers counted) and the upstream's (``answer`` delivers the
    answer to what was written to it, as the loop would once the write has returned)."""

    def __init__(self, upstream: Connection | None = None) -> None:
        self.upstream = upstream
        self.asked = False
        self.answers = 0

    def write(self, data: bytes) -> None:
        self.asked = self.upstream is not None
        self.answers += data.count(b"HTTP/1.1 200 OK\r\n")

    def answer(self) -> None:
        if self.asked and self.upstream is not None:
            self.asked = False
            self.upstream.data_received(ANSWER)

    def writelines(self, data: object) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0


def timed(spent: dict[str, float], cls: type, name: str) -> None:
    f = getattr(cls, name)

    def wrapper(*a: object, **kw: object) -> object:
        t = time.perf_counter()
        try:
            return f(*a, **kw)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

    setattr(cls, name, wrapper)


async def main(n: int, steps: bool, limits: bool, rules: bool = False) -> None:
    settings = Settings(jwt={"secret": "x" * 40}, upstreams={"rest": "http://127.0.0.1:9"}, log={"access": True})
    ring = KeyRing(None, settings)  # type: ignore[arg-type]
    key = apikeys.generate("publishable", REF)
    never = parse_limit("1000000000/m") if limits else None
    ring.by_hash[apikeys.hash_key(key)] = KeyEntry("00000000-0000-0000-0000-000000000001", "publishable",
                                                    apikeys.display_prefix(key), "anon", {"role": "anon"},
                                                    per_key=never, per_ip=never,
                                                    rules=rules_for(["todos", "items", "rpc/search_*"], ["GET", "HEAD"])
                                                    if rules else None)
    auth = Authenticator(ring, Minter.from_settings(settings), JwtVerifier(settings, None), "default", REF)
    decider = decide.Decider(settings, auth)
    await decider.start()
    pool = decider.upstreams["rest"].pool
    conn = Connection(pool.read_timeout, pool._forget)
    upstream = Transport(conn)
    conn.connection_made(upstream)
    pool._idle.append(conn)
    config = uvicorn.Config(None, lifespan="off", log_config=None, access_log=False)  # type: ignore[arg-type]
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Tue, 01 Dec 2026 23:00:00 GMT")]
    protocol = listener.protocol_for(settings, decider)(config=config, server_state=state, app_state={})
    answers = Transport()
    protocol.connection_made(answers)  # type: ignore[arg-type]
    request = b"GET /rest/v1/todos HTTP/1.1\r\nHost: 127.0.0.1:8000\r\napikey: " + key.encode() + b"\r\n\r\n"
    stdout, sys.stdout = sys.stdout, open("/dev/null", "w")  # the access log
    client = protocol.transport  # the listener's coalescing transport: flushed once a loop iteration

    def one() -> None:
        protocol.data_received(request)
        upstream.answer()
        client.flush()

    gc.freeze()
    for _ in range(2000):
        one()
    spent: dict[str, float] = {}
    if steps:
        for cls, name in STEPS:
            timed(spent, cls, name)
    started = time.perf_counter()
    for _ in range(n):
        one()
    took = time.perf_counter() - started
    sys.stdout = stdout
    if answers.answers != 2000 + n:  # a request left waiting would make the figure meaningless
        raise SystemExit(f"only {answers.answers} of {2000 + n} requests were answered 200")
    print(f"{took / n * 1e6:.1f} µs per request ({build_info()}, no syscalls{', steps timed' if steps else ''})")
    for name, seconds in spent.items():
        print(f"  {name:14s} {seconds / n * 1e6:6.2f} µs (inclusive)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[BUILD])
    p.add_argument("-n", type=int, default=20_000)
    p.add_argument("--steps", action="store_true")
    p.add_argument("--limits", action="store_true")
    p.add_argument("--rules", action="store_true")
    args = p.parse_args()
    uvloop.run(main(args.n, args.steps, args.limits, args.rules))
