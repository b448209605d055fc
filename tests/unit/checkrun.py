"""Run one check synchronously against a tree and look at what it produced."""

from __future__ import annotations

import asyncio
from pathlib import Path

from exporter.checks import CHECKS
from exporter.config import Config
from exporter.model import CheckOutput, HistogramSample, Sample
from exporter.paths import Paths


def tree_paths(tree: Path) -> Paths:
    return Paths(procfs=tree / "proc", sysfs=tree / "sys", rootfs=tree / "root", dev=tree / "dev")


def make(name: str, tree: Path | None = None, config: Config | None = None):  # type: ignore[no-untyped-def]
    paths = tree_paths(tree) if tree is not None else Paths()
    return CHECKS[name](config or Config(), paths)


def run(check) -> CheckOutput:  # type: ignore[no-untyped-def]
    """One run of any check, as the runtime would do it (without its timeout)."""
    return asyncio.run(check.run())


def values(output: CheckOutput) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.metric.name, s.labels): s.value for s in output.samples if isinstance(s, Sample)}


def histograms(output: CheckOutput) -> dict[tuple[str, tuple[str, ...]], HistogramSample]:
    return {(s.metric.name, s.labels): s for s in output.samples if isinstance(s, HistogramSample)}


def observed(output: CheckOutput) -> dict[str, float | None]:
    return dict(output.observations)
