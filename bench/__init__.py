"""The gateway's benchmark as a package: ``python bench/run.py`` starts it (see bench/README.md).

What every module shares: where results go, the progress log on stderr, and the one error a
run stops on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


class BenchError(Exception):
    """A run cannot go on: said in one line, every process stopped."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
