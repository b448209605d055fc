"""The observability pack end to end: the real exporter on a fixture node that breaks a
minimum, a real Prometheus with the generated rules, a real Alertmanager with the example
routing, a webhook receiver; every dashboard query and variable against that Prometheus,
and against a second one that labels every series with a cluster, as a multi-cluster setup
does; a screenshot of Prometheus's alerts page in headless Chromium (kept in
test-artifacts/, not committed).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboards.generate import outputs as dashboard_outputs
from tests.helpers import ARTIFACTS, Exporter, chromium, fixture_args, make_node_tree, wait_until
from tests.pack.monitoring_stack import Webhook, alertmanager, prometheus, query
from tests.pack.panels import concrete, panel_queries, reads_cluster_rules, variable_queries

CONFIG = """\
node_name: e2e-node
profile: production
node_address: 127.0.0.1
checks:
  compute: {interval: 5s}
  dns: {names: [localhost]}
  # a peer on loopback: nothing listens there, every port resets (reachable, no firewall)
  peers: {static: [127.0.0.2=worker]}
"""
EIGHT_THREADS = 8


@dataclass
class Stack:
    tree: Path
    exporter: Exporter
    prometheus: str
    hook: Webhook


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    tree = make_node_tree("compliant", tmp)
    cpuinfo = tree / "proc" / "cpuinfo"
    shutil.copy(cpuinfo, tmp / "cpuinfo.good")
    # break one minimum: 8 logical CPUs on a production node (16 required)
    blocks = cpuinfo.read_text().split("\n\n")
    cpuinfo.write_text("\n\n".join(blocks[:EIGHT_THREADS]) + "\n")
    config = tmp / "config.yaml"
    config.write_text(CONFIG)
    exporter = Exporter([*fixture_args(tree, config)], dns=True)
    try:
        exporter.wait_ready()
        with (
            Webhook() as hook,
            alertmanager(tmp, hook) as am,
            prometheus(tmp, f"127.0.0.1:{exporter.port}", am) as prom,
        ):
            # five scrapes, and the recording rules the panels read have run on them
            ready = (
                'count_over_time(kubev_node_info{job="kubev-node-exporter"}[1m]) >= 5',
                "kubev:disk_write_latency_seconds:rate5m",
            )
            wait_until(
                lambda: all(query(prom, q) for q in ready),
                "five scrapes of the exporter and the recording rules in Prometheus",
                every=0.5,
            )
            yield Stack(tree, exporter, prom, hook)
    finally:
        exporter.stop()


@pytest.fixture(scope="module")
def clustered(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Prometheus scraping the same exporter with `cluster="east"` on every series
    (no Alertmanager: the alerts test counts notifications)."""
    tmp = tmp_path_factory.mktemp("clustered")
    with prometheus(tmp, f"127.0.0.1:{stack.exporter.port}", None, {"cluster": "east"}) as prom:
        # five scrapes, and the recording rules the panels read have run on them
        ready = (
            'count_over_time(kubev_node_info{cluster="east"}[1m]) >= 5',
            'kubev:disk_write_latency_seconds:rate5m{cluster="east"}',
        )
        wait_until(
            lambda: all(query(prom, q) for q in ready),
            "five scrapes and the recording rules in the clustered Prometheus",
            every=0.5,
        )
        yield prom


def label_values(prometheus_url: str, selector: str, label: str, cluster: str) -> set[str]:
    """What Grafana's label_values(selector, label) lists."""
    series = query(prometheus_url, concrete(selector, cluster))
    return {s["metric"][label] for s in series if label in s["metric"]}


@pytest.mark.root
@pytest.mark.slow
def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """On a Prometheus without a cluster label, with the hidden Cluster variable at All."""
    queries = panel_queries()
    assert len(queries) > 20
    # the cluster rules' panels read kube-state-metrics and CDI, which this stack does not
    # scrape: tests/pack/test_fleet.py, whose stack serves them, shows those return data
    empty = [
        (d, title, expr)
        for d, title, expr in queries
        if not reads_cluster_rules(expr) and not query(stack.prometheus, concrete(expr))
    ]
    assert not empty, f"panels whose query returns nothing: {empty}"


