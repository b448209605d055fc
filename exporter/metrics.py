"""Metric definitions: a metric's name, type, help and labels, declared once.

The exporter's own metrics (health of the checks, verdicts) are declared here; each check
declares its metrics in its own module with a MetricGroup. The catalog of everything the
exporter serves (exporter/checks/__init__.py: CATALOG) is these groups in registry order;
docs/metrics.md is generated from it, and a check can only emit what its group declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    source: str  # the check that emits it, or "exporter"
    label_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_set", frozenset(self.labels))


class MetricGroup:
    """The metrics of one source (a check, or the exporter itself), in declaration order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.defs: list[MetricDef] = []

    def _add(self, name: str, type_: MetricType, help_: str, labels: tuple[str, ...]) -> MetricDef:
        if any(m.name == name for m in self.defs):
            raise ValueError(f"{name} is declared twice in {self.source}")
        metric = MetricDef(name, type_, help_, labels, self.source)
        self.defs.append(metric)
        return metric

    def gauge(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> MetricDef:
        return self._add(name, "gauge", help_, labels)

    def counter(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> MetricDef:
        return self._add(name, "counter", help_, labels)

    def histogram(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> MetricDef:
        return self._add(name, "histogram", help_, labels)


EXPORTER = MetricGroup("exporter")


# The exporter's own health, and the verdicts.
BUILD_INFO = EXPORTER.gauge(
    "kubev_exporter_build_info",
    "Always 1; the version label says which exporter build serves.",
    ("version", "python_version"),
)
NODE_INFO = EXPORTER.gauge(
    "kubev_node_info",
    "Always 1; the node name, role and requirement profile this exporter judges by.",
    ("node", "role", "profile"),
)
CHECK_SUCCESS = EXPORTER.gauge(
    "kubev_check_success",
    "1 if the check's last run succeeded, 0 if it failed or timed out.",
    ("check",),
)
CHECK_DURATION = EXPORTER.gauge(
    "kubev_check_duration_seconds",
    "Wall time of the check's last run.",
    ("check",),
)
CHECK_LAST_SUCCESS = EXPORTER.gauge(
    "kubev_check_last_success_timestamp_seconds",
    "Unix time of the check's last successful run.",
    ("check",),
)
CHECK_RUNS = EXPORTER.counter(
    "kubev_check_runs_total",
    "Runs of the check since the exporter started, by result (success, failure, timeout).",
    ("check", "result"),
)
ITEMS_DROPPED = EXPORTER.gauge(
    "kubev_check_items_dropped",
    "Devices, interfaces, ports or names the check's last run left out because of its max_items "
    "cap.",
    ("check", "kind"),
)
LOOP_LAG = EXPORTER.histogram(
    "kubev_exporter_event_loop_lag_seconds",
    "How late the event loop ran a 250 ms tick: scrapes wait as long.",
)
REQUIREMENT_MET = EXPORTER.gauge(
    "kubev_requirement_met",
    "1 if the node meets the requirement at this level of the active profile, 0 if not. Absent "
    "while the observation is unknown.",
    ("requirement", "level"),
)
REQUIREMENT_ERROR = EXPORTER.gauge(
    "kubev_requirement_error",
    "1 while the requirement cannot be judged because its check failed: the item it needs "
    "could not be read, or the check produced nothing. Absent otherwise.",
    ("requirement",),
)
REQUIREMENT_THRESHOLD = EXPORTER.gauge(
    "kubev_requirement_threshold",
    "The threshold of the requirement at this level of the active profile, in the requirement's "
    "unit (booleans: 1).",
    ("requirement", "level", "unit"),
)
REQUIREMENT_OBSERVED = EXPORTER.gauge(
    "kubev_requirement_observed",
    "The value the requirement's verdict was made on, in its unit.",
    ("requirement", "unit"),
)

# The standard process metrics (names as every Prometheus client library serves them).
PROCESS_CPU = EXPORTER.counter(
    "process_cpu_seconds_total", "Total user and system CPU time spent in seconds."
)
PROCESS_VIRTUAL = EXPORTER.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
PROCESS_RESIDENT = EXPORTER.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
PROCESS_START = EXPORTER.gauge(
    "process_start_time_seconds", "Start time of the process since unix epoch in seconds."
)
PROCESS_OPEN_FDS = EXPORTER.gauge("process_open_fds", "Number of open file descriptors.")
PROCESS_MAX_FDS = EXPORTER.gauge("process_max_fds", "Maximum number of open file descriptors.")
