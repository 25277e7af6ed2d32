"""One object per upstream service: its keep-alive pool, Host, base path, WebSocket origin."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from gateway.config import Settings
from gateway.upstream import Pool

UPSTREAMS = ("rest", "realtime", "functions", "auth", "storage", "meta")
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


def upstream_from(settings: Settings, name: str, base: str) -> Upstream:
    up = settings.upstreams
    url = urlsplit(base)
    tls = url.scheme == "https"
    pool = Pool(url.hostname or "localhost", url.port or (443 if tls else 80), connect_timeout=up.connect_timeout,
                read_timeout=up.timeout_for(name), tls=tls)
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
