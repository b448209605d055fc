"""What a check returns: metric samples, requirement observations and notes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from exporter.metrics import ITEMS_DROPPED, MetricDef

T = TypeVar("T")


class CheckError(Exception):
    """A check could not produce its result. The message names the file or object."""


@dataclass(frozen=True, slots=True)
class Sample:
    metric: MetricDef
    labels: tuple[str, ...]  # values, in the order of metric.labels
    value: float


@dataclass(frozen=True, slots=True)
class HistogramSample:
    metric: MetricDef
    labels: tuple[str, ...]
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    total: float
    count: int


class Histogram:
    """A cumulative histogram kept across runs (fsync probe latency, event-loop lag)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        index = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        running = 0
        result = []
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


@dataclass(frozen=True)
class CheckOutput:
    samples: tuple[Sample | HistogramSample, ...] = ()
    #: requirement name -> observed value (booleans as 1/0); None: could not be observed.
    observations: tuple[tuple[str, float | None], ...] = ()
    #: facts worth a log line (logged once when they appear), such as "eth0 reports no speed".
    notes: tuple[str, ...] = ()


@dataclass
class OutputBuilder:
    """Collects a check's output; label names are checked against the catalog."""

    _samples: list[Sample | HistogramSample] = field(default_factory=list)
    _observations: dict[str, float | None] = field(default_factory=dict)
    _notes: list[str] = field(default_factory=list)

    def add(self, metric: MetricDef, value: float, **labels: str) -> None:
        self._samples.append(Sample(metric, _label_values(metric, labels), float(value)))

    def add_histogram(
        self,
        metric: MetricDef,
        buckets: Sequence[tuple[float, int]],
        total: float,
        count: int,
        **labels: str,
    ) -> None:
        self._samples.append(
            HistogramSample(metric, _label_values(metric, labels), tuple(buckets), total, count)
        )

    def observe(self, requirement: str, value: float | bool | None) -> None:
        self._observations[requirement] = None if value is None else float(value)

    def note(self, text: str) -> None:
        if text not in self._notes:
            self._notes.append(text)

    def notes(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.note(text)

    def merge(self, other: OutputBuilder) -> None:
        self._samples.extend(other._samples)
        self._observations.update(other._observations)
        self.notes(other._notes)

    def cap(self, items: Sequence[T], limit: int, check: str, kind: str) -> Sequence[T]:
        """At most `limit` items; the number dropped is a metric (0 when none are)."""
        dropped = max(0, len(items) - limit)
        self.add(ITEMS_DROPPED, dropped, check=check, kind=kind)
        if dropped:
            self.note(
                f"{len(items)} {kind} exceed the cap of {limit}: {dropped} dropped "
                "(raise max_items or narrow the filter)"
            )
        return items[:limit]

    def build(self) -> CheckOutput:
        return CheckOutput(
            samples=tuple(self._samples),
            observations=tuple(self._observations.items()),
            notes=tuple(self._notes),
        )


def _label_values(metric: MetricDef, labels: dict[str, str]) -> tuple[str, ...]:
    if labels.keys() != metric.label_set:
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {sorted(labels)}")
    return tuple([str(labels[name]) for name in metric.labels])
