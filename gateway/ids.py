"""Request ids: a UUIDv7 (RFC 9562) for every request, as hosted Supabase puts in ``sb-request-id``.
Its first 48 bits are the time in milliseconds, so ids sort by time; the rest is random (not a
secret: an id only names a request in the logs)."""

from __future__ import annotations

import random
import time

_random = random.Random()
_last_ms = -1
_prefix = ""


def new_id() -> str:
    """A UUIDv7 as text: ``tttttttt-tttt-7rrr-vrrr-rrrrrrrrrrrr``."""
    global _last_ms, _prefix
    ms = time.time_ns() // 1_000_000
    if ms != _last_ms:  # the time part, formatted once a millisecond
        _last_ms = ms
        t = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
        _prefix = f"{t[:8]}-{t[8:]}-7"
    r = _random.getrandbits(74)
    low = 0x8000_0000_0000_0000 | (r & 0x3FFF_FFFF_FFFF_FFFF)  # the variant bits, then 62 random ones
    return f"{_prefix}{r >> 62:03x}-{low >> 48:04x}-{low & 0xFFFF_FFFF_FFFF:012x}"
