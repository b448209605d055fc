"""The queries of the generated dashboards, as Grafana sends them to Prometheus."""

from __future__ import annotations

import json
import re

from dashboards.generate import outputs as dashboard_outputs
from exporter import recorded


def panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for path, text in dashboard_outputs().items():
        for panel in json.loads(text)["panels"]:
            for t in panel.get("targets", []):
                found.append((path.name, panel["title"], t["expr"]))
    return found


def variable_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard, variable, series selector, label) of every label_values() variable."""
    found = []
    for path, text in dashboard_outputs().items():
        for variable in json.loads(text)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, (path.name, variable["query"])
            found.append((path.name, variable["name"], match[1], match[2]))
    return found


def concrete(expr: str, cluster: str = ".*") -> str:
    """A panel's query as Grafana sends it: every node, the default job, the cluster picked
    (".*" is the variable's All)."""
    return (
        expr.replace("$cluster", cluster)
        .replace("$job", "kubev-node-exporter")
        .replace("$node", ".+")
        .replace("$__rate_interval", "1m")
    )


def reads_cluster_rules(expr: str) -> bool:
    """Whether a panel reads what the cluster rules record from kube-state-metrics' and CDI's
    series (exporter/recorded.py)."""
    return any(name in expr for name in recorded.ALL)
