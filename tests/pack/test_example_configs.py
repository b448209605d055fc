"""The example Prometheus and Alertmanager configurations pass their own tools' checks; the
routing sends each severity to its receiver, and a real Alertmanager inhibits as the
example says, with one cluster's page muting nothing in another."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ROOT, http_get
from tests.pack.monitoring_stack import Webhook, alertmanager

EXAMPLES = ROOT / "deploy" / "prometheus"


def test_alertmanager_example_passes_amtool() -> None:
    done = subprocess.run(
        ["amtool", "check-config", "alertmanager.yml"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_prometheus_example_passes_promtool_with_the_generated_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_alertmanager_routes_by_severity_and_groups_by_node() -> None:
    config = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())
    route = config["route"]
    assert "instance" in route["group_by"]
    receivers = {tuple(r["matchers"]): r["receiver"] for r in route["routes"]}
    assert receivers[('severity="critical"',)] == "pager"
    assert receivers[('severity="warning"',)] == "chat"
    inhibits = {
        (tuple(r["source_matchers"]), tuple(r["target_matchers"])) for r in config["inhibit_rules"]
    }
    assert (
        ('alertname="KubevKVMUnusable"',),
        ('alertname="KubevVirtualizationExtensionsMissing"',),
    ) in inhibits
    # clusters stay apart in groups and inhibitions
    assert "cluster" in route["group_by"]
    assert all("cluster" in rule["equal"] for rule in config["inhibit_rules"])


def test_amtool_routes_each_severity_to_its_receiver() -> None:
    for labels, receiver in (
        (["severity=critical", "alertname=KubevPortDown"], "pager"),
        (["severity=warning", "alertname=KubevCheckFailing"], "chat"),
        (["severity=info", "alertname=KubevNodeLocalDNSCacheDetected"], "ticket"),
        # a sizing shortfall at the minimum level is a ticket too, not a page
        (["severity=warning", "level=minimum", "alertname=KubevCPUCoresInsufficient"], "chat"),
    ):
        done = subprocess.run(
            ["amtool", "config", "routes", "test", "--config.file=alertmanager.yml", *labels],
            cwd=EXAMPLES,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.stdout.strip() == receiver, (labels, done.stdout, done.stderr)


# --- inhibitions, in a real Alertmanager ----------------------------------------------------

NODE = {"instance": "node-1:19100", "job": "kubev-node-exporter"}
FSYNC = "KubevStorageFsyncSlow"
OVN = "KubevOVNEndpointDown"


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


Key = tuple[tuple[str, str], ...]


def key(labels: dict[str, str]) -> Key:
    return tuple(sorted(labels.items()))


def states(url: str) -> dict[Key, str]:
    """Each alert's state (active, suppressed), keyed by its sorted labels."""
    got: list[dict[str, Any]] = json.loads(http_get(f"{url}/api/v2/alerts").body)
    return {key(a["labels"]): a["status"]["state"] for a in got}


def test_a_page_mutes_its_own_warning_only_in_its_cluster_and_component(tmp_path: Path) -> None:
    """node-1 exists in clusters a and b. In b the fsync p99 is far beyond the minimum: the
    page mutes b's minimum warning of the same alert, not a's. kube-ovn-cni dead on a node
    does not mute kube-ovn-monitor dead there. Without a cluster label (one cluster), the
    page mutes the warning as before."""
    fsync = {"alertname": FSYNC, **NODE}
    page_b = {**fsync, "cluster": "b", "path": "/var/lib/etcd", "severity": "critical"}
    warn_b = {**fsync, "cluster": "b", "requirement": "disk_latency", "level": "minimum"}
    warn_b["severity"] = "warning"
    warn_a = {**warn_b, "cluster": "a"}
    page_plain = {k: v for k, v in page_b.items() if k != "cluster"} | {"instance": "node-2:19100"}
    warn_plain = {k: v for k, v in warn_b.items() if k != "cluster"} | {"instance": "node-2:19100"}
    ovn = {"alertname": OVN, **NODE, "cluster": "a", "state": "dead"}
    cni = {**ovn, "component": "kube-ovn-cni", "port": "10665", "severity": "critical"}
    monitor = {**ovn, "component": "kube-ovn-monitor", "port": "10661", "severity": "warning"}
    alerts = [page_b, warn_b, warn_a, page_plain, warn_plain, cni, monitor]

    with Webhook() as hook, alertmanager(tmp_path, hook) as url:
        post_alerts(url, alerts)
        muted = {key(warn_b), key(warn_plain)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = states(url)
            if len(now) == len(alerts) and all(now[k] == "suppressed" for k in muted):
                break
            time.sleep(0.2)
        assert {k for k, state in now.items() if state == "suppressed"} == muted, now
        assert now[key(warn_a)] == now[key(monitor)] == "active"
