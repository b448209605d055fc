"""Fleet readiness: every node against every requirement, at a glance.

A node's name links to the node dashboard; a requirement's column, and the panels that
count failures, link to the runbook of the alert behind them.
"""

from __future__ import annotations

from typing import Any

from grafanalib.core import Dashboard, Stat, StateTimeline, Table

from dashboards.common import (
    DATASOURCE,
    GREEN,
    RED,
    SEL,
    Layout,
    node_link,
    runbook_links,
    steps,
    target,
)
from dashboards.common import (
    dashboard as common_dashboard,
)
from exporter.checks import ROWS


def matrix_row_field(column_field: str) -> str:
    r"""The name of a groupingToMatrix table's first column (the row field's): Grafana joins
    the row and column fields with a backslash, `instance\requirement` (grafana/grafana,
    packages/grafana-data/src/transformations/transformers/groupingToMatrix.ts, where
    `rowColumnField` is built)."""
    return f"instance\\{column_field}"


def node_column(column_field: str) -> dict[str, Any]:
    """The node column of a matrix links each node to its node dashboard."""
    return {
        "matcher": {"id": "byName", "options": matrix_row_field(column_field)},
        "properties": [{"id": "links", "value": [node_link("${__value.raw}")]}],
    }


MET_MAPPING = [
    {
        "type": "value",
        "options": {
            "1": {"text": "met", "color": GREEN},
            "0": {"text": "NOT MET", "color": RED},
        },
    }
]


def count_stat(
    title: str, expr: str, bad_from: float, description: str, alerts: tuple[str, ...] = ()
) -> Stat:
    return Stat(
        title=title,
        description=description,
        links=runbook_links(*alerts),
        dataSource=DATASOURCE,
        targets=[target(expr, instant=True)],
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        thresholds=steps((GREEN, None), (RED, bad_from)),
    )


def requirement_runbook(requirement: str, alert: str) -> dict[str, Any]:
    """A requirement's column links each cell to the runbook of the requirement's alert."""
    return {
        "matcher": {"id": "byName", "options": requirement},
        "properties": [{"id": "links", "value": runbook_links(alert)}],
    }


def matrix(level: str) -> Table:
    """Nodes as rows, requirements as columns, met / NOT MET in each cell."""
    return Table(
        title=f"Requirements at the {level} level, per node",
        description=f"kubev_requirement_met at the {level} level of each node's profile. "
        "An empty cell: the exporter cannot tell (a check failed or the value is unknown). "
        "A node's name opens its node dashboard; a cell, the runbook of the requirement.",
        dataSource=DATASOURCE,
        targets=[
            target(f'kubev_requirement_met{{{SEL}, level="{level}"}}', instant=True, fmt="table")
        ],
        transformations=[
            {
                "id": "groupingToMatrix",
                "options": {
                    "rowField": "instance",
                    "columnField": "requirement",
                    "valueField": "Value",
                },
            }
        ],
        mappings=MET_MAPPING,
        overrides=[
            node_column("requirement"),
            *(requirement_runbook(req.value, row.alert) for req, row in ROWS.items()),
        ],
        extraJson={
            "fieldConfig": {
                "defaults": {
                    "custom": {"cellOptions": {"type": "color-background"}, "align": "center"}
                }
            }
        },
    )


def dashboard() -> Dashboard:
    layout = Layout()
    layout.row(
        [
            count_stat(
                "Nodes reporting",
                f"count(kubev_node_info{{{SEL}}})",
                1e9,
                "Exporters Prometheus scrapes right now.",
            ),
            # per scraped target ("without requirement" keeps cluster, job and instance):
            # two clusters' nodes that share an instance name count as two
            count_stat(
                "Nodes failing a minimum",
                "count(sum without (requirement) "
                f'(1 - kubev_requirement_met{{{SEL}, level="minimum"}}) > 0) or vector(0)',
                1,
                "Nodes where at least one minimum requirement is not met (critical).",
            ),
            count_stat(
                "Nodes below a recommendation",
                "count(sum without (requirement) "
                f'(1 - kubev_requirement_met{{{SEL}, level="recommended"}}) > 0) or vector(0)',
                1,
                "Nodes where at least one recommendation is not met (warning).",
            ),
            count_stat(
                "Failing checks",
                f"count(kubev_check_success{{{SEL}}} == 0) or vector(0)",
                1,
                "Checks that could not run: their requirements are unknown.",
                ("KubevCheckFailing",),
            ),
            count_stat(
                "Exporters down",
                f"count(up{{{SEL}}} == 0) or vector(0)",
                1,
                "Targets Prometheus cannot scrape.",
                ("KubevExporterDown",),
            ),
        ],
        h=4,
    )
    layout.add(matrix("minimum"), 24, 9)
    layout.add(matrix("recommended"), 24, 9)
    layout.add(
        StateTimeline(
            title="Minimum requirements over time",
            dataSource=DATASOURCE,
            targets=[
                target(
                    f'min by (instance) (kubev_requirement_met{{{SEL}, level="minimum"}})',
                    legend="{{instance}}",
                )
            ],
            mappings=MET_MAPPING,
            showValue="never",
            mergeValues=True,
            extraJson={
                "fieldConfig": {"defaults": {"links": [node_link("${__field.labels.instance}")]}}
            },
        ),
        24,
        8,
    )
    layout.add(
        Table(
            title="Exporter health",
            description="kubev_check_success of each check on each node. A node's name opens "
            "its node dashboard.",
            dataSource=DATASOURCE,
            links=runbook_links("KubevCheckFailing"),
            targets=[target(f"kubev_check_success{{{SEL}}}", instant=True, fmt="table")],
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "rowField": "instance",
                        "columnField": "check",
                        "valueField": "Value",
                    },
                }
            ],
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "1": {"text": "ok", "color": GREEN},
                        "0": {"text": "FAILING", "color": RED},
                    },
                }
            ],
            overrides=[node_column("check")],
            extraJson={
                "fieldConfig": {
                    "defaults": {
                        "custom": {"cellOptions": {"type": "color-background"}, "align": "center"}
                    }
                }
            },
        ),
        24,
        7,
    )
    return common_dashboard(
        "fleet",
        "kubev-fleet",
        "Does every node still meet the Kube-V requirements? (kubev-node-exporter)",
        refresh="1m",
        node_multi=True,
        panels=layout.panels,
    )
