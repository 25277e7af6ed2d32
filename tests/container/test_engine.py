"""Without a usable container engine the container tests skip with the reason, except where they
are required (GATEWAY_CONTAINER_TESTS=required, as .ci/run sets it): there they fail."""

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

    assert "export GATEWAY_CONTAINER_TESTS=required" in (REPO / ".ci" / "run").read_text()
