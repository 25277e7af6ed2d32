"""bench/micro.py gives a figure only when it measured what it says: every request answered
through the real listener protocol and upstream connection (it once timed only the parsing of
request heads left waiting, and nothing noticed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

MICRO = Path(__file__).resolve().parent.parent / "bench" / "micro.py"


@pytest.mark.parametrize("extra", [[], ["--limits"], ["--rules"], ["--steps"]], ids=["plain", "limits", "rules", "steps"])
def test_micro_answers_every_request_and_says_which_build(extra):
    done = subprocess.run([sys.executable, str(MICRO), "--build", "pure", "-n", "300", *extra],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.match(r"[0-9.]+ µs per request \(pure Python, no syscalls", done.stdout), done.stdout
