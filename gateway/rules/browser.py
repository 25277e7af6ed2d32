"""Is this request from a web browser? Secret keys must never be used from one.

A ``Sec-Fetch-*`` header (but Node's lone ``Sec-Fetch-Mode``) or a browser engine's User-Agent;
the README's "Browsers" decision says which clients that covers and why.
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
