"""Building blocks shared by the dashboards: variables, layout, panel helpers, links.

Thresholds come from exporter/spec.py; queries select with SEL ($cluster, $job, $node) so
one dashboard serves every cluster. The cluster variable follows node-mixin's
showMultiCluster: always there, hidden by default, "All" meaning `.*`, which also matches
series without a cluster label (a Prometheus that scrapes one cluster). The mixin
(mixin/, tools/mixin.py) shows it and renames the label from its _config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafanalib.core import (
    Dashboard,
    GridPos,
    Panel,
    Stat,
    Target,
    Template,
    Templating,
    Threshold,
)

from alerts.catalog import ALERTS
from exporter.config import DEFAULT_RUNBOOK_URL

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
DATASOURCE = "${datasource}"
DATASOURCE_NAME = "Prometheus"
GREEN, YELLOW, RED = "green", "yellow", "red"
#: every title starts with it (the mixin's dashboardNamePrefix replaces it)
TITLE_PREFIX = "Kube-V node readiness: "
TAGS = ["kubev", "kubevirt", "kubev-node-exporter"]
#: the label that names a series' cluster on a Prometheus that holds several
CLUSTER_LABEL = "cluster"
#: Grafana's "hide" of a variable: 0 shows label and value, 2 hides it
SHOWN, HIDDEN = 0, 2
#: the series selector of every query
SEL = f'{CLUSTER_LABEL}=~"$cluster", job=~"$job", instance=~"$node"'
#: the node dashboard's uid: links to it (from the fleet) use the uid, not the title
NODE_UID = "kubev-node"


def variables(node_multi: bool) -> Templating:
    return Templating(
        list=[
            Template(
                name="datasource",
                label="Data source",
                type="datasource",
                query="prometheus",
                default=DATASOURCE_NAME,
            ),
            Template(
                name="cluster",
                label="Cluster",
                dataSource=DATASOURCE,
                query=f"label_values(kubev_node_info, {CLUSTER_LABEL})",
                includeAll=True,
                allValue=".*",
                default="$__all",
                hide=HIDDEN,
                refresh=2,
                sort=1,
            ),
            Template(
                name="job",
                label="Job",
                dataSource=DATASOURCE,
                query=f'label_values(kubev_node_info{{{CLUSTER_LABEL}=~"$cluster"}}, job)',
                default="kubev-node-exporter",
                refresh=2,
                sort=1,
            ),
            Template(
                name="node",
                label="Node",
                dataSource=DATASOURCE,
                query=f'label_values(kubev_node_info{{{CLUSTER_LABEL}=~"$cluster", job=~"$job"}}, '
                "instance)",
                includeAll=node_multi,
                multi=node_multi,
                refresh=2,
                sort=1,
                default="$__all" if node_multi else "",
            ),
        ]
    )


def runbook_url(alert: str) -> str:
    """The runbook of an alert of the catalog, where the rules' runbook_url points."""
    if alert not in {a.name for a in ALERTS}:
        raise ValueError(f"no alert {alert!r} in alerts/catalog/: its runbook does not exist")
    return DEFAULT_RUNBOOK_URL.format(alert=alert)


def runbook_links(*alerts: str) -> list[dict[str, Any]]:
    """Panel links to the runbooks of the alerts behind a panel."""
    return [
        {"title": f"Runbook: {alert}", "url": runbook_url(alert), "targetBlank": True}
        for alert in alerts
    ]


def node_link(node: str) -> dict[str, Any]:
    """A data link to the node dashboard for one node (`node` is a Grafana data-link
    variable such as ${__value.raw}), keeping the data source, cluster, job and time range."""
    query = "&".join(
        (
            f"var-node={node}",
            "${datasource:queryparam}",
            "${cluster:queryparam}",
            "${job:queryparam}",
            "${__url_time_range}",
        )
    )
    return {"title": f"Node detail: {node}", "url": f"/d/{NODE_UID}?{query}"}


def target(
    expr: str, legend: str = "", instant: bool = False, fmt: str = "time_series", ref: str = "A"
) -> Target:
    return Target(
        expr=expr,
        legendFormat=legend,
        instant=instant,
        format=fmt,
        refId=ref,
        datasource=DATASOURCE,
    )


def steps(*pairs: tuple[str, float | None]) -> list[Threshold]:
    """(color, from value) pairs, the first from minus infinity (None)."""
    return [
        Threshold(color, i, float(value) if value is not None else 0.0)
        for i, (color, value) in enumerate(pairs)
    ]


def yes_no(title: str, expr: str, good: int = 1, alerts: Sequence[str] = ()) -> Stat:
    mappings = [
        {
            "type": "value",
            "options": {
                "1": {"text": "yes", "color": GREEN if good == 1 else RED},
                "0": {"text": "no", "color": RED if good == 1 else GREEN},
            },
        }
    ]
    return Stat(
        title=title,
        dataSource=DATASOURCE,
        targets=[target(expr, instant=True)],
        mappings=mappings,
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        links=runbook_links(*alerts),
    )


def dashboard(
    title: str, uid: str, description: str, refresh: str, node_multi: bool, panels: Sequence[Panel]
) -> Dashboard:
    """The frame every dashboard shares: title prefix, tags, time zone, schema, variables,
    panel ids."""
    return Dashboard(
        title=TITLE_PREFIX + title,
        uid=uid,
        description=description,
        tags=list(TAGS),
        timezone="browser",
        refresh=refresh,
        schemaVersion=SCHEMA_VERSION,
        templating=variables(node_multi=node_multi),
        panels=list(panels),
    ).auto_panel_ids()


class Layout:
    """Places panels left to right in rows of 24 columns."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.panels: list[Panel] = []

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel.gridPos = GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, panels: Sequence[Panel], h: int) -> None:
        w = 24 // len(panels)
        for panel in panels:
            self.add(panel, w, h)
