"""What a check returns: metric samples, requirement observations and notes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from exporter.metrics import ITEMS_DROPPED, MetricDef
from exporter.spec import Req

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


@dataclass(frozen=True, slots=True)
class Note:
    """A fact worth a log line (logged once when it appears), such as "eth0 reports no
    speed"; `about` names the requirement it explains, for that requirement's report row."""

    text: str
    about: Req | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """Rows for people, shown under the check's area on the report page and in `check
    --output json` (the peers check's blocked pairs): not metrics, and not alerted on."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: one line under the table (what was left out, what a state means)
    note: str = ""


@dataclass(frozen=True)
class CheckOutput:
    samples: tuple[Sample | HistogramSample, ...] = ()
    #: requirement -> observed value (booleans as 1/0); None: could not be observed.
    observations: tuple[tuple[Req, float | None], ...] = ()
    notes: tuple[Note, ...] = ()
    #: items that failed (a file that does not parse): the rest of the output still
    #: stands, but the run counts as failed and the requirement an error names is ERROR
    errors: tuple[Note, ...] = ()
    tables: tuple[Table, ...] = ()

    def observed(self, requirement: Req) -> float | None:
        return dict(self.observations).get(requirement)

    def notes_about(self, requirement: Req) -> list[str]:
        return [n.text for n in self.notes if n.about is requirement]

    def errors_about(self, requirement: Req) -> list[str]:
        return [e.text for e in self.errors if e.about is requirement]


@dataclass
class OutputBuilder:
    """Collects a check's output. Only what the check declares goes in: metrics of its own
    group (label names checked against the definition) and its own requirements; anything
    else is a ValueError, so a typo fails the check's tests instead of vanishing."""

    source: str = ""
    requirements: frozenset[Req] = frozenset()
    _samples: list[Sample | HistogramSample] = field(default_factory=list)
    _observations: dict[Req, float | None] = field(default_factory=dict)
    _notes: list[Note] = field(default_factory=list)
    _errors: list[Note] = field(default_factory=list)
    _tables: list[Table] = field(default_factory=list)

    def _own(self, metric: MetricDef) -> None:
        if metric.source != self.source and metric is not ITEMS_DROPPED:
            raise ValueError(f"{metric.name} belongs to {metric.source}, not to {self.source}")

    def add(self, metric: MetricDef, value: float, **labels: str) -> None:
        self._own(metric)
        self._samples.append(Sample(metric, _label_values(metric, labels), float(value)))

    def add_histogram(
        self,
        metric: MetricDef,
        buckets: Sequence[tuple[float, int]],
        total: float,
        count: int,
        **labels: str,
    ) -> None:
        self._own(metric)
        self._samples.append(
            HistogramSample(metric, _label_values(metric, labels), tuple(buckets), total, count)
        )

    def observe(self, requirement: Req, value: float | bool | None) -> None:
        if requirement not in self.requirements:
            raise ValueError(f"{self.source} does not declare the requirement {requirement!r}")
        self._observations[requirement] = None if value is None else float(value)

    def note(self, text: str, about: Req | None = None) -> None:
        note = Note(text, about)
        if note not in self._notes:
            self._notes.append(note)

    def fail(self, text: str, about: Req | None = None) -> None:
        """One item could not be read (it names the file and why): the facts read
        without it stand; the requirement it was needed for is unknown, shown as ERROR."""
        if about is not None:
            self.observe(about, None)
        error = Note(text, about)
        if error not in self._errors:
            self._errors.append(error)

    def notes(self, texts: Iterable[str], about: Req | None = None) -> None:
        for text in texts:
            self.note(text, about)

    def table(self, table: Table) -> None:
        self._tables.append(table)

    def child(self) -> OutputBuilder:
        """An empty builder for the same check (parts collected apart, merged later)."""
        return OutputBuilder(self.source, self.requirements)

    def merge(self, other: OutputBuilder) -> None:
        self._samples.extend(other._samples)
        self._observations.update(other._observations)
        for note in other._notes:
            if note not in self._notes:
                self._notes.append(note)
        for error in other._errors:
            if error not in self._errors:
                self._errors.append(error)
        self._tables.extend(other._tables)

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
            errors=tuple(self._errors),
            tables=tuple(self._tables),
        )


def _label_values(metric: MetricDef, labels: dict[str, str]) -> tuple[str, ...]:
    if labels.keys() != metric.label_set:
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {sorted(labels)}")
    return tuple([str(labels[name]) for name in metric.labels])
