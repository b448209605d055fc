"""Recording rules: per-node and fleet-wide counts of unmet requirements, for dashboards and
ad-hoc queries, and each disk's mean I/O latency. The alerts compute what they need
themselves, so none of them depends on a recording rule's evaluation lag."""

from __future__ import annotations

from alerts.catalog.common import SELECTOR, RecordingRule


def _disk_latency(op: str) -> RecordingRule:
    """Mean seconds per read or write over 5 minutes, from /proc/diskstats' counters."""
    return RecordingRule(
        record=f"kubev:disk_{op}_latency_seconds:rate5m",
        expr=f"rate(kubev_disk_{op}_time_seconds_total{{{SELECTOR}}}[5m]) "
        f"/ rate(kubev_disk_{op}s_completed_total{{{SELECTOR}}}[5m])",
    )


RECORDING_RULES: tuple[RecordingRule, ...] = (
    RecordingRule(
        record="kubev:requirement_unmet:sum",
        expr=f"sum by (instance, job, level) (1 - kubev_requirement_met{{{SELECTOR}}})",
    ),
    RecordingRule(
        # a node counts once per level, however many of its requirements fail there
        record="kubev:nodes_failing:sum",
        expr=f"sum by (level) (clamp_max(kubev:requirement_unmet:sum{{{SELECTOR}}}, 1))",
    ),
    _disk_latency("read"),
    _disk_latency("write"),
)
