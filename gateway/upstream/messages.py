"""HTTP/1.1 requests to an upstream, as pure functions: the request line and headers, and how the
body follows them."""

from __future__ import annotations

import enum
from typing import AsyncIterator, Union

Headers = list[tuple[bytes, bytes]]
Body = Union[bytes, AsyncIterator[bytes], None]

NO_BODY_STATUS = frozenset({204, 304})


class Framing(enum.Enum):
    NONE = "none"  # no body
    LENGTH = "length"  # a body in one piece, its length known
    STREAM = "stream"  # a body streamed with the client's Content-Length
    CHUNKED = "chunked"  # a body streamed without a length


def request_head(method: str, target: str, headers: Headers, body: Body) -> tuple[bytes, Framing]:
    """The request line and headers to send, and how the body follows them. ``Content-Length``
    is ours for a body in one piece and the client's for a streamed one (else chunked)."""
    streaming = body is not None and not isinstance(body, bytes)
    head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    has_length = False
    for name, value in headers:
        if name == b"content-length":
            if not streaming:
                continue
            has_length = True
        head += (name, b": ", value, b"\r\n")
    if isinstance(body, bytes):
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        return b"".join(head), Framing.LENGTH
    if not streaming:
        head.append(b"\r\n")
        return b"".join(head), Framing.NONE
    if has_length:
        head.append(b"\r\n")
        return b"".join(head), Framing.STREAM
    head.append(b"transfer-encoding: chunked\r\n\r\n")
    return b"".join(head), Framing.CHUNKED


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
