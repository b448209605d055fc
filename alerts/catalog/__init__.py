"""Every alert: its rules, its runbook, and the promtool cases that prove it fires and stays
quiet; and the recording rules. alerts/generate.py renders them into the rule file, the
promtool test file and the runbooks; thresholds come from exporter/spec.py.

One module per check (exporter/checks/), named after it, holds that check's alerts; the
exporter's own health alerts are in `exporter`; the cluster's requirements, judged from
kube-state-metrics' and CDI's series, in `cluster` with their recording rules. ALERTS lists
them in the registry's order (exporter.checks.CHECKS), then the exporter's, then the
cluster's.
"""

from __future__ import annotations

from alerts.catalog import (
    cluster,
    compute,
    devices,
    disk,
    dns,
    kernel,
    kvm,
    network,
    ovn,
    peers,
    ports,
)
from alerts.catalog import exporter as exporter_health
from alerts.catalog.common import (
    CDI,
    JOB,
    KSM,
    PLACEHOLDERS,
    SELECTOR,
    Alert,
    Case,
    ExprCase,
    Impact,
    RecordingCase,
    RecordingRule,
    Rule,
    RuleSettings,
)
from alerts.catalog.recording import RECORDING_RULES
from exporter.checks import CHECKS

#: each check's alerts, by the check's name
BY_CHECK: dict[str, tuple[Alert, ...]] = {
    "kvm": kvm.ALERTS,
    "devices": devices.ALERTS,
    "kernel": kernel.ALERTS,
    "compute": compute.ALERTS,
    "disk": disk.ALERTS,
    "network": network.ALERTS,
    "ports": ports.ALERTS,
    "ovn": ovn.ALERTS,
    "dns": dns.ALERTS,
    "peers": peers.ALERTS,
}

if BY_CHECK.keys() != CHECKS.keys():
    # a new check needs its module here, even an empty one, so its place in ALERTS is known
    raise ImportError(f"alert modules {sorted(BY_CHECK)} != checks {sorted(CHECKS)}")

ALERTS: tuple[Alert, ...] = (
    *(alert for name in CHECKS for alert in BY_CHECK[name]),
    *exporter_health.ALERTS,
    *cluster.ALERTS,
)
#: the cluster's verdicts, a rule group of their own: its rules run in order
CLUSTER_RECORDING_RULES = cluster.RECORDING_RULES

__all__ = [
    "ALERTS",
    "BY_CHECK",
    "CDI",
    "CLUSTER_RECORDING_RULES",
    "JOB",
    "KSM",
    "PLACEHOLDERS",
    "RECORDING_RULES",
    "SELECTOR",
    "Alert",
    "Case",
    "ExprCase",
    "Impact",
    "RecordingCase",
    "RecordingRule",
    "Rule",
    "RuleSettings",
]
