"""The fleet report from Prometheus' answers: what each cell says when a series is there,
absent, or its observer is missing; the exit code; the JSON against its schema; the table.
The answers are shaped as Prometheus' API returns them (tests/pack/test_fleet.py reads them
from a real one)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from exporter import recorded
from exporter.report.fleet import Answers, FleetError, FleetReport, assemble, queries
from exporter.report.fleet_text import render_fleet
from exporter.report.promapi import Sample
from exporter.verdicts import Outcome
from tests.helpers import ROOT

SCHEMA = json.loads((ROOT / "docs" / "fleet-output.schema.json").read_text())
JOB = {"job": "kubev-node-exporter"}
ALL_RULES = set(recorded.ALL)


def info(node: str, instance: str, role: str = "worker", profile: str = "production") -> Sample:
    return Sample(
        {
            "__name__": "kubev_node_info",
            **JOB,
            "instance": instance,
            "node": node,
            "role": role,
            "profile": profile,
        },
        1,
    )


def met(instance: str, requirement: str, level: str, value: float) -> Sample:
    return Sample({**JOB, "instance": instance, "requirement": requirement, "level": level}, value)


def check(instance: str, name: str, value: float) -> Sample:
    return Sample({**JOB, "instance": instance, "check": name}, value)


def node_met(node: str, requirement: str, value: float) -> Sample:
    return Sample({"node": node, "requirement": requirement}, value)


def cluster(requirement: str, value: float) -> Sample:
    return Sample({"requirement": requirement}, value)


def answers(
    vectors: dict[str, list[Sample]] | None = None, rules: set[str] | None = ALL_RULES
) -> Answers:
    vectors = vectors or {}
    assert set(vectors) <= set(queries("x"))
    return Answers(vectors, rules, "http://prometheus:9090", 'job="kubev-node-exporter"', at=0.0)


def healthy_cluster() -> dict[str, list[Sample]]:
    """Two worker nodes, both with an exporter, every verdict met, the cluster's too."""
    nodes = {"n1": "10.0.0.1:19100", "n2": "10.0.0.2:19100"}
    return {
        "info": [info(node, instance) for node, instance in nodes.items()],
        "met": [
            met(instance, requirement, "minimum", 1)
            for instance in nodes.values()
            for requirement in ("cpu_cores", "memory", "kvm")
        ],
        "checks": [
            check(instance, name, 1) for instance in nodes.values() for name in ("kvm", "compute")
        ],
        "reporting": [node_met(node, "", 1) for node in nodes],
        "node_met": [
            node_met(node, requirement, 1)
            for node in nodes
            for requirement in ("kubevirt_devices", "kubevirt_schedulable")
        ],
        "cluster_met": [cluster("shared_storage", 1), cluster("kvm_nodes", 1)],
        "cluster_observed": [cluster("shared_storage", 1), cluster("kvm_nodes", 2)],
        "vm_class": [
            Sample(
                {
                    "storageclass": "ceph-rbd",
                    "provisioner": "rbd.csi.ceph.com",
                    "rwx": "true",
                    "complete": "true",
                },
                1,
            )
        ],
    }


def cell(report: FleetReport, node: str, requirement: str) -> tuple[Outcome | None, str]:
    row = next(n for n in report.nodes if n.node == node)
    found = row.cells[requirement]
    return found.verdict, found.detail


def test_a_healthy_fleet_exits_0_and_its_json_follows_the_schema() -> None:
    report = assemble(answers(healthy_cluster()))
    assert report.exit_code == 0
    document: dict[str, Any] = report.to_json()
    jsonschema.validate(document, SCHEMA)
    assert [c["verdict"] for c in document["cluster"]] == ["PASS", "PASS"]
    assert document["cluster"][0]["detail"] == (
        "StorageClass ceph-rbd (rbd.csi.ceph.com) offers ReadWriteMany"
    )
    # disk, network, ports, ovn, dns send no series: their checks are off there
    assert cell(report, "n1", "disk_latency") == (None, "the disk check is off on this node")
    assert cell(report, "n1", "cpu_cores") == (Outcome.PASS, "")
    text = render_fleet(report, colour=False)
    assert text.splitlines()[-1].endswith("every minimum is met, the cluster's included (exit 0)")


