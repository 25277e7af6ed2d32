#!/usr/bin/env python3
"""The gateway's benchmark (issue 5): one command, side by side, in one run; see bench/README.md
and ``--help``. The code is the ``bench`` package next to this file."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The repository, not bench/, goes first on the path: `bench`, `gateway` and `tests` import as packages.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
