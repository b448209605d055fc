"""Run checks in-process against a tree and look at what they produced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from exporter.checks import CHECKS, Check
from exporter.config import Config
from exporter.exposition import Identity
from exporter.model import CheckOutput, HistogramSample, Sample
from exporter.paths import Paths
from exporter.runtime import Runtime
from exporter.spec import Profile, Role

#: The identity the in-process expositions are rendered with.
IDENTITY = Identity(node="n1", role=Role.SINGLE_NODE, profile=Profile.PRODUCTION)


class RuntimeFor(Protocol):
    """The `runtime_for` fixture (tests/unit/conftest.py): a Runtime of every check but DNS
    on a tree, probing loopback only."""

    def __call__(self, tree: Path, config: Config | None = None) -> Runtime: ...


def tree_paths(tree: Path) -> Paths:
    return Paths(procfs=tree / "proc", sysfs=tree / "sys", rootfs=tree / "root", dev=tree / "dev")


def make(name: str, tree: Path | None = None, config: Config | None = None) -> Check[Any]:
    """The registered check `name`, reading `tree` (this machine when None)."""
    paths = tree_paths(tree) if tree is not None else Paths()
    return CHECKS[name](config or Config(), paths)


def run(check: Check[Any]) -> CheckOutput:
    """One run of any check, as the runtime would do it (without its timeout)."""
    return asyncio.run(check.run())


async def run_all(runtime: Runtime) -> None:
    """One run of each of the runtime's checks, in order, each result published."""
    for check in runtime.checks:
        await runtime.run_once(check)


def values(output: CheckOutput) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.metric.name, s.labels): s.value for s in output.samples if isinstance(s, Sample)}


def histograms(output: CheckOutput) -> dict[tuple[str, tuple[str, ...]], HistogramSample]:
    return {(s.metric.name, s.labels): s for s in output.samples if isinstance(s, HistogramSample)}


def observed(output: CheckOutput) -> dict[str, float | None]:
    """Requirement name -> the value the check observed (None: unknown)."""
    return {str(requirement): value for requirement, value in output.observations}
