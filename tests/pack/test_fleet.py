"""The fleet end to end: three real exporters on fixture nodes, a stand-in serving what
kube-state-metrics and CDI would for a cluster of four nodes (three with an exporter, one
without), a real Prometheus evaluating the generated rules; `kubev-node-exporter fleet`
reading it all back through Prometheus' API; then one exporter stopped, and the alert for
its node.

kube-state-metrics and CDI cannot run here: both report what a Kubernetes API server tells
them, and this machine has none. The stand-in (tests/pack/standin.py) serves their
exposition as alerts/catalog/cluster_series.py writes it from their source.

The rules are rendered with every `for` capped at a second or two (RuleSettings.max_for):
the test waits for states, and would otherwise wait a quarter of an hour for them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from alerts.catalog import RuleSettings
from alerts.catalog.cluster import VIRT_DEFAULT_RWX
from alerts.catalog.cluster_series import (
    CDI_JOB,
    DEVICES_PER_PLUGIN,
    Series,
    allocatable,
    capacity,
    exposition,
    node_info,
    node_labels,
)
from alerts.catalog.common import KSM_JOB
from alerts.generate import rules_file
from exporter.spec import KUBEVIRT_DEVICES
from tests.helpers import ARTIFACTS, ROOT, Exporter, fixture_args, http_get, make_node_tree
from tests.pack.monitoring_stack import query, running_prometheus
from tests.pack.panels import concrete, panel_queries, reads_cluster_rules
from tests.pack.standin import Expositions

T = TypeVar("T")

#: node name -> (fixture shape, profile)
NODES = {
    "node-a": ("compliant", "production"),
    "node-b": ("undersized", "testing"),
    "node-c": ("cloudvm", "testing"),
}
NO_EXPORTER = "node-d"
CONFIG = """\
node_name: {node}
profile: {profile}
role: worker
node_address: 127.0.0.1
checks:
  kvm: {{interval: 1h}}
  compute: {{interval: 1h}}
  disk: {{interval: 1h}}
  network: {{interval: 1h}}
  ports: {{interval: 1h}}
  ovn: {{interval: 1h}}
"""


def cluster() -> list[Series]:
    """What kube-state-metrics would serve for the four nodes: a and b offer KVM; c runs
    virt-handler without /dev/kvm (its kvm plugin Unhealthy: capacity, no allocatable); d
    runs no virt-handler (no KubeVirt device, no kubevirt.io/schedulable label)."""
    found = [node_info(node, f"10.0.0.{11 + i}") for i, node in enumerate([*NODES, NO_EXPORTER])]
    for node, kvm in (
        ("node-a", DEVICES_PER_PLUGIN),
        ("node-b", DEVICES_PER_PLUGIN),
        ("node-c", 0),
    ):
        for device in KUBEVIRT_DEVICES:
            value = kvm if device == "kvm" else DEVICES_PER_PLUGIN
            found += [allocatable(node, device, value), capacity(node, device)]
        found.append(node_labels(node, kubevirt_io_schedulable="true"))
    found.append(node_labels(NO_EXPORTER))
    return found


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Polls until probe() gives something truthy; fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last!r})")


def firing(prometheus: str, alertname: str) -> set[str]:
    """The `node` labels of this alert's firing instances."""
    found = query(prometheus, f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')
    return {a["metric"].get("node", "") for a in found}


def fleet(prometheus: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "fleet", f"--prometheus={prometheus}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


@dataclass
class Fleet:
    exporters: dict[str, Exporter]
    prometheus: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Fleet]:
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))  # tmpfs: a fast fsync probe on any machine
    exporters: dict[str, Exporter] = {}
    try:
        for node, (shape, profile) in NODES.items():
            tree = make_node_tree(shape, base / node)
            config = base / f"{node}.yaml"
            config.write_text(CONFIG.format(node=node, profile=profile))
            exporters[node] = Exporter(fixture_args(tree, config))
        for exporter in exporters.values():
            exporter.wait_ready()
        rules = base / "rules.yml"
        rules.write_text(yaml.safe_dump(rules_file(RuleSettings(max_for="2s")), sort_keys=False))
        with Expositions(
            {"/ksm/metrics": exposition(cluster()), "/cdi/metrics": exposition(VIRT_DEFAULT_RWX)}
        ) as standin:
            scrape: dict[str, Any] = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "kubev-node-exporter",
                        "static_configs": [
                            {"targets": [e.url.removeprefix("http://") for e in exporters.values()]}
                        ],
                    },
                    {
                        "job_name": KSM_JOB,
                        "metrics_path": "/ksm/metrics",
                        "honor_labels": True,  # as kube-prometheus scrapes it
                        "static_configs": [{"targets": [standin.address]}],
                    },
                    {
                        "job_name": CDI_JOB,
                        "metrics_path": "/cdi/metrics",
                        "static_configs": [{"targets": [standin.address]}],
                    },
                ],
            }
            with running_prometheus(base, scrape) as prometheus:
                yield Fleet(exporters, prometheus)
    finally:
        for exporter in exporters.values():
            exporter.stop()
        shutil.rmtree(base, ignore_errors=True)


