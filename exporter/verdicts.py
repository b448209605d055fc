"""Observed values against the active profile: one verdict per requirement and level."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.spec import Level, Requirement


@dataclass(frozen=True)
class Verdict:
    requirement: Requirement
    level: Level
    observed: float
    met: bool

    @property
    def threshold(self) -> float:
        return self.requirement.thresholds[self.level]


def evaluate(
    requirements: Mapping[str, Requirement],
    observations: Iterable[tuple[str, float | None]],
) -> list[Verdict]:
    """Verdicts for every observed requirement; unknown observations give none."""
    verdicts = []
    for name, observed in observations:
        requirement = requirements.get(name)
        if requirement is None or observed is None:
            continue
        for level in requirement.thresholds:
            verdicts.append(
                Verdict(requirement, level, observed, requirement.is_met(level, observed))
            )
    order = list(requirements)
    verdicts.sort(key=lambda v: (order.index(v.requirement.name), v.level.value))
    return verdicts
