"""The chart, assembled and loaded once for the deploy tests (Helm's engine through
helm-python-sdk: no helm binary)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy import render


@pytest.fixture(scope="session")
def chart() -> Iterator[render.Chart]:
    with render.chart() as loaded:
        yield loaded