def test_a_minimum_failed_a_recommendation_missed_and_a_failing_check() -> None:
    data = healthy_cluster()
    data["met"] += [
        met("10.0.0.1:19100", "nic_speed", "minimum", 0),
        met("10.0.0.1:19100", "nic_speed", "recommended", 0),
        met("10.0.0.2:19100", "nic_speed", "minimum", 1),
        met("10.0.0.2:19100", "nic_speed", "recommended", 0),
    ]
    data["observed"] = [
        Sample(
            {**JOB, "instance": "10.0.0.1:19100", "requirement": "nic_speed", "unit": "bytes/s"},
            12_500_000,
        ),
        Sample(
            {**JOB, "instance": "10.0.0.2:19100", "requirement": "nic_speed", "unit": "bytes/s"},
            125_000_000,
        ),
    ]
    data["threshold"] = [
        Sample(
            {**JOB, "instance": i, "requirement": "nic_speed", "level": level, "unit": "bytes/s"}, v
        )
        for i in ("10.0.0.1:19100", "10.0.0.2:19100")
        for level, v in (("minimum", 125_000_000), ("recommended", 1_250_000_000))
    ]
    data["checks"] += [check("10.0.0.1:19100", "network", 1), check("10.0.0.2:19100", "network", 1)]
    data["checks"] += [check("10.0.0.2:19100", "disk", 0)]
    # the disk check failed on n2: the fsync latency could not be read, the disk type could
    # (unobserved all the same: a virtual disk), as the node's own report tells them apart
    data["errors"] = [
        Sample({**JOB, "instance": "10.0.0.2:19100", "requirement": "disk_latency"}, 1)
    ]
    report = assemble(answers(data))
    assert cell(report, "n1", "nic_speed") == (Outcome.FAIL, "0.1 Gb/s; minimum >= 1 Gb/s")
    assert cell(report, "n2", "nic_speed") == (Outcome.WARN, "1 Gb/s; recommended >= 10 Gb/s")
    assert cell(report, "n2", "disk_latency") == (Outcome.ERROR, "the disk check is failing")
    assert cell(report, "n2", "storage_solid_state") == (
        Outcome.UNKNOWN,
        "the disk check is failing and could not observe it",
    )
    assert report.exit_code == 1
    row = next(n for n in report.nodes if n.node == "n1")
    assert row.cells["nic_speed"].runbook_url.endswith("/KubevNICSpeedInsufficient.md")
    assert row.cells["nic_speed"].hint


def test_a_node_without_an_exporter_is_an_error_and_said_once() -> None:
    data = healthy_cluster()
    data["reporting"].append(node_met("n3", "", 0))
    data["node_met"] += [
        node_met("n3", "kubevirt_devices", 0),
        node_met("n3", "kubevirt_schedulable", 0),
    ]
    data["up"] = [Sample({**JOB, "instance": "10.0.0.3:19100"}, 0)]
    report = assemble(answers(data))
    row = next(n for n in report.nodes if n.node == "n3")
    assert row.exporter is None
    assert row.reporting.verdict is Outcome.ERROR
    assert row.reporting.runbook_url.endswith("/KubevNodeExporterMissing.md")
    assert cell(report, "n3", "cpu_cores") == (Outcome.UNKNOWN, "no exporter on this node")
    assert cell(report, "n3", "kubevirt_devices")[0] is Outcome.FAIL
    assert report.exit_code == 1
    assert "exporter targets down: 10.0.0.3:19100" in report.notes
    text = render_fleet(report, colour=False)
    assert "(no kubev-node-exporter reports this node)" in text
    # the findings name the missing exporter once, not once per requirement
    assert text.count("n3: no exporter on this node") == 0
    assert text.count("n3: no kubev-node-exporter reports this node") == 1
    jsonschema.validate(report.to_json(), SCHEMA)


def test_the_cluster_view_of_a_node_follows_its_role() -> None:
    data = healthy_cluster()
    data["info"] = [
        info("n1", "10.0.0.1:19100", role="control-plane"),
        info("n2", "10.0.0.2:19100"),
    ]
    data["node_met"] = [
        node_met("n1", "kubevirt_devices", 0),
        node_met("n2", "kubevirt_devices", 0),
        node_met("n1", "kubevirt_schedulable", 1),
        node_met("n2", "kubevirt_schedulable", 1),
    ]
    data["node_observed"] = [
        Sample({"node": "n2", "requirement": "kubevirt_devices"}, 2),
    ]
    report = assemble(answers(data))
    # a control-plane node runs no VMs: not its requirement
    assert cell(report, "n1", "kubevirt_devices") == (None, "not needed on role control-plane")
    assert cell(report, "n2", "kubevirt_devices") == (
        Outcome.FAIL,
        "2 of 3 devices allocatable (devices.kubevirt.io/{kvm,tun,vhost-net})",
    )


