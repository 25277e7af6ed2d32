"""JWTs: minting the short-lived ones we forward, verifying the user JWTs clients send.

Minting is cached on the key's entry and renewed once half its lifetime has passed, so a known
key costs no signature per request. Verified user JWTs are remembered until they expire.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from gateway.config import Settings
from gateway.keys.entries import KeyEntry

log = logging.getLogger("gateway")

ALLOWED_ALGS = ("HS256", "ES256", "RS256")
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
VERIFIED_MAX = 10_000
JWKS_MIN_INTERVAL = 10.0  # an unknown kid fetches the JWKS again at most this often
JWKS_MAX_AGE = 300.0  # a JWKS older than this is fetched again (keys removed by auth stop verifying)


def oct_secret(jwk: dict[str, Any]) -> bytes:
    """The secret of an ``oct`` JWK (base64url, padding optional)."""
    k = jwk["k"]
    return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))


class InvalidJwt(Exception):
    """A user JWT we refuse. The message is safe to return (it never holds the token)."""


@dataclass
class Minter:
    """Signs with the first of ``jwt.signing_keys`` (with its kid), else HS256 with ``jwt.secret``.

    Legacy keys are the exception: they are HS256 JWTs signed with ``jwt.secret``, and their
    minted JWTs are signed the same way, so whatever verifies a legacy key verifies what the
    gateway forwards for it. In a self-hosted stack whose services only know ``JWT_SECRET``
    (their JWKS lines still commented out) the legacy keys thus keep working, as they did when
    Envoy or Kong forwarded them as they were; opaque keys get the asymmetric JWT, as Envoy and
    Kong forward ``ANON_KEY_ASYMMETRIC`` / ``SERVICE_ROLE_KEY_ASYMMETRIC`` for them."""

    ref: str
    issuer: str
    ttl: int
    key: Any  # str secret or a private key object
    alg: str
    kid: str | None
    legacy_secret: str | None = None  # jwt.secret: signs the JWTs of legacy keys
    signed: int = 0  # signatures made (a known key's JWT is signed again only every ttl/2)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Minter":
        jwt_settings = settings.jwt
        legacy = None if jwt_settings.secret is None else jwt_settings.secret.get_secret_value()

        def minter(key: Any, alg: str, kid: str | None) -> "Minter":
            return cls(settings.project_ref, jwt_settings.issuer, jwt_settings.ttl_seconds, key, alg, kid, legacy)

        if jwt_settings.signing_keys:
            jwk = jwt_settings.signing_keys[0]
            if jwk["kty"] == "oct":
                return minter(oct_secret(jwk), "HS256", jwk.get("kid"))
            alg = jwk.get("alg") or ("ES256" if jwk["kty"] == "EC" else "RS256")
            return minter(jwt.PyJWK(jwk, algorithm=alg).key, alg, jwk.get("kid"))
        if legacy is None:
            raise ValueError("jwt.secret or jwt.signing_keys must be set to mint JWTs")
        return minter(legacy, "HS256", None)

    def mint(self, claims: dict[str, Any], now: float | None = None, legacy: bool = False) -> str:
        self.signed += 1
        iat = int(time.time() if now is None else now)
        payload = {**claims, "iss": self.issuer, "ref": self.ref, "iat": iat, "exp": iat + self.ttl}
        if legacy and self.legacy_secret is not None:
            return jwt.encode(payload, self.legacy_secret, algorithm="HS256")
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=headers)

    def token_for(self, entry: KeyEntry) -> str:
        """The entry's JWT, signed again only once half of its lifetime has passed."""
        now = time.time()
        if now >= entry.token_renew_at:
            entry.token = self.mint(entry.claims, now, legacy=entry.type == "legacy")
            entry.token_renew_at = now + self.ttl / 2
        return entry.token


