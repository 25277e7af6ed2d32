"""Run a supabase-js scenario of ``client.mjs`` with Node and return what it printed."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from typing import Any

from tests.compat.stack import HERE


@cache
def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is required for the supabase-js half of the compatibility suite")
    major = int(subprocess.run([node, "-p", "process.versions.node.split('.')[0]"], capture_output=True,
                               text=True, check=True).stdout.strip())
    # realtime-js needs a global WebSocket: built in from Node 22, behind a flag on Node 20/21.
    return [node, "--experimental-websocket"] if major < 22 else [node]


def run_js(url: str, scenario: str, key: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
    args = {"scenario": scenario, "url": url, "key": key, **params}
    proc = subprocess.run([*node_command(), str(HERE / "client.mjs"), json.dumps(args)], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"supabase-js scenario {scenario!r} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])
