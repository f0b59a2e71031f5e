from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.jobs import kinds

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the fake clock's start


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    kinds.reset()
    yield
    kinds.reset()


@pytest.fixture
def org_id(factory) -> int:
    return factory.organisation("General Hospital")
