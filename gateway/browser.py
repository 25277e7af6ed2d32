"""Is this request from a web browser? Secret keys must never be used from one.

Hosted Supabase looks at the User-Agent alone and refuses some non-browsers that merely start
with ``Mozilla/`` (PowerShell, bots). We count as a browser:

- any ``Sec-Fetch-*`` header: browsers add them to every request and scripts cannot remove them
  (they are forbidden header names for ``fetch``). One exception: Node's own ``fetch`` and
  ``WebSocket`` (undici), which supabase-js and realtime-js use on a server, send
  ``Sec-Fetch-Mode`` (``cors``, ``websocket``) alone with ``User-Agent: node`` (``undici`` before
  Node 21); browsers send ``Sec-Fetch-Site`` and ``Sec-Fetch-Dest`` with it. So a lone
  ``Sec-Fetch-Mode`` from Node's user agent is not a signal; or
- a User-Agent of a browser engine: ``Mozilla/5.0 (`` (or ``4.0``) with ``AppleWebKit/`` (Chrome,
  Edge, Safari, Opera, Samsung Internet, every iOS browser, Android WebView), ``Gecko/``
  (Firefox) or ``Trident/`` (Internet Explorer), or an old ``Opera/`` ... ``Presto/`` one.

Not a browser: curl, wget, Node (undici), Deno, Bun, Python, Go, Dart, Java, the Supabase
client libraries, PowerShell (``Mozilla/5.0 (...) PowerShell/7``), crawlers that say
``(compatible; ...bot)`` without an engine token. ``Origin`` alone is no signal: server-side
code sends it too.
"""

from __future__ import annotations

import re

_ENGINE = re.compile(r"^Mozilla/[45]\.0 \(.*\b(?:AppleWebKit|Gecko|Trident)/|^Opera/.*\bPresto/")
_NOT_BROWSER = re.compile(r"\b(?:PowerShell|WindowsPowerShell)/")
_NODE_FETCH = re.compile(r"^(?:node|undici)(?:$|[/ ])")


def is_browser_user_agent(user_agent: str) -> bool:
    return _ENGINE.search(user_agent) is not None and _NOT_BROWSER.search(user_agent) is None


def is_browser(user_agent: str | None, has_sec_fetch: bool) -> bool:
    return has_sec_fetch or (user_agent is not None and is_browser_user_agent(user_agent))


def sec_fetch_signal(names: list[bytes], user_agent: str | None) -> bool:
    """Do a request's ``Sec-Fetch-*`` header names (lower-case) mark a browser?"""
    if not names:
        return False
    return not (names == [b"sec-fetch-mode"] and user_agent is not None and _NODE_FETCH.match(user_agent) is not None)