@dataclass
class JwtVerifier:
    """User JWTs: HS256 with ``jwt.secret`` (and oct keys), ES256/RS256 against our own public
    keys and the JWKS the auth service publishes: fetched on first need, again on an unknown kid
    (rotation) and once it is older than ``JWKS_MAX_AGE`` (revocation); kept if a fetch fails."""

    settings: Settings
    jwks_url: str | None
    min_interval: float = JWKS_MIN_INTERVAL
    max_age: float = JWKS_MAX_AGE
    _hs_keys: list[bytes] = field(default_factory=list)
    _own: dict[str, Any] = field(default_factory=dict)  # kid -> PyJWK, from jwt.signing_keys
    _auth: dict[str, Any] = field(default_factory=dict)  # kid -> PyJWK, the auth service's JWKS
    _fetched_at: float = -1e9  # last attempt (rate limit)
    _loaded_at: float = -1e9  # last successful fetch (age)
    _background: asyncio.Future[None] | None = None
    _fetch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _verified: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jwt_settings = self.settings.jwt
        if jwt_settings.secret is not None:
            self._hs_keys.append(jwt_settings.secret.get_secret_value().encode())
        for jwk in jwt_settings.signing_keys:
            if jwk["kty"] == "oct":
                self._hs_keys.append(oct_secret(jwk))
            elif jwk.get("kid"):
                public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
                _add_public(self._own, public)

    def known(self, token: str) -> dict[str, Any] | None:
        """The claims of a user JWT verified before and not expired since, from memory."""
        hit = self._verified.get(token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        return None

    async def verify(self, token: str) -> dict[str, Any]:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), claims)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidJwt("Invalid JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise InvalidJwt("JWT algorithm not allowed")
        if any(h in header for h in FORBIDDEN_HEADERS):
            raise InvalidJwt("JWT header not allowed")
        options: Any = {"require": ["exp"], "verify_aud": False}  # pyjwt's Options
        if alg == "HS256":
            keys: list[Any] = self._hs_keys
        else:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise InvalidJwt("JWT without kid")
            key = self._own.get(kid)
            if key is None:
                if time.monotonic() - self._loaded_at > self.max_age:
                    if not self._auth:
                        await self._refresh()  # nothing to go on yet
                    elif self._background is None or self._background.done():
                        self._background = asyncio.ensure_future(self._refresh())  # meanwhile, the keys we have
                key = self._auth.get(kid) or await self._refresh_for(kid)
            if key is None or key.algorithm_name != alg:
                raise InvalidJwt("JWT signed by an unknown key")
            keys = [key.key]
        expired = False
        for key in keys:
            try:
                claims = jwt.decode(token, key, algorithms=[alg], options=options)
            except jwt.ExpiredSignatureError:
                expired = True
                continue
            except jwt.ImmatureSignatureError:
                raise InvalidJwt("JWT not valid yet") from None
            except jwt.PyJWTError:
                continue
            role = claims.get("role")
            if role not in self.settings.jwt.user_roles:
                raise InvalidJwt("JWT role not allowed")
            return claims
        raise InvalidJwt("JWT expired" if expired else "Invalid JWT")

    async def _refresh_for(self, kid: str) -> Any:
        """Fetch the JWKS again for an unknown kid."""
        await self._refresh()
        return self._auth.get(kid)

    async def _refresh(self) -> None:
        """Fetch the auth service's JWKS, at most once every ``JWKS_MIN_INTERVAL`` seconds."""
        if self.jwks_url is None:
            return
        started = time.monotonic()
        async with self._fetch_lock:
            if started - self._fetched_at < self.min_interval:
                return
            self._fetched_at = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    resp = await client.get(self.jwks_url)
                    resp.raise_for_status()
                    keys = resp.json().get("keys", [])
                if not isinstance(keys, list):
                    raise ValueError("keys is not a list")
            except (httpx.HTTPError, ValueError, AttributeError) as e:
                log.warning("cannot fetch the auth service's JWKS: %s", type(e).__name__)
                return  # keep the keys we have
            fresh: dict[str, Any] = {}
            for jwk in keys:
                if isinstance(jwk, dict):
                    _add_public(fresh, jwk)
            if self._auth.keys() - fresh.keys():
                self._verified.clear()  # a key was withdrawn: what it signed must verify again
            self._auth = fresh
            self._loaded_at = time.monotonic()


def _add_public(into: dict[str, Any], jwk: dict[str, Any]) -> None:
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA") or not jwk.get("kid"):
        return
    alg = jwk.get("alg") or ("ES256" if kty == "EC" else "RS256")
    if alg not in ("ES256", "RS256"):
        return
    try:
        into[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=alg)
    except jwt.PyJWTError:
        log.warning("ignoring an unusable key (kid %s) in a JWKS", jwk.get("kid"))
