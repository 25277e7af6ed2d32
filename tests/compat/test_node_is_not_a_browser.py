"""Node's fetch and WebSocket (undici) add ``Sec-Fetch-Mode`` to every request: supabase-js with a
secret key on a server must not be taken for a browser. Browsers send Site and Dest with Mode.
The end-to-end proof is test_supabase_js (secret key over REST, Functions and Realtime)."""

from __future__ import annotations

import pytest

from gateway.rules.browser import sec_fetch_signal

pytestmark = pytest.mark.compat

MODE = b"sec-fetch-mode"
BROWSER_SET = [b"sec-fetch-site", MODE, b"sec-fetch-dest"]


@pytest.mark.parametrize("user_agent", ["node", "undici", "undici/6.21.0"])
def test_node_fetch_and_websocket_are_not_browsers(user_agent: str) -> None:
    assert sec_fetch_signal([MODE], user_agent) is False


@pytest.mark.parametrize("names, user_agent", [
    (BROWSER_SET, "node"),  # a page that set its User-Agent to "node" still sends Site and Dest
    ([b"sec-fetch-site"], "node"),
    ([MODE], "curl/8.5.0"),
    ([MODE], None),
    ([MODE], "nodejs-crawler"),
    (BROWSER_SET, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"),
])
def test_other_sec_fetch_headers_mark_a_browser(names: list[bytes], user_agent: str | None) -> None:
    assert sec_fetch_signal(names, user_agent) is True


def test_no_sec_fetch_header_is_no_signal() -> None:
    assert sec_fetch_signal([], "node") is False
    assert sec_fetch_signal([], None) is False