def report_verdicts(exporter: Exporter) -> dict[str, str]:
    """What the node's own exporter says, from /report.json (the `check` document)."""
    report = json.loads(exporter.get("/report.json").body)
    return {row["requirement"]: row["verdict"] for row in report["rows"]}


def table_rows(text: str) -> dict[str, list[str]]:
    """The node table of the text output: node name -> its cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NODE "))
    rows = {"NODE": lines[start].split()}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


@pytest.mark.root
@pytest.mark.slow
def test_fleet_reads_every_node_and_the_cluster_then_notices_a_stopped_exporter(
    stack: Fleet,
) -> None:
    prom = stack.prometheus
    # the rules' verdicts are there: every node as kube-state-metrics sees it, the cluster's
    wait_for(
        "kubev:node_exporter_reporting for the four nodes",
        lambda: (
            {
                r["metric"]["node"]: r["value"][1]
                for r in query(prom, "kubev:node_exporter_reporting")
            }
            == {"node-a": "1", "node-b": "1", "node-c": "1", NO_EXPORTER: "0"}
        ),
    )
    wait_for(
        "KubevNodeExporterMissing firing for node-d",
        lambda: firing(prom, "KubevNodeExporterMissing") == {NO_EXPORTER},
    )
    assert firing(prom, "KubevKubeVirtDevicesUnavailable") == {"node-c"}
    assert firing(prom, "KubevSharedStorageMissing") == set()
    assert firing(prom, "KubevKVMNodesTooFew") == set()

    done = fleet(prom, "--output=json")
    assert done.returncode == 1, done.stderr  # node-d has no exporter; nodes b and c fail
    report = json.loads(done.stdout)
    cluster = {row["requirement"]: row for row in report["cluster"]}
    assert cluster["shared_storage"]["verdict"] == "PASS"
    assert cluster["shared_storage"]["detail"] == (
        "StorageClass ceph-rbd (rook-ceph.rbd.csi.ceph.com) offers ReadWriteMany"
    )
    assert cluster["kvm_nodes"]["verdict"] == "PASS"
    assert cluster["kvm_nodes"]["observed"] == 2
    nodes = {n["node"]: n for n in report["nodes"]}
    assert list(nodes) == ["node-a", "node-b", "node-c", NO_EXPORTER]
    assert nodes[NO_EXPORTER]["exporter"] is None
    assert nodes[NO_EXPORTER]["reporting"]["verdict"] == "ERROR"
    assert nodes[NO_EXPORTER]["reporting"]["runbook_url"].endswith("/KubevNodeExporterMissing.md")
    # how the cluster sees each node
    devices = {n: v["verdicts"]["kubevirt_devices"]["verdict"] for n, v in nodes.items()}
    assert devices == {"node-a": "PASS", "node-b": "PASS", "node-c": "FAIL", NO_EXPORTER: "FAIL"}
    assert nodes["node-c"]["verdicts"]["kubevirt_devices"]["detail"].startswith(
        "2 of 3 devices allocatable"
    )
    schedulable = {n: v["verdicts"]["kubevirt_schedulable"]["verdict"] for n, v in nodes.items()}
    assert schedulable == {
        "node-a": "PASS",
        "node-b": "PASS",
        "node-c": "PASS",
        NO_EXPORTER: "FAIL",
    }
    # each node's requirements as its own exporter judges them, read back through Prometheus
    for node, exporter in stack.exporters.items():
        assert nodes[node]["exporter"]["instance"] == exporter.url.removeprefix("http://")
        assert nodes[node]["exporter"]["profile"] == NODES[node][1]
        own = report_verdicts(exporter)
        seen = {req: cell["verdict"] for req, cell in nodes[node]["verdicts"].items() if req in own}
        assert seen == own, node
    assert nodes["node-a"]["verdicts"]["cpu_cores"]["verdict"] == "PASS"
    assert nodes["node-b"]["verdicts"]["cpu_cores"]["verdict"] == "FAIL"
    assert nodes["node-b"]["verdicts"]["cpu_cores"]["detail"] == "4 cores; minimum >= 8 cores"

    # the table says the same (kept in test-artifacts/ for people to look at)
    text = fleet(prom)
    assert text.returncode == 1
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fleet.txt").write_text(text.stdout)
    (ARTIFACTS / "fleet.json").write_text(done.stdout)
    rows = table_rows(text.stdout)
    head = rows["NODE"]
    assert head[:6] == ["NODE", "ROLE", "PROFILE", "kv-dev", "kv-sched", "EXPORTER"]
    for node in NODES:
        by_column = dict(zip(head, rows[node], strict=True))
        assert by_column["PROFILE"] == NODES[node][1]
        assert by_column["EXPORTER"] == "PASS"
        for column in report["columns"]:
            verdict = nodes[node]["verdicts"][column["requirement"]]["verdict"]
            assert by_column[column["header"]] == (verdict or "-"), (node, column)
    assert rows[NO_EXPORTER][:6] == [NO_EXPORTER, "-", "-", "FAIL", "FAIL", "ERROR"]
    assert "(no kubev-node-exporter reports this node)" in text.stdout
    assert "  PASS    Shared storage (ReadWriteMany) for VM disks" in text.stdout
    assert text.stdout.splitlines()[-1].endswith(
        "a minimum is not met or something cannot be judged (exit 1)"
    )

    # stop node-b's exporter: its node joins node-d
    stopped = stack.exporters["node-b"]
    stopped.stop()
    wait_for(
        "KubevNodeExporterMissing firing for node-b and node-d",
        lambda: firing(prom, "KubevNodeExporterMissing") == {"node-b", NO_EXPORTER},
    )
    again = json.loads(fleet(prom, "--output=json").stdout)
    nodes = {n["node"]: n for n in again["nodes"]}
    assert nodes["node-b"]["exporter"] is None
    assert nodes["node-b"]["reporting"]["verdict"] == "ERROR"
    assert f"exporter targets down: {stopped.url.removeprefix('http://')}" in again["notes"]


@pytest.mark.slow
def test_fleet_without_a_prometheus_or_its_data_exits_2(tmp_path: Path) -> None:
    """Nothing listens: exit 2 and why. A Prometheus that scrapes nothing of ours: exit 2,
    naming the selector."""
    refused = fleet("http://127.0.0.1:9")
    assert refused.returncode == 2
    assert refused.stderr.startswith("kubev-node-exporter fleet: cannot reach Prometheus at")
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": []}
    with running_prometheus(tmp_path, config) as prometheus:
        assert http_get(f"{prometheus}/-/ready").status == 200
        empty = fleet(prometheus)
        assert empty.returncode == 2
        assert 'kubev_node_info{job="kubev-node-exporter"}' in empty.stderr
        assert "a wrong URL or --selector" in empty.stderr


@pytest.mark.root
@pytest.mark.slow
def test_the_dashboards_cluster_panels_show_the_cluster(stack: Fleet) -> None:
    """The panels over what the cluster rules record (shared storage, nodes offering KVM,
    nodes without an exporter, each node as the cluster sees it) return data where
    kube-state-metrics and CDI are scraped, as here; tests/pack/test_end_to_end.py checks
    every other panel."""
    queries = [(d, title, e) for d, title, e in panel_queries() if reads_cluster_rules(e)]
    assert {d for d, _, _ in queries} == {"fleet.json"}
    assert len(queries) >= 5
    for dashboard, title, expr in queries:
        found = wait_for(
            f"{dashboard}: {title}", functools.partial(query, stack.prometheus, concrete(expr))
        )
        assert all(sample["value"][1] != "NaN" for sample in found), (title, found)
    kvm = query(stack.prometheus, concrete(next(e for _, t, e in queries if "KVM" in t)))
    assert [s["value"][1] for s in kvm] == ["2"]  # node-a and node-b
