"""gateway.serve.websocket: close codes that cannot be sent in a close frame are replaced by ones
that can (RFC 6455 7.4.1), and a refused handshake is answered over HTTP where the server can."""

from __future__ import annotations

import json

import pytest

from gateway import errors
from gateway.serve.websocket import deny, sendable


@pytest.mark.parametrize(("code", "sent"), [
    (None, 1000), (0, 1000), (1000, 1000), (1001, 1001), (1008, 1008), (1011, 1011), (4000, 4000),
    (1005, 1000),  # "no status received": never on the wire
    (1006, 1001),  # "abnormal closure": never on the wire
    (1015, 1011),  # "TLS handshake": never on the wire
])
def test_sendable_close_codes(code, sent):
    assert sendable(code) == sent


async def test_a_refused_handshake_is_an_http_answer_where_the_server_supports_it():
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    r = errors.INVALID_API_KEY()
    await deny({"extensions": {"websocket.http.response": {}}}, send, r)
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 401
    assert (b"sb-error-code", b"UNAUTHORIZED_INVALID_API_KEY") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["message"] == "Invalid API key"
    sent.clear()
    await deny({}, send, r)
    assert sent == [{"type": "websocket.close", "code": 1008}]
