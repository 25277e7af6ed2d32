"""The container tests' one shared fixture: a usable engine and the local images, built once."""

from __future__ import annotations

import pytest

from tests.container.engine import build_images, engine_problem, unavailable


@pytest.fixture(scope="session")
def images() -> float:
    """The engine is up and every local image is built (scripts/container-images); the seconds
    the build took."""
    problem = engine_problem()
    if problem is not None:
        unavailable(problem)
    return build_images()
