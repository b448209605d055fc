"""Observed values against the active profile: one verdict per requirement and level, and
the outcome a report row shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from exporter.spec import Level, Req, Requirement


class Outcome(StrEnum):
    """A report row's verdict."""

    PASS = "PASS"  # every level met
    WARN = "WARN"  # a recommendation is not met
    FAIL = "FAIL"  # a minimum is not met
    ERROR = "ERROR"  # the check itself failed
    UNKNOWN = "UNKNOWN"  # the check ran but could not observe the value


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
    requirements: Mapping[Req, Requirement],
    observations: Iterable[tuple[Req, float | None]],
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
