"""Fleet readiness: every node against every requirement, at a glance."""

from __future__ import annotations

from grafanalib.core import Dashboard, Stat, StateTimeline, Table

from dashboards.common import (
    DATASOURCE,
    GREEN,
    RED,
    Layout,
    steps,
    target,
)
from dashboards.common import (
    dashboard as common_dashboard,
)

SEL = 'job=~"$job", instance=~"$node"'
MET_MAPPING = [
    {
        "type": "value",
        "options": {
            "1": {"text": "met", "color": GREEN},
            "0": {"text": "NOT MET", "color": RED},
        },
    }
]


def count_stat(title: str, expr: str, bad_from: float, description: str) -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, instant=True)],
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        thresholds=steps((GREEN, None), (RED, bad_from)),
    )


def matrix(level: str) -> Table:
    """Nodes as rows, requirements as columns, met / NOT MET in each cell."""
    return Table(
        title=f"Requirements at the {level} level, per node",
        description=f"kubev_requirement_met at the {level} level of each node's profile. "
        "An empty cell: the exporter cannot tell (a check failed or the value is unknown).",
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
        overrides=[],
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
            count_stat(
                "Nodes failing a minimum",
                f'count(sum by (instance) (1 - kubev_requirement_met{{{SEL}, level="minimum"}})'
                " > 0) or vector(0)",
                1,
                "Nodes where at least one minimum requirement is not met (critical).",
            ),
            count_stat(
                "Nodes below a recommendation",
                f"count(sum by (instance) (1 - kubev_requirement_met{{{SEL}, "
                'level="recommended"}) > 0) or vector(0)',
                1,
                "Nodes where at least one recommendation is not met (warning).",
            ),
            count_stat(
                "Failing checks",
                f"count(kubev_check_success{{{SEL}}} == 0) or vector(0)",
                1,
                "Checks that could not run: their requirements are unknown.",
            ),
            count_stat(
                "Exporters down",
                f"count(up{{{SEL}}} == 0) or vector(0)",
                1,
                "Targets Prometheus cannot scrape.",
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
        ),
        24,
        8,
    )
    layout.add(
        Table(
            title="Exporter health",
            dataSource=DATASOURCE,
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
        "Kube-V node readiness: fleet",
        "kubev-fleet",
        "Does every node still meet the Kube-V requirements? (kubev-node-exporter)",
        refresh="1m",
        node_multi=True,
        panels=layout.panels,
    )
