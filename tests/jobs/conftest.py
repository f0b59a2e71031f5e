from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.jobs import kinds

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the fake clock's start


@pytest.fixture(autouse=True)
def _only_test_periodics() -> Iterator[None]:
    """The outbox's own tests count every job a worker runs: other packages' periodic jobs
    (e.g. the LTI roster sync) are set aside while they run."""
    from lms_plugin.jobs import schedule, services

    services.discover_handlers()
    saved = dict(schedule._PERIODIC)
    schedule._PERIODIC.clear()
    yield
    schedule._PERIODIC.clear()
    schedule._PERIODIC.update(saved)


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    kinds.reset()
    yield
    kinds.reset()


@pytest.fixture
def org_id(factory) -> int:
    return factory.organisation("General Hospital")