def test_without_the_schedulable_label_the_verdict_is_unknown_and_says_why() -> None:
    data = healthy_cluster()
    data["node_met"] = [node_met(n, "kubevirt_devices", 1) for n in ("n1", "n2")]
    report = assemble(answers(data))
    verdict, detail = cell(report, "n1", "kubevirt_schedulable")
    assert verdict is Outcome.UNKNOWN
    assert "--metric-labels-allowlist=nodes=[kubevirt.io/schedulable]" in detail
    assert report.exit_code == 0  # unknown is not a failure


def test_a_single_node_cluster_has_no_kvm_nodes_verdict() -> None:
    data = healthy_cluster()
    data["cluster_met"] = [cluster("shared_storage", 1)]
    data["cluster_observed"] = [cluster("shared_storage", 1), cluster("kvm_nodes", 1)]
    report = assemble(answers(data))
    row = next(r for r in report.cluster if r.requirement == "kvm_nodes")
    assert row.cell.verdict is None
    assert row.observed == 1
    assert report.exit_code == 0
    assert "  -       Nodes offering KVM" in render_fleet(report, colour=False)


def test_without_cdi_or_the_rules_the_cluster_cannot_be_judged() -> None:
    data = healthy_cluster()
    data["cluster_met"] = [cluster("kvm_nodes", 1)]
    data["cluster_observed"] = [cluster("kvm_nodes", 2)]
    data["vm_class"] = []
    report = assemble(answers(data))
    row = next(r for r in report.cluster if r.requirement == "shared_storage")
    assert (row.cell.verdict, row.cell.detail) == (Outcome.ERROR, "no CDI series in Prometheus")
    assert row.cell.runbook_url.endswith("/KubevClusterMetricsAbsent.md")
    assert report.exit_code == 1

    # rules not loaded: the exporters' verdicts stand, the cluster's are unknown
    bare = healthy_cluster()
    for key in ("cluster_met", "cluster_observed", "node_met", "reporting", "vm_class"):
        bare[key] = []
    report = assemble(answers(bare, rules=set()))
    assert {r.cell.verdict for r in report.cluster} == {Outcome.ERROR}
    assert all("has not loaded the kubev rules" in r.cell.detail for r in report.cluster)
    assert cell(report, "n1", "kubevirt_devices")[0] is Outcome.UNKNOWN
    assert cell(report, "n1", "cpu_cores")[0] is Outcome.PASS
    assert any("has not loaded the kubev rules" in note for note in report.notes)


def test_the_vm_class_without_rwx_or_no_default_class_is_said() -> None:
    data = healthy_cluster()
    data["cluster_met"] = [cluster("shared_storage", 0), cluster("kvm_nodes", 1)]
    data["vm_class"] = [
        Sample(
            {
                "storageclass": "vendor",
                "provisioner": "csi.vendor",
                "rwx": "false",
                "complete": "false",
            },
            1,
        )
    ]
    report = assemble(answers(data))
    row = report.cluster[0]
    assert row.cell.verdict is Outcome.FAIL
    assert row.cell.detail == (
        "StorageClass vendor (csi.vendor) offers no ReadWriteMany (StorageProfile incomplete)"
    )
    assert row.cell.hint.startswith("Make a StorageClass whose CSI driver offers ReadWriteMany")
    data["vm_class"] = []
    assert assemble(answers(data)).cluster[0].cell.detail == (
        "no StorageClass is default for VMs or for the cluster"
    )


def test_two_exporters_for_one_node_and_an_unknown_requirement_are_noted() -> None:
    data = healthy_cluster()
    data["info"].append(info("n1", "10.0.0.9:19100"))
    data["met"].append(met("10.0.0.1:19100", "newer_requirement", "minimum", 1))
    report = assemble(answers(data))
    assert report.notes == (
        "two exporters report node n1: 10.0.0.1:19100 (shown) and 10.0.0.9:19100",
        "requirements this fleet command does not know, left out: newer_requirement",
    )


def test_nothing_to_judge_is_an_error_naming_the_selector() -> None:
    with pytest.raises(FleetError, match=r'kubev_node_info\{job="kubev-node-exporter"\}'):
        assemble(answers())


def test_colour_only_paints_verdicts() -> None:
    text = render_fleet(assemble(answers(healthy_cluster())), colour=True)
    assert "\033[1;32mPASS" in text
    assert "\033[1;32mn1" not in text
