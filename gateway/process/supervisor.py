"""The supervisor of ``gateway serve`` with more than one worker: it keeps them running.

``gateway serve`` prepares (the database, the listening sockets) and then becomes this program
(``os.execv``, the same process): nothing here imports more than the standard library, so the
process that only waits costs a few megabytes instead of a copy of the web stack. Workers are
``python -m gateway.process.child worker`` processes given the two sockets and the settings (pickled,
in a memory file that only they and this process hold). A worker that dies is replaced; SIGTERM
or SIGINT stops them all, with ``grace`` seconds for requests in flight; then the embedded
Postgres, if ``gateway serve`` started one, is released (stopped unless another process uses it).
SIGTERM and SIGINT are blocked across the exec and until the handlers are in place; each worker
holds the read end of a pipe from this process and stops when it reads the end of it, so
workers never outlive their supervisor, however it ends.
"""

from __future__ import annotations

import glob
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
# A worker gets its grace for requests in flight plus this to wind down before it is killed.
STOP_MARGIN_SECONDS = 1.5


def command(plan: dict[str, Any]) -> list[str]:
    """The argv that makes the current process this supervisor (``plan``: see ``main``)."""
    return [sys.executable, "-P", "-m", "gateway.process.supervisor", json.dumps(plan)]


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _child(kind: str, *args: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    # -P: the installed package, never a ``gateway`` folder in the working directory
    return subprocess.Popen([sys.executable, "-P", "-m", "gateway.process.child", kind, *args], pass_fds=pass_fds)


class Stop:
    """Set by SIGTERM or SIGINT."""

    requested = False

    @classmethod
    def on_signal(cls, *_: Any) -> None:
        cls.requested = True


def supervise(plan: dict[str, Any]) -> None:
    lifeline, keep = os.pipe()  # workers get the read end; ``keep`` closes only with this process
    fds = (plan["public_fd"], plan["admin_fd"], plan["settings_fd"], lifeline)
    args = [str(fd) for fd in fds]
    procs: list[subprocess.Popen[bytes] | None] = [None] * plan["workers"]
    try:
        while not Stop.requested:
            for i, p in enumerate(procs):
                if Stop.requested or (p is not None and p.poll() is None):
                    continue
                if p is not None:
                    log.warning("worker %d exited with %s; starting another", p.pid, p.returncode)
                    forget_metrics(p.pid)
                try:
                    procs[i] = _child("worker", *args, pass_fds=fds)
                except OSError as e:  # out of processes or memory: try again at the next poll
                    log.error("cannot start a worker: %s", e)
                    procs[i] = None
            time.sleep(POLL_SECONDS)
    finally:
        _stop_all([p for p in procs if p is not None], plan["grace_seconds"] + STOP_MARGIN_SECONDS)
        os.close(keep)


def forget_metrics(pid: int, directory: str | None = None) -> None:
    """What prometheus_client's ``mark_process_dead`` does, without importing it: a dead worker's
    gauges of the ``live`` modes (the key ring's) no longer count; its counters still do."""
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    for path in glob.glob(os.path.join(glob.escape(directory), f"gauge_live*_{pid}.db")):
        try:
            os.remove(path)
        except OSError:
            pass


def _stop_all(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str]) -> int:
    for sig in STOP_SIGNALS:
        signal.signal(sig, Stop.on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by serve across the exec
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
