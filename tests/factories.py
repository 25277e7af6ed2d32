"""What tests make requests with: JWTs and keys (user JWTs, legacy keys, signing JWKs) and the
user agents of real browsers and of non-browser clients."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import JWT_SECRET


def ec_private_jwk(kid: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return jwk


def rsa_private_jwk(kid: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


def random_part(key: str) -> str:
    """The random body of an ``sb_`` key: between its type and its checksum (it may hold ``_``)."""
    return key.split("_", 2)[2][:-9]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict[str, Any], secret: str = JWT_SECRET, headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def es256(claims: dict[str, Any], jwk: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    key = jwt.PyJWK(jwk, algorithm="ES256").key
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": jwk["kid"], **(headers or {})})


def user_claims(role: str = "authenticated", ttl: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(uuid.uuid4()), "role": role, "aud": "authenticated", "iat": now, "exp": now + ttl, **extra}


def legacy_key(role: str, secret: str = JWT_SECRET) -> str:
    """A legacy key as the self-hosted scripts make them: HS256, ``iss`` supabase, years long."""
    now = int(time.time())
    return hs256({"role": role, "iss": "supabase", "iat": now, "exp": now + 5 * 365 * 86400}, secret)


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token."""
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


GATEWAY_SIGNING_JWK = ec_private_jwk("gw-signing-1")
GATEWAY_RSA_SIGNING_JWK = rsa_private_jwk("gw-signing-rsa-1")
AUTH_USER_JWK = ec_private_jwk("auth-user-1")  # what the auth service signs user JWTs with
LEGACY_ANON = legacy_key("anon")
LEGACY_SERVICE_ROLE = legacy_key("service_role")



# --- user agents --------------------------------------------------------------------------------

BROWSERS = {
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36",
    "firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/18.1 Safari/605.1.15",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "ios-safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "Version/18.1 Mobile/15E148 Safari/604.1",
    "android-chrome": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/131.0.0.0 Mobile Safari/537.36",
    "ios-chrome": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "firefox-android": "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "samsung": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
               "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "opera": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "ie11": "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
}

NON_BROWSERS = {
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "node": "node",
    "node-fetch": "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "deno": "Deno/2.1.4",
    "bun": "Bun/1.1.38",
    "python-httpx": "python-httpx/0.28.1",
    "python-requests": "python-requests/2.32.3",
    "aiohttp": "Python/3.12 aiohttp/3.11.10",
    "go": "Go-http-client/1.1",
    "dart": "Dart/3.5 (dart:io)",
    "java": "Java-http-client/21.0.5",
    "okhttp": "okhttp/4.12.0",
    "powershell": "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6",
    "windows-powershell": "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.4391",
    "react-native-ios": "MyApp/1 CFNetwork/1568.200.51 Darwin/24.1.0",
    "postgrest-js": "postgrest-js/1.17.7",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}


def nested_template(levels: int, role: str = "x") -> dict[str, Any]:
    """A secret key's JWT template whose objects nest ``levels`` deep (the template is level 1)."""
    template: dict[str, Any] = {"role": role}
    node = template
    for _ in range(levels - 1):
        node["n"] = {}
        node = node["n"]
    return template


def store_ban(dsn: str, address: str, seconds: float = 600, refusals: int = 30,
              reason: str = "30 refused requests (block_after 30/m); the last: UNAUTHORIZED_INVALID_API_KEY") -> None:
    """A block as a worker stores it (gateway.rules.banstore.start_bans), announced to every gateway
    on ``dsn``."""
    import asyncpg

    from gateway.rules.banstore import start_bans
    from gateway.rules.blocks import Ban
    from tests.helpers import run_async

    async def go() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            now = time.time()
            await start_bans(pool, [Ban(address, now, now + seconds, reason, refusals)])
        finally:
            await pool.close()

    run_async(go())
