"""Fleet readiness: every node against every requirement, at a glance.

The cluster's own requirements come first (shared storage, nodes offering KVM, nodes
without an exporter, each node as the cluster sees it): the rules record them from
kube-state-metrics' and CDI's series (alerts/catalog/cluster.py); where those are not
scraped the panels say so. Then each node as its own exporter judges it.

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
from exporter import recorded
from exporter.checks import ROWS
from exporter.spec import CLUSTER_REQUIREMENTS, MIN_KVM_NODES, ClusterReq

#: the cluster rules' series: one cluster per rule evaluation (alerts/catalog/cluster.py);
#: in a Prometheus for several clusters they carry the cluster label its sources add
CSEL = 'cluster=~"$cluster"'
#: what an empty cluster panel means
NOT_SCRAPED = "no data: kube-state-metrics or CDI is not scraped (or the rules not loaded)"


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


def cluster_verdict(requirement: ClusterReq) -> Stat:
    spec = CLUSTER_REQUIREMENTS[requirement]
    return Stat(
        title=spec.title,
        description=f"{recorded.CLUSTER_MET}: the cluster-level verdict the rules record. "
        f"{NOT_SCRAPED}.",
        links=runbook_links(spec.alert),
        dataSource=DATASOURCE,
        targets=[
            target(f'{recorded.CLUSTER_MET}{{{CSEL}, requirement="{requirement}"}}', instant=True)
        ],
        mappings=MET_MAPPING,
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        extraJson={"fieldConfig": {"defaults": {"noValue": "unknown"}}},
    )


def cluster_row(layout: Layout) -> None:
    """The cluster's own requirements, above the nodes'."""
    kvm = CLUSTER_REQUIREMENTS[ClusterReq.KVM_NODES]
    reporting = f"{recorded.EXPORTER_REPORTING}{{{CSEL}}}"
    layout.row(
        [
            cluster_verdict(ClusterReq.SHARED_STORAGE),
            Stat(
                title=kvm.title,
                description="Nodes whose kubelet offers devices.kubevirt.io/kvm "
                f"(kube-state-metrics); live migration needs {MIN_KVM_NODES}. {NOT_SCRAPED}.",
                links=runbook_links(kvm.alert),
                dataSource=DATASOURCE,
                targets=[
                    target(
                        f'{recorded.CLUSTER_OBSERVED}{{{CSEL}, requirement="{kvm.name}"}}',
                        instant=True,
                    )
                ],
                colorMode="background",
                graphMode="none",
                reduceCalc="lastNotNull",
                thresholds=steps((RED, None), (GREEN, MIN_KVM_NODES)),
            ),
            count_stat(
                "Nodes without an exporter",
                f"count({reporting} == 0) or on() (0 * count({reporting}))",
                1,
                "Nodes kube-state-metrics lists that no kubev-node-exporter reports: nothing "
                f"watches their requirements. {NOT_SCRAPED}.",
                ("KubevNodeExporterMissing",),
            ),
        ],
        h=4,
    )
    layout.add(
        Table(
            title="The StorageClass VM disks get",
            description=f"{recorded.VM_STORAGE_CLASS}: CDI's StorageProfile of the class a VM "
            "disk gets when it names none (the virt-default class, else the default). "
            f"{NOT_SCRAPED}.",
            links=runbook_links(CLUSTER_REQUIREMENTS[ClusterReq.SHARED_STORAGE].alert),
            dataSource=DATASOURCE,
            targets=[target(f"{recorded.VM_STORAGE_CLASS}{{{CSEL}}}", instant=True, fmt="table")],
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}},
                }
            ],
        ),
        12,
        5,
    )
    layout.add(
        Table(
            title="Each node as the cluster sees it",
            description=f"{recorded.NODE_MET}: KubeVirt's devices allocatable, the node "
            "schedulable for VMs, an exporter reporting it (kube-state-metrics). "
            f"{NOT_SCRAPED}.",
            links=runbook_links(
                CLUSTER_REQUIREMENTS[ClusterReq.KUBEVIRT_DEVICES].alert,
                CLUSTER_REQUIREMENTS[ClusterReq.KUBEVIRT_SCHEDULABLE].alert,
                "KubevNodeExporterMissing",
            ),
            dataSource=DATASOURCE,
            targets=[target(f"{recorded.NODE_MET}{{{CSEL}}}", instant=True, fmt="table")],
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "rowField": "node",
                        "columnField": "requirement",
                        "valueField": "Value",
                    },
                }
            ],
            mappings=MET_MAPPING,
            overrides=[
                requirement_runbook(req.value, CLUSTER_REQUIREMENTS[req].alert)
                for req in (ClusterReq.KUBEVIRT_DEVICES, ClusterReq.KUBEVIRT_SCHEDULABLE)
            ],
            extraJson={
                "fieldConfig": {
                    "defaults": {
                        "custom": {"cellOptions": {"type": "color-background"}, "align": "center"}
                    }
                }
            },
        ),
        12,
        5,
    )


def peers_row(layout: Layout) -> None:
    """Node to node: the ports each node must reach on its peers (exporter/checks/peers.py)."""
    blocked = f"kubev_peer_unreachable{{{SEL}}} == 1"
    layout.add(
        count_stat(
            "Blocked node pairs",
            f"count({blocked}) or vector(0)",
            1,
            "(node, peer port) pairs a node cannot reach: filtered (a firewall) or "
            "unreachable (no route). Which ones: the table beside it, or a node's dashboard.",
            ("KubevPeerPortBlocked",),
        ),
        6,
        7,
    )
    layout.add(
        Table(
            title="Peer ports by state, across the fleet",
            description="kubev_peer_ports summed over the nodes: how many (node, peer) pairs "
            "found each port open, reset (reachable, nothing listens), filtered, unreachable, "
            "unknown or not yet probed. Filtered and unreachable are a firewall's or the "
            "network's doing; a node's dashboard names the pairs.",
            links=runbook_links("KubevPeerPortBlocked"),
            dataSource=DATASOURCE,
            targets=[
                target(
                    f"sum by (component, port, protocol, state) (kubev_peer_ports{{{SEL}}})",
                    instant=True,
                    fmt="table",
                )
            ],
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "pairs"},
                    },
                }
            ],
        ),
        18,
        7,
    )


def dashboard() -> Dashboard:
    layout = Layout()
    cluster_row(layout)
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
    peers_row(layout)
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
