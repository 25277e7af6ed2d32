"""Without a usable container engine the container tests skip with the reason, except where they
are required (CONTAINER_TESTS=required, as .ci/run sets it): there they fail."""

from __future__ import annotations

import pytest

from tests.container import engine


@pytest.mark.parametrize(("required", "outcome"), [(False, pytest.skip.Exception), (True, pytest.fail.Exception)])
def test_a_missing_engine_skips_or_fails(monkeypatch, required, outcome):
    monkeypatch.setattr(engine, "REQUIRED", required)
    with pytest.raises(outcome, match="container tests cannot run: no docker command"):
        engine.unavailable("no docker command")


def test_ci_requires_them():
    from tests.helpers import REPO

    assert "export CONTAINER_TESTS=required" in (REPO / ".ci" / "run").read_text()


def test_what_ci_exports_is_no_option_of_the_gateway():
    """The gateways the suite starts inherit its environment, and a gateway refuses a GATEWAY_*
    variable that names no option: CI's own switches must not look like one."""
    import re

    from tests.helpers import REPO

    exported = re.findall(r"^export (\w+)=", (REPO / ".ci" / "run").read_text(), re.M)
    assert exported and not [name for name in exported if name.startswith("GATEWAY_")]
