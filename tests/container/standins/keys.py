"""JWT keys as a Supabase service reads them from its environment, for the stand-ins.

A service is given a plain-text HS256 secret (``JWT_SECRET``, ``PGRST_JWT_SECRET``, ...), a JWKS
(``JWT_JWKS``, ``API_JWT_JWKS``, ``SUPABASE_JWKS``; PostgREST's ``PGRST_JWT_SECRET`` may hold one,
or a single JWK), and Auth its signing keys (``GOTRUE_JWT_KEYS``: private JWKs, the first EC one
signs). ``EnvKeys.verify`` follows PostgREST's rules: the key the header's ``kid`` names, else
every key of the token's algorithm; ``exp`` when present; errors in PostgREST's codes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import jwt

from tests.compat.services import BadJwt

ASYMMETRIC = {"EC": "ES256", "RSA": "RS256"}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_jwk_set(text: str) -> list[dict[str, Any]] | None:
    """The JWKs in ``text`` (a JWKS, a list of JWKs or one JWK), or None if it is no JSON key."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("keys"), list):
        return value["keys"]
    if isinstance(value, dict) and "kty" in value:
        return [value]
    if isinstance(value, list):
        return value
    return None


@dataclass
class EnvKeys:
    secrets: list[bytes] = field(default_factory=list)  # HS256
    public: list[tuple[str | None, str, Any]] = field(default_factory=list)  # (kid, alg, key)
    signing: tuple[str | None, str, Any] | None = None  # Auth's: (kid, alg, private key)
    published: list[dict[str, Any]] = field(default_factory=list)  # Auth's JWKS

    @classmethod
    def from_values(cls, secret: str | None = None, jwks: str | None = None,
                    signing_keys: str | None = None) -> "EnvKeys":
        keys = cls()
        for text in (secret, jwks):
            if not text:
                continue
            jwk_set = parse_jwk_set(text)
            if jwk_set is None:
                keys.secrets.append(text.encode())
            else:
                keys._add(jwk_set, sign=False)
        if signing_keys:
            keys._add(parse_jwk_set(signing_keys) or [], sign=True)
        return keys

    def _add(self, jwk_set: list[dict[str, Any]], *, sign: bool) -> None:
        for jwk in jwk_set:
            kty = jwk.get("kty")
            if kty == "oct":
                self.secrets.append(_b64url_decode(jwk["k"]))
            elif kty in ASYMMETRIC:
                alg = jwk.get("alg") or ASYMMETRIC[kty]
                public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "key_ops")}
                self.public.append((jwk.get("kid"), alg, jwt.PyJWK(public, algorithm=alg).key))
                if sign and self.signing is None and "d" in jwk:
                    self.signing = (jwk.get("kid"), alg, jwt.PyJWK(jwk, algorithm=alg).key)
                    self.published.append({**public, "key_ops": ["verify"]})

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise BadJwt("PGRST301", "Expected 3 parts in JWT; got 1") from None
        alg = header.get("alg")
        if alg == "HS256":
            candidates: list[Any] = list(self.secrets)
        elif alg in ASYMMETRIC.values():
            kid = header.get("kid")
            candidates = [key for k, a, key in self.public if a == alg and (kid is None or k == kid)]
        else:
            candidates = []
        if not candidates:
            raise BadJwt("PGRST301", "No suitable key or wrong key type")
        for key in candidates:
            try:
                return jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False, "require": []})
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise BadJwt("PGRST303", "JWT expired") from None
            except jwt.PyJWTError:
                break
        raise BadJwt("PGRST301", "JWSError JWSInvalidSignature")

    def sign_user(self, claims: dict[str, Any]) -> str:
        """As Auth signs a session: with its first signing key, else HS256 with the secret."""
        if self.signing is not None:
            kid, alg, key = self.signing
            return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
        return jwt.encode(claims, self.secrets[0], algorithm="HS256", headers={"typ": "JWT"})
