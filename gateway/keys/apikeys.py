"""The opaque API key format: generation, checksum, hashing, display. Pure functions, no I/O.

``sb_publishable_<22 random base64url chars>_<8 char checksum>`` (likewise ``sb_secret_``).
The checksum is the first 8 base64url characters of
``sha256(checksum_ref + "|" + prefix_and_random)``, the scheme of Supabase's self-hosted
``docker/utils/add-new-auth-keys.sh``, so keys move both ways between it and this gateway.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Literal

KeyType = Literal["publishable", "secret"]

PREFIXES: dict[str, str] = {"publishable": "sb_publishable_", "secret": "sb_secret_"}
RANDOM_LEN = 22
CHECKSUM_LEN = 8
DISPLAY_EXTRA = 6
MASK_CHAR = "·"

_B64URL = r"[A-Za-z0-9_-]"
_KEY_RE = re.compile(rf"sb_(publishable|secret)_({_B64URL}{{{RANDOM_LEN}}})_({_B64URL}{{{CHECKSUM_LEN}}})")
NAME_RE = re.compile(r"[a-z_][a-z0-9_]+")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def checksum(checksum_ref: str, body: str) -> str:
    return b64url(hashlib.sha256(f"{checksum_ref}|{body}".encode()).digest())[:CHECKSUM_LEN]


def generate(key_type: KeyType, checksum_ref: str) -> str:
    body = PREFIXES[key_type] + b64url(secrets.token_bytes(17))[:RANDOM_LEN]
    return f"{body}_{checksum(checksum_ref, body)}"


def parse(key: str, checksum_ref: str) -> KeyType | None:
    """The key's type if it is well formed and its checksum matches, else None."""
    m = _KEY_RE.fullmatch(key)
    if m is None:
        return None
    body = key[: -(CHECKSUM_LEN + 1)]
    if not secrets.compare_digest(checksum(checksum_ref, body), m.group(3)):
        return None
    return "publishable" if m.group(1) == "publishable" else "secret"


def looks_like_key(value: str) -> bool:
    """Anything in the ``sb_`` namespace is treated as an opaque key (valid or not), never a JWT."""
    return value.startswith("sb_")


def digest(key: str) -> bytes:
    """SHA256 of the key: what the key ring is looked up by."""
    return hashlib.sha256(key.encode()).digest()


def hash_key(key: str) -> str:
    """SHA256 of the key as 43-char unpadded base64url, the Management API's ``hash``."""
    return b64url(digest(key))


def display_prefix(key: str) -> str:
    for prefix in PREFIXES.values():
        if key.startswith(prefix):
            return key[: len(prefix) + DISPLAY_EXTRA]
    raise ValueError("not an opaque API key")


def masked(key_type: str) -> str:
    """What ``api_key`` shows after creation: the type prefix and mask characters."""
    return PREFIXES.get(key_type, "") + MASK_CHAR * 32


def valid_name(name: str) -> bool:
    return 4 <= len(name) <= 64 and NAME_RE.fullmatch(name) is not None
