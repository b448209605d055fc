"""The example Prometheus and Alertmanager configurations pass their own tools' checks."""

from __future__ import annotations

import subprocess

import yaml

from tests.helpers import ROOT

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


def test_amtool_routes_each_severity_to_its_receiver() -> None:
    for labels, receiver in (
        (["severity=critical", "alertname=KubevPortDown"], "pager"),
        (["severity=warning", "alertname=KubevCheckFailing"], "chat"),
        (["severity=info", "alertname=KubevNodeLocalDNSCacheDetected"], "ticket"),
    ):
        done = subprocess.run(
            ["amtool", "config", "routes", "test", "--config.file=alertmanager.yml", *labels],
            cwd=EXAMPLES,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.stdout.strip() == receiver, (labels, done.stdout, done.stderr)
