"""Every test under tests/integration/ is marked ``integration`` (several processes: Ray clusters,
``ray job submit``, CLI subprocesses, an S3 server, examples), and only those are: a test elsewhere
that carries the marker belongs here. ``pytest -m "not integration"`` runs the unit tests alone."""

from __future__ import annotations

import pytest
from _paths import INTEGRATION


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
        elif item.get_closest_marker("integration") is not None:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(f"integration tests outside tests/integration/: {', '.join(misplaced)}")
