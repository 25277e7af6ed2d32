"""What a scenario is: a module in bench/scenarios declaring ``SCENARIO``, wrk loads that alternate
with every other scenario's in each round, or a run of its own; and what it is given."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.gateways import BenchGateway
from bench.results import Row
from bench.stack import Stack
from bench.wrk import Load, Wrk


@dataclass
class Context:
    """The options, the running stack, wrk, and the main gateway (access log on) with its keys."""

    args: argparse.Namespace
    stack: Stack
    wrk: Wrk
    gw: BenchGateway
    pub: str  # a publishable key of gw
    sec: str  # a secret key of gw
    jwt: str  # a user JWT gw verifies
    facts: dict[str, Any] = field(default_factory=dict)  # reported with the rows (idle memory, ...)


@dataclass(frozen=True)
class Scenario:
    """``loads`` starts what the scenario needs and returns its wrk loads, measured in the rounds
    (c/b on ``throughput``: "rps" or "bytes_per_s"); ``run`` measures a scenario of its own
    after the rounds and returns its rows. Either or both."""

    loads: Callable[[Context], list[Load]] | None = None
    throughput: str = "rps"
    run: Callable[[Context], list[Row]] | None = None
