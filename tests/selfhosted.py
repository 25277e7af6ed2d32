"""Supabase's self-hosted stack, as much of it as the drop-in tests need: keys made by the schemes
of its scripts, its .env, and ``docker-compose config`` of the stand-in stack with our override.

The schemes were read in supabase/supabase: ``docker/utils/generate-keys.sh`` at commit
2252666a20a837f612d9919236b2ddc824f5bb75 (JWT_SECRET, the legacy HS256 ANON_KEY /
SERVICE_ROLE_KEY) and ``docker/utils/add-new-auth-keys.sh`` at commit
12b126dc86a5949262fed769510e08197b9c27b9 (an EC P-256 key as JWT_KEYS / JWT_JWKS, the opaque
SUPABASE_PUBLISHABLE_KEY / SUPABASE_SECRET_KEY, the ES256 *_ASYMMETRIC JWTs). Rewritten here in
Python, value for value, so that the tests need neither openssl nor node. The stack's compose
files were read at ``OFFICIAL_COMMIT``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.helpers import REPO

OFFICIAL_COMMIT = "1f37f2a9d82df788cb026dd9d25c4125e26da715"
FIXTURE = REPO / "tests" / "fixtures" / "selfhosted"
OVERRIDE = REPO / "docker" / "docker-compose.gateway.yml"
CHECKSUM_REF = "supabase-self-hosted"  # PROJECT_REF of add-new-auth-keys.sh
EXAMPLE_JWT_SECRET = "your-super-secret-jwt-token-with-at-least-32-characters-long"  # .env.example's
FIVE_YEARS = 5 * 365 * 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # JSON.stringify's spacing


# --- utils/generate-keys.sh ----------------------------------------------------------------------


def legacy_keys(jwt_secret: str) -> dict[str, str]:
    """ANON_KEY and SERVICE_ROLE_KEY: HS256 over ``{"role","iss":"supabase","iat","exp"}``, 5 years."""
    iat = int(time.time())
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    out = {}
    for name, role in (("ANON_KEY", "anon"), ("SERVICE_ROLE_KEY", "service_role")):
        payload = b64url(_compact({"role": role, "iss": "supabase", "iat": iat, "exp": iat + FIVE_YEARS}).encode())
        signed = f"{header}.{payload}"
        signature = hmac.new(jwt_secret.encode(), signed.encode(), hashlib.sha256).digest()
        out[name] = f"{signed}.{b64url(signature)}"
    return out


def generated_secrets() -> dict[str, str]:
    """What generate-keys.sh writes for the gateway's part: JWT_SECRET (``openssl rand -base64
    30``, so it may hold ``+`` and ``/``) and the legacy keys signed with it."""
    jwt_secret = base64.b64encode(os.urandom(30)).decode()
    return {"JWT_SECRET": jwt_secret, **legacy_keys(jwt_secret)}


# --- utils/add-new-auth-keys.sh ------------------------------------------------------------------


def opaque_key(prefix: str) -> str:
    intermediate = prefix + b64url(os.urandom(17))[:22]
    checksum = b64url(hashlib.sha256(f"{CHECKSUM_REF}|{intermediate}".encode()).digest())[:8]
    return f"{intermediate}_{checksum}"


def new_auth_keys(jwt_secret: str) -> dict[str, str]:
    """The six variables add-new-auth-keys.sh adds to .env, for a stack with ``jwt_secret``."""
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(private, as_dict=True)
    kid = str(uuid.uuid4())
    oct_key = {"kty": "oct", "k": b64url(jwt_secret.encode()), "alg": "HS256"}
    signing = {"kty": "EC", "kid": kid, "use": "sig", "key_ops": ["sign", "verify"], "alg": "ES256", "ext": True,
               "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"], "d": jwk["d"]}
    public = {"kty": "EC", "kid": kid, "use": "sig", "key_ops": ["verify"], "alg": "ES256", "ext": True,
              "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]}

    def es256(payload: dict[str, Any]) -> str:
        signed = f"{b64url(_compact({'alg': 'ES256', 'typ': 'JWT', 'kid': kid}).encode())}." \
                 f"{b64url(_compact(payload).encode())}"
        r, s = decode_dss_signature(private.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signed}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"  # ieee-p1363

    iat = int(time.time())
    return {
        "SUPABASE_PUBLISHABLE_KEY": opaque_key("sb_publishable_"),
        "SUPABASE_SECRET_KEY": opaque_key("sb_secret_"),
        "ANON_KEY_ASYMMETRIC": es256({"role": "anon", "iss": "supabase", "iat": iat, "exp": iat + FIVE_YEARS}),
        "SERVICE_ROLE_KEY_ASYMMETRIC": es256({"role": "service_role", "iss": "supabase", "iat": iat,
                                              "exp": iat + FIVE_YEARS}),
        "JWT_KEYS": _compact([signing, oct_key]),
        "JWT_JWKS": _compact({"keys": [public, oct_key]}),
    }


def verify_with_jwks(token: str, jwks: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, claims)`` of ``token`` verified against a JWKS, as PostgREST given JWT_JWKS
    does: the key named by ``kid``, or for a token without one, a key of its algorithm."""
    header = jwt.get_unverified_header(token)
    keys = json.loads(jwks)["keys"]
    if "kid" in header:
        candidates = [k for k in keys if k.get("kid") == header["kid"]]
    else:
        candidates = [k for k in keys if "kid" not in k and k.get("alg") == header["alg"]]
    assert len(candidates) == 1, (header, keys)
    key = jwt.PyJWK(candidates[0], algorithm=header["alg"]).key
    return header, jwt.decode(token, key, algorithms=[header["alg"]], options={"verify_aud": False})


# --- the stack's .env and docker-compose ---------------------------------------------------------


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def stack_env(*, new_keys: bool, example_secret: bool = False) -> dict[str, str]:
    """The stand-in stack's .env: the example's values, plus keys as the scripts make them
    (``example_secret``: keep .env.example's JWT_SECRET; ``new_keys``: add-new-auth-keys.sh ran)."""
    env = read_env(FIXTURE / "env")
    secrets = {"JWT_SECRET": EXAMPLE_JWT_SECRET, **legacy_keys(EXAMPLE_JWT_SECRET)} if example_secret \
        else generated_secrets()
    env.update(secrets)
    if new_keys:
        env.update(new_auth_keys(env["JWT_SECRET"]))
    return env


def docker_compose() -> str | None:
    return shutil.which("docker-compose")


def compose_config(env: dict[str, str], workdir: Path, *files: Path, project_dir: Path | None = None) -> dict[str, Any]:
    """``docker-compose config`` of ``files`` (default: the stand-in stack, then the override) with
    ``env`` as .env, run in ``workdir``, which is also the project directory unless one is given:
    as the stack's own folder, it is where relative paths of every file lead."""
    env_file = workdir / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    args = [docker_compose() or "docker-compose", "-p", "supabase", "--project-directory",
            str(project_dir or workdir), "--env-file", str(env_file)]
    for f in files or (FIXTURE / "docker-compose.yml", OVERRIDE):
        args += ["-f", str(f)]
    # Nothing from the shell running the tests: compose prefers the environment to .env.
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    result = subprocess.run([*args, "config"], capture_output=True, text=True, env=clean, cwd=workdir, timeout=60)
    assert result.returncode == 0, result.stderr
    unset = set(re.findall(r"The (\w+) variable is not set", result.stderr))
    required = set(re.findall(r"\$\{(\w+)\}", OVERRIDE.read_text()))  # those without a default
    assert not unset & required, result.stderr
    return yaml.safe_load(result.stdout)
