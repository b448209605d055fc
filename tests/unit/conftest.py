"""Fixtures of the in-process tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from exporter.cli import build_checks
from exporter.config import Config
from exporter.runtime import Runtime
from tests.checkrun import RuntimeFor, tree_paths


@pytest.fixture
def runtime_for() -> RuntimeFor:
    """A Runtime of every check but DNS on a tree, probing loopback only (not started: the
    test runs the checks, e.g. with tests.checkrun.run_all)."""

    def make(tree: Path, config: Config | None = None) -> Runtime:
        cfg = replace(config or Config(), node_address="127.0.0.1")
        cfg = cfg.with_check("dns", enabled=False)
        return Runtime(cfg, build_checks(cfg, tree_paths(tree)))

    return make
