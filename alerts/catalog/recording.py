"""Recording rules: per-node and fleet-wide counts of unmet requirements, for dashboards and
ad-hoc queries, and each disk's mean I/O latency. The alerts compute what they need
themselves, so none of them depends on a recording rule's evaluation lag.

A node's count keeps every label of the node's series but `requirement` (its cluster, its
target's labels); the fleet's count keeps the cluster: on a Prometheus that holds several
clusters, each is counted on its own, and on one without the label the count is the same
as before it."""

from __future__ import annotations

from alerts.catalog.common import (
    CLUSTER_LABEL,
    JOB,
    SELECTOR,
    ExprCase,
    RecordingRule,
)
from exporter.spec import Req

UNMET = "kubev:requirement_unmet:sum"
FAILING = "kubev:nodes_failing:sum"


def _disk_latency(op: str) -> RecordingRule:
    """Mean seconds per read or write over 5 minutes, from /proc/diskstats' counters."""
    return RecordingRule(
        record=f"kubev:disk_{op}_latency_seconds:rate5m",
        expr=f"rate(kubev_disk_{op}_time_seconds_total{{{SELECTOR}}}[5m]) "
        f"/ rate(kubev_disk_{op}s_completed_total{{{SELECTOR}}}[5m])",
    )


def _verdicts(node: str, cluster: str | None, met: dict[Req, tuple[int, int]]) -> dict[str, str]:
    """A node's verdicts (minimum, recommended) per requirement, 10 minutes long."""
    labels = f'instance="{node}",job="{JOB}"'
    if cluster is not None:
        labels += f',{CLUSTER_LABEL}="{cluster}"'
    return {
        f'kubev_requirement_met{{{labels},requirement="{req}",level="{level}"}}': f"{ok}x10"
        for req, levels in met.items()
        for level, ok in zip(("minimum", "recommended"), levels, strict=True)
    }


#: node-1 in two clusters, failing two requirements in b and none in a; node-2 in b fails
#: only a recommendation
_TWO_CLUSTERS = (
    _verdicts("node-1:19100", "a", {Req.KVM: (1, 1), Req.CPU_CORES: (1, 1)})
    | _verdicts("node-1:19100", "b", {Req.KVM: (0, 0), Req.CPU_CORES: (0, 0)})
    | _verdicts("node-2:19100", "b", {Req.KVM: (1, 1), Req.CPU_CORES: (1, 0)})
)
#: the same fleet on a Prometheus without the label: node-1 once
_ONE_CLUSTER = _verdicts("node-1:19100", None, {Req.KVM: (0, 0), Req.CPU_CORES: (0, 0)}) | (
    _verdicts("node-2:19100", None, {Req.KVM: (1, 1), Req.CPU_CORES: (1, 0)})
)


def _node(node: str, cluster: str | None, level: str) -> str:
    labels = f'instance="{node}",job="{JOB}",level="{level}"'
    if cluster is not None:
        labels += f',{CLUSTER_LABEL}="{cluster}"'
    return f"{UNMET}{{{labels}}}"


def _fleet(cluster: str | None, level: str) -> str:
    labels = f'level="{level}"'
    if cluster is not None:
        labels += f',{CLUSTER_LABEL}="{cluster}"'
    return f"{FAILING}{{{labels}}}"


RECORDING_RULES: tuple[RecordingRule, ...] = (
    RecordingRule(
        record=UNMET,
        expr=f"sum without (requirement) (1 - kubev_requirement_met{{{SELECTOR}}})",
        cases=(
            ExprCase(
                _TWO_CLUSTERS,
                "5m",
                UNMET,
                (
                    (_node("node-1:19100", "a", "minimum"), 0),
                    (_node("node-1:19100", "a", "recommended"), 0),
                    (_node("node-1:19100", "b", "minimum"), 2),
                    (_node("node-1:19100", "b", "recommended"), 2),
                    (_node("node-2:19100", "b", "minimum"), 0),
                    (_node("node-2:19100", "b", "recommended"), 1),
                ),
            ),
            ExprCase(
                _ONE_CLUSTER,
                "5m",
                UNMET,
                (
                    (_node("node-1:19100", None, "minimum"), 2),
                    (_node("node-1:19100", None, "recommended"), 2),
                    (_node("node-2:19100", None, "minimum"), 0),
                    (_node("node-2:19100", None, "recommended"), 1),
                ),
            ),
        ),
    ),
    RecordingRule(
        # a node counts once per level, however many of its requirements fail there;
        # `by` a label the series lack keeps none: one count per level without clusters
        record=FAILING,
        expr=f"sum by ({CLUSTER_LABEL}, level) (clamp_max({UNMET}{{{SELECTOR}}}, 1))",
        cases=(
            ExprCase(
                _TWO_CLUSTERS,
                "5m",
                FAILING,
                (
                    (_fleet("a", "minimum"), 0),
                    (_fleet("a", "recommended"), 0),
                    (_fleet("b", "minimum"), 1),
                    (_fleet("b", "recommended"), 2),
                ),
            ),
            ExprCase(
                _ONE_CLUSTER,
                "5m",
                FAILING,
                ((_fleet(None, "minimum"), 1), (_fleet(None, "recommended"), 2)),
            ),
        ),
    ),
    _disk_latency("read"),
    _disk_latency("write"),
)
