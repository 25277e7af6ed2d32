"""The API Keys page's pure modules (gateway/admin/web: times, limits, the usage chart's numbers,
the dialogs' bodies, the legacy section's words, the store) under Node's own test runner:
tests/admin/web/*.test.mjs, run here so that the suite's one command runs them. By hand:
``node --test tests/admin/web/*.test.mjs``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from gateway.rules.limits import parse_limit
from gateway.rules.quota import parse_quota
from tests.helpers import REPO

WEB = REPO / "gateway" / "admin" / "web"
TESTS = REPO / "tests" / "admin" / "web"
# No DOM in these: Node imports them as they are (the page imports them too).
PURE = ("time.js", "limits.js", "usage.js", "forms.js", "legacyview.js", "store.js", "quota.js", "networkview.js")


def test_node_runs_the_unit_tests():
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the page's unit tests (tests/admin/web): apt-get install nodejs")
    files = sorted(str(p.relative_to(REPO)) for p in TESTS.glob("*.test.mjs"))
    assert files
    # A zone half an hour off UTC, whatever the machine's: the datetime-local conversions must hold there.
    env = {**os.environ, "TZ": "Asia/Kolkata", "NODE_OPTIONS": ""}
    proc = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"node --test failed:\n{report[-12000:]}"
    passed = re.search(r"^# pass (\d+)$", proc.stdout, re.M)
    assert passed and int(passed.group(1)) > 0 and re.search(r"^# fail 0$", proc.stdout, re.M), report[-4000:]


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_have_no_dom_and_a_test_file(name):
    text = (WEB / name).read_text()
    for pattern in (r"\bdocument\b", r"\bwindow\.", r"\bnavigator\b", r"\bglobalThis\b", r"Storage\b",
                    r"\bfetch\(", r"\bHTML\w*Element\b", r"querySelector", r"addEventListener"):
        assert not re.search(pattern, text), (name, pattern)
    for imported in re.findall(r'from "\./([a-z]+\.js)"', text):
        assert imported in PURE, (name, imported)
    assert (TESTS / name.replace(".js", ".test.mjs")).exists()


def test_the_page_refuses_exactly_the_limits_the_gateway_refuses():
    """tests/admin/web/limits.json: the cases limits.test.mjs puts to the page's parser, here to the gateway's."""
    cases = json.loads((TESTS / "limits.json").read_text())
    for text, count, window, stored in cases["valid"]:
        limit = parse_limit(text)
        assert (limit.count, limit.window, limit.text) == (count, window, stored), text
    for text in cases["invalid"]:
        with pytest.raises(ValueError):
            parse_limit(text)


def test_the_page_refuses_exactly_the_quotas_the_gateway_refuses():
    """tests/admin/web/quota.json: the cases quota.test.mjs puts to the page's parser, here to the gateway's."""
    cases = json.loads((TESTS / "quota.json").read_text())
    for text, count, period, stored in cases["valid"]:
        quota = parse_quota(text)
        assert (quota.count, quota.period, quota.text) == (count, period, stored), text
    for text in cases["invalid"]:
        with pytest.raises(ValueError):
            parse_quota(text)