@pytest.mark.root
@pytest.mark.slow
def test_every_variable_lists_values_and_cluster_stays_all_without_the_label(
    stack: Stack,
) -> None:
    variables = variable_queries()
    assert {name for _, name, _, _ in variables} == {"cluster", "job", "node"}
    for dashboard, name, selector, label in variables:
        values = label_values(stack.prometheus, selector, label, ".*")
        if name == "cluster":
            # no series has the label: the variable has no value but All (.*)
            assert values == set(), (dashboard, values)
        else:
            assert values, (dashboard, name, selector)
    assert label_values(stack.prometheus, "kubev_node_info", "job", ".*") == {"kubev-node-exporter"}


@pytest.mark.root
@pytest.mark.slow
def test_the_cluster_variable_lists_clusters_and_every_query_filters_by_it(
    clustered: str,
) -> None:
    for dashboard, name, selector, label in variable_queries():
        values = label_values(clustered, selector, label, "east")
        if name == "cluster":
            assert values == {"east"}, dashboard
        else:
            assert values, (dashboard, name)
    # not the cluster rules' panels: no kube-state-metrics here (see above)
    queries = [(d, t, e) for d, t, e in panel_queries() if not reads_cluster_rules(e)]
    empty = [(d, t, e) for d, t, e in queries if not query(clustered, concrete(e, "east"))]
    assert not empty, f"panels with no data for cluster east: {empty}"
    # another cluster: nothing, but the zero a count falls back to (`or vector(0)`)
    for d, title, expr in queries:
        for sample in query(clustered, concrete(expr, "west")):
            assert sample["metric"] == {} and sample["value"][1] == "0", (d, title, sample)


def test_dashboards_are_current_grafana() -> None:
    assert dashboard_outputs() == dashboard_outputs()  # deterministic
    for path, text in dashboard_outputs().items():
        data = json.loads(text)
        assert data["schemaVersion"] >= 36, path
        types = {p["type"] for p in data["panels"]}
        assert not types & {"graph", "singlestat", "table-old"}, (path, types)
        assert [v["name"] for v in data["templating"]["list"]] == [
            "datasource",
            "cluster",
            "job",
            "node",
        ]


@pytest.mark.root
@pytest.mark.slow
def test_alert_fires_routes_with_runbook_and_resolves(stack: Stack, tmp_path: Path) -> None:
    """Too few cores at the minimum level: a static fact of the machine, so a ticket (the
    chat receiver, severity warning, level minimum), never a page."""
    fired = stack.hook.wait_for("/chat", "KubevCPUCoresInsufficient", "firing")
    assert fired["labels"]["severity"] == "warning"
    assert fired["labels"]["level"] == "minimum"
    assert fired["labels"]["instance"] == f"127.0.0.1:{stack.exporter.port}"
    assert fired["annotations"]["runbook_url"].endswith("/KubevCPUCoresInsufficient.md")
    assert fired["annotations"]["description"] == (
        f"127.0.0.1:{stack.exporter.port}: the number of logical cores is 8; the minimum of "
        "its profile is 16."
    )
    screenshot_alerts_page(stack.prometheus, tmp_path)

    # fix the node: all 32 threads back
    shutil.copy(stack.tree.parent / "cpuinfo.good", stack.tree / "proc" / "cpuinfo")
    resolved = stack.hook.wait_for("/chat", "KubevCPUCoresInsufficient", "resolved")
    assert resolved["labels"]["severity"] == "warning"
    # one route per alert: what went to chat never reached the pager
    paged = [
        alert["labels"]["alertname"]
        for path, payload in stack.hook.received
        if path == "/pager"
        for alert in payload["alerts"]
    ]
    assert "KubevCPUCoresInsufficient" not in paged


def screenshot_alerts_page(prometheus_url: str, tmp_path: Path) -> None:
    """Prometheus's alerts page as a browser renders it; Debian ships the classic UI."""
    url = f"{prometheus_url}/classic/alerts"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "prometheus-alerts.png"
    chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,1000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = chromium(url, tmp_path, "--dump-dom")
    # the rendered rows: name, then "(1 active)", tags between them
    assert re.search(r"KubevCPUCoresInsufficient(\s|<[^>]*>)*\(1 active\)", dom)
    assert re.search(r"Firing \(1\)", dom)
