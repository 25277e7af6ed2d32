"""gateway.rules.browser as a table: which requests come from a browser (docs/requests.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rules.browser import is_browser, is_browser_user_agent, sec_fetch_signal
from tests.factories import BROWSERS, NON_BROWSERS


@pytest.mark.parametrize("name", sorted(BROWSERS))
def test_browser_user_agents(name):
    assert is_browser_user_agent(BROWSERS[name])
    assert is_browser(BROWSERS[name], False)


@pytest.mark.parametrize("name", sorted(NON_BROWSERS))
def test_non_browser_user_agents(name):
    assert not is_browser_user_agent(NON_BROWSERS[name])
    assert not is_browser(NON_BROWSERS[name], False)


@pytest.mark.parametrize(("names", "agent", "signal"), [
    ([b"sec-fetch-mode"], "curl/8", True),
    ([b"sec-fetch-site"], None, True),
    ([b"sec-fetch-dest"], "node", True),
    ([b"sec-fetch-mode"], "node", False),  # undici's fetch and WebSocket on a server
    ([b"sec-fetch-mode"], "undici", False),
    ([b"sec-fetch-mode"], "node-fetch/1.0", True),  # not undici: believed
    ([b"sec-fetch-mode", b"sec-fetch-site"], "node", True),  # browsers send more than one
    ([], BROWSERS["chrome"], False),
])
def test_sec_fetch_headers(names, agent, signal):
    assert sec_fetch_signal(names, agent) is signal


@given(st.text(max_size=200))
def test_any_user_agent_is_decided_without_error(agent):
    assert is_browser(agent, True)  # a Sec-Fetch-* signal decides, whatever the agent
    assert is_browser(agent, False) is is_browser_user_agent(agent)


@given(st.sampled_from(sorted(BROWSERS.values())), st.text(max_size=30))
def test_a_browser_stays_one_whatever_it_appends(agent, extra):
    if "PowerShell/" not in extra:
        assert is_browser_user_agent(agent + " " + extra)
