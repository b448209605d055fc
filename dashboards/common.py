"""Building blocks shared by the dashboards: variables, layout, panel helpers.

Thresholds come from exporter/spec.py; queries use $job and $node so one dashboard serves
every cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

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

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
DATASOURCE = "${datasource}"
GREEN, YELLOW, RED = "green", "yellow", "red"


def variables(node_multi: bool) -> Templating:
    return Templating(
        list=[
            Template(
                name="datasource",
                label="Data source",
                type="datasource",
                query="prometheus",
                default="Prometheus",
            ),
            Template(
                name="job",
                label="Job",
                dataSource=DATASOURCE,
                query="label_values(kubev_node_info, job)",
                default="kubev-node-exporter",
                refresh=2,
                sort=1,
            ),
            Template(
                name="node",
                label="Node",
                dataSource=DATASOURCE,
                query='label_values(kubev_node_info{job=~"$job"}, instance)',
                includeAll=node_multi,
                multi=node_multi,
                refresh=2,
                sort=1,
                default="$__all" if node_multi else "",
            ),
        ]
    )


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


def yes_no(title: str, expr: str, good: int = 1) -> Stat:
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
    )


def dashboard(
    title: str, uid: str, description: str, refresh: str, node_multi: bool, panels: Sequence[Panel]
) -> Dashboard:
    """The frame every dashboard shares: tags, time zone, schema, variables, panel ids."""
    return Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=["kubev", "kubevirt", "kubev-node-exporter"],
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
