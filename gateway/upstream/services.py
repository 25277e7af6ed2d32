"""One object per upstream: its keep-alive pool, Host, base path, WebSocket origin; and the read
replicas of PostgREST (docs/routing.md), chosen by outstanding requests, skipped while down."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from gateway.config import Settings
from gateway.upstream.pool import Pool

UPSTREAMS = ("rest", "realtime", "functions", "auth", "storage", "meta", "studio")
RETRY_STATUS = frozenset({502, 503})  # an answer that counts a read target as down
# aiohttp adds these unless told not to; the relay passes the client's own.
_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


@dataclass(eq=False)
class Upstream:
    name: str
    pool: Pool  # HTTP, the hot path
    host: bytes  # the Host header it gets
    base_path: str  # the path of its base URL, before the route's path
    ws_origin: str  # ws://host:port
    session: aiohttp.ClientSession | None = None  # WebSockets only, made on first use
    down_until: float = 0.0  # monotonic time before which reads skip it (0: up)
    probing: bool = False  # one read is trying it again after a fall

    def ws_session(self, connect_timeout: float) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60), auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, skip_auto_headers=_SKIP_AUTO,
                timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout),
            )
        return self.session

    async def close(self) -> None:
        await self.pool.close()
        if self.session is not None:
            await self.session.close()


def upstream_from(settings: Settings, name: str, base: str, service: str | None = None) -> Upstream:
    up = settings.upstreams
    url = urlsplit(base)
    tls = url.scheme == "https"
    pool = Pool(url.hostname or "localhost", url.port or (443 if tls else 80), connect_timeout=up.connect_timeout,
                read_timeout=up.timeout_for(service or name), tls=tls)
    host = up.realtime_host if name == "realtime" else url.netloc
    return Upstream(name, pool, host.encode("latin-1"), url.path.rstrip("/"), ("wss://" if tls else "ws://") + url.netloc)


def configured_upstreams(settings: Settings) -> dict[str, Upstream]:
    """The services that have a base URL; the others' routes answer 503."""
    out = {}
    for name in UPSTREAMS:
        base = settings.upstreams.base(name)
        if base is not None:
            out[name] = upstream_from(settings, name, base)
    return out


class ReplicaSet:
    """Where a read goes: the primary or a replica, the one with the fewest outstanding
    requests (ties taken in turn); a target that failed is skipped for ``retry_seconds``, then one
    read probes it again."""

    def __init__(self, targets: list[Upstream], retry_seconds: float) -> None:
        self.targets = targets
        self.retry_seconds = retry_seconds
        self.turn = 0

    def pick(self) -> list[Upstream]:
        """The target to try, and the one to try if it fails before answering."""
        now = time.monotonic()
        targets = self.targets
        self.turn = turn = (self.turn + 1) % len(targets)
        best: Upstream | None = None  # every target usable (the usual case): the two least busy, in one pass
        second: Upstream | None = None
        for u in targets[turn:] + targets[:turn]:
            if u.down_until > now or u.probing:
                break
            if best is None or u.pool.outstanding < best.pool.outstanding:
                second = best  # (not ``best, second = u, best``: one at a time, as compiled code does it)
                best = u
            elif second is None or u.pool.outstanding < second.pool.outstanding:
                second = u
        else:
            assert best is not None  # a replica set holds the primary and at least one replica
            if best.down_until:
                best.probing = True  # back after a fall: this read tries it
            return [best, second] if second is not None else [best]
        order = targets[turn:] + targets[:turn]
        usable = [u for u in order if u.down_until <= now and not u.probing] or order
        chosen = min(usable, key=lambda u: u.pool.outstanding)
        if chosen.down_until:
            chosen.probing = True  # this read tries it again
        rest = [u for u in usable if u is not chosen] or [u for u in order if u is not chosen]
        return [chosen, min(rest, key=lambda u: u.pool.outstanding)] if rest else [chosen]

    def served(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0
        upstream.probing = False

    def failed(self, upstream: Upstream) -> None:
        upstream.down_until = time.monotonic() + self.retry_seconds
        upstream.probing = False

    def abandoned(self, upstream: Upstream) -> None:
        """A read that ended without an answer either way (its client left): if it was the
        probe, the next read probes again."""
        upstream.probing = False


def replica_set(settings: Settings, primary: Upstream | None) -> ReplicaSet | None:
    """The replicas of ``upstreams.rest_replicas`` with the primary, or None without replicas."""
    replicas = settings.upstreams.rest_replicas
    if primary is None or not replicas:
        return None
    targets = [primary] + [upstream_from(settings, f"rest_replica_{i}", str(url).rstrip("/"), "rest")
                           for i, url in enumerate(replicas, start=1)]
    return ReplicaSet(targets, settings.upstreams.replica_retry_seconds)
