"""The supervisor of ``gateway serve`` with more than one worker: it keeps them running.

``gateway serve`` prepares (the database, the listening sockets) and then becomes this program
(``os.execv``, the same process): nothing here imports more than the standard library, so the
process that only waits costs a few megabytes instead of a copy of the web stack. Workers are
``python -m gateway.child worker`` processes given the two sockets and the settings (pickled,
in a memory file that only they and this process hold). A worker that dies is replaced; SIGTERM
or SIGINT stops them all, with ``grace`` seconds for requests in flight; then the embedded
Postgres, if ``gateway serve`` started one, is released (stopped unless another process uses it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

log = logging.getLogger("gateway")

POLL_SECONDS = 0.2


def command(plan: dict[str, Any]) -> list[str]:
    """The argv that makes the current process this supervisor (``plan``: see ``main``)."""
    return [sys.executable, "-m", "gateway.supervisor", json.dumps(plan)]


def _child(kind: str, *args: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gateway.child", kind, *args], pass_fds=pass_fds)


def supervise(plan: dict[str, Any]) -> None:
    fds = (plan["public_fd"], plan["admin_fd"], plan["settings_fd"])
    args = [str(fd) for fd in fds]

    def start() -> subprocess.Popen[bytes]:
        return _child("worker", *args, pass_fds=fds)

    procs = [start() for _ in range(plan["workers"])]
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping:
        time.sleep(POLL_SECONDS)
        for i, p in enumerate(procs):
            if p.poll() is not None and not stopping:
                log.warning("worker %d exited with %s; starting another", p.pid, p.returncode)
                procs[i] = start()
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + plan["grace_seconds"] + 5
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str]) -> int:
    plan = json.loads(argv[0])
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=plan["log_level"])
    try:
        supervise(plan)
    finally:
        if plan.get("embedded_data_dir"):  # a child, so that this process never imports its library
            _child("release-embedded", plan["embedded_data_dir"], str(os.getpid())).wait()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
