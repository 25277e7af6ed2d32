"""The processes the supervisor starts (``python -m gateway.process.child KIND ...``).

``worker PUBLIC_FD ADMIN_FD SETTINGS_FD LIFELINE_FD``: one worker on the inherited sockets, with
the settings ``gateway serve`` resolved (pickled in the memory file ``SETTINGS_FD``, read from
its start: every worker, first or replacement, runs with the same settings); it stops when
``LIFELINE_FD``, a pipe from the supervisor, ends.

``release-embedded DATA_DIR PID``: the embedded Postgres under ``DATA_DIR`` is no longer used
by the supervisor ``PID``: stopped unless another process still uses it.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys


def read_settings(fd: int) -> object:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    os.close(fd)
    return pickle.loads(data)


def worker(public_fd: int, admin_fd: int, settings_fd: int, lifeline_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor turns Ctrl-C into SIGTERM
    settings, dsn = read_settings(settings_fd)  # type: ignore[misc]
    from gateway.process.server import run, run_worker

    run(run_worker(settings, dsn, socket.socket(fileno=public_fd), socket.socket(fileno=admin_fd), lifeline_fd))


def main(argv: list[str]) -> int:
    kind, *args = argv
    if kind == "worker":
        worker(*(int(a) for a in args))
    elif kind == "release-embedded":
        from gateway.keys.db import release_embedded

        release_embedded(args[0], int(args[1]))
    else:
        print(f"gateway.process.child: unknown kind {kind!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
