"""The scenarios, in the order they run: each module declares ``SCENARIO`` (bench/scenario.py),
and its name is the group that ``--only`` selects."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.scenario import Scenario

GROUPS = ("get", "builds", "stream", "post", "limits", "rotation", "restrict", "replica", "firstuse", "ws", "idle",
          "startup", "blocking")


def load(groups: list[str]) -> dict[str, Scenario]:
    """The chosen scenarios by group, in run order (imported only now: after the prerequisites check)."""
    return {g: importlib.import_module(f"bench.scenarios.{g}").SCENARIO for g in GROUPS if g in groups}
