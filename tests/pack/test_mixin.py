"""The jsonnet mixin (mixin/), rendered with the jsonnet library as a user's build would:
with its default _config it is the committed rule file and dashboards; an overridden
_config changes exactly the selector, runbook URLs, severities and dashboard settings it
names, and promtool accepts and evaluates the result; kube-prometheus-style vendoring works
from a copy of mixin/ alone."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import _jsonnet
import yaml

from alerts.catalog import ALERTS, RuleSettings
from alerts.generate import RULES, rules_file, runbook_url
from dashboards.generate import outputs as dashboard_outputs
from tests.helpers import ROOT

MIXIN = ROOT / "mixin"
#: where jsonnet-bundler puts the mixin when a jsonnetfile.json names this repository
#: with `subdir: mixin`
VENDORED = Path("github.com/kubev/kubev-node-exporter/mixin")

SELECTOR = 'job=~"kubev.*",cluster="a"'
PATTERN = "https://runbooks.example.com/kubev/%s?from=mixin&pct=100%%"
SEVERITIES = {"critical": "page", "warning": "ticket", "info": "notice"}
OVERRIDE = {
    "kubevSelector": SELECTOR,
    "runbookURLPattern": PATTERN,
    **{f"{name}Severity": value for name, value in SEVERITIES.items()},
}
DASHBOARD_OVERRIDE = {
    "clusterLabel": "k8s_cluster",
    "showMultiCluster": True,
    "datasourceName": "Thanos",
    "dashboardNamePrefix": "Kube-V / ",
    "dashboardTags": ["kubev-mixin"],
    "runbookURLPattern": PATTERN,
}


def evaluate(snippet: str, jpath: Path = MIXIN) -> Any:
    return json.loads(_jsonnet.evaluate_snippet("test.jsonnet", snippet, jpathdir=str(jpath)))


def with_config(config: dict[str, Any], expr: str) -> Any:
    """An expression over the mixin `m`, its _config overridden as a user's jsonnet would."""
    mixin = f"(import 'mixin.libsonnet') + {{ _config+:: {json.dumps(config)} }}"
    return evaluate(f"local m = {mixin};\n{expr}")


def rule_groups(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The recording and alerting groups, in the committed file's order."""
    groups: list[dict[str, Any]] = with_config(
        config, "m.prometheusRules.groups + m.prometheusAlerts.groups"
    )
    return groups


def committed_dashboards() -> dict[str, Any]:
    return {f"kubev-{p.name}": json.loads(t) for p, t in dashboard_outputs().items()}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


# --- the default _config: the committed files ----------------------------------------------


def test_default_config_renders_the_committed_rule_file() -> None:
    committed = yaml.safe_load(RULES.read_text())
    assert rule_groups({}) == committed["groups"]


def test_entry_points_render_yaml_and_dashboards_like_the_makefile_would() -> None:
    """alerts.jsonnet and rules.jsonnet are `jsonnet -S` entry points (YAML text);
    dashboards.jsonnet a `jsonnet -m` one (one file per dashboard)."""
    committed = yaml.safe_load(RULES.read_text())["groups"]
    alerts = yaml.safe_load(json.loads(_jsonnet.evaluate_file(str(MIXIN / "alerts.jsonnet"))))
    rules = yaml.safe_load(json.loads(_jsonnet.evaluate_file(str(MIXIN / "rules.jsonnet"))))
    assert rules["groups"] + alerts["groups"] == committed
    dashboards = json.loads(_jsonnet.evaluate_file(str(MIXIN / "dashboards.jsonnet")))
    assert dashboards == committed_dashboards()
    assert sorted(dashboards) == ["kubev-fleet.json", "kubev-node.json"]


# --- an overridden _config: exactly what it names changes ----------------------------------


def expected_rules(selector: str, pattern: str, severities: dict[str, str]) -> list[Any]:
    """The rule file as the Python generator renders it for the selector, with the
    severities and runbook URLs a deployment asked for."""
    groups = rules_file(RuleSettings(selector=selector))["groups"]
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                severity = rule["labels"]["severity"]
                rule["labels"]["severity"] = severities.get(severity, severity)
                rule["annotations"]["runbook_url"] = pattern % rule["alert"]
    return list(groups)


def test_overridden_config_changes_selector_severities_and_runbooks(tmp_path: Path) -> None:
    groups = rule_groups(OVERRIDE)
    assert groups == expected_rules(SELECTOR, PATTERN, SEVERITIES)
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert {r["labels"]["severity"] for r in alerts} == {"page", "ticket", "notice"}
    first = alerts[0]
    assert first["annotations"]["runbook_url"] == (
        f"https://runbooks.example.com/kubev/{first['alert']}?from=mixin&pct=100%"
    )
    # every selector of our series, in every expression and query template, is the new one;
    # the cluster rules read kube-state-metrics' and CDI's series, the overlay rule the
    # Kube-OVN pinger's, under their own selectors
    defaults = RuleSettings()
    for rule in (r for g in groups for r in g["rules"]):
        assert 'job="kubev-node-exporter"' not in json.dumps(rule), rule
        own = (SELECTOR, defaults.ksm_selector, defaults.cdi_selector, defaults.pinger_selector)
        assert any(selector in rule["expr"] for selector in own), rule

    path = tmp_path / "kubev.rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_overridden_rules_fire_for_the_selected_cluster_only(tmp_path: Path) -> None:
    """The same node name in two clusters: KVM fails in cluster a (selected) and works in
    cluster b. The alert fires once, for a, with the remapped severity and runbook, and
    its description reads the device gauge of a through the selector."""
    (tmp_path / "kubev.rules.yml").write_text(yaml.safe_dump({"groups": rule_groups(OVERRIDE)}))
    labels = 'instance="n1:9100",job="kubev-node-exporter"'
    series = []
    for cluster, ok in (("a", 0), ("b", 1)):
        at = f'{labels},cluster="{cluster}"'
        series += [
            {
                "series": f'kubev_requirement_met{{{at},requirement="kvm",level="minimum"}}',
                "values": f"{ok}x10",
            },
            {"series": f"kubev_kvm_device_present{{{at}}}", "values": f"{ok}x10"},
        ]
    alert = next(a for a in ALERTS if a.name == "KubevKVMUnusable")
    tests = {
        "rule_files": ["kubev.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": alert.name,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "instance": "n1:9100",
                                    "job": "kubev-node-exporter",
                                    "cluster": "a",
                                    "requirement": "kvm",
                                    "level": "minimum",
                                    "severity": "page",
                                },
                                "exp_annotations": {
                                    "summary": alert.rules[0].summary,
                                    "description": "n1:9100: /dev/kvm is missing or cannot "
                                    "create a VM (device present: 0; KVM backend: none loaded). "
                                    "VMs cannot start here unless the cluster allows software "
                                    "emulation.",
                                    "runbook_url": "https://runbooks.example.com/kubev/"
                                    "KubevKVMUnusable?from=mixin&pct=100%",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "kubev.test.yml").write_text(yaml.safe_dump(tests))
    done = promtool("test", "rules", "kubev.test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def expected_dashboard(committed: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What the mixin should make of a committed dashboard for the _config, computed
    here independently of dashboards.libsonnet."""
    out: dict[str, Any] = copy.deepcopy(committed)
    label = config["clusterLabel"]
    prefix, _, suffix = runbook_url("{alert}").partition("{alert}")

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and key in ("expr", "query"):
            return node.replace('cluster=~"$cluster"', f'{label}=~"$cluster"')
        if isinstance(node, str) and key == "url" and node.startswith(prefix):
            alert = node[len(prefix) : -len(suffix)]
            return config["runbookURLPattern"] % alert
        return node

    out = walk(out)
    out["title"] = config["dashboardNamePrefix"] + committed["title"].split(": ", 1)[1]
    out["tags"] = config["dashboardTags"]
    for variable in out["templating"]["list"]:
        if variable["name"] == "datasource":
            variable["current"].update(text="Thanos", value="Thanos")
        if variable["name"] == "cluster":
            variable["query"] = f"label_values(kubev_node_info, {label})"
            variable["hide"] = 0
    return out


def test_overridden_config_changes_the_dashboards_where_it_matters() -> None:
    rendered = with_config(DASHBOARD_OVERRIDE, "m.grafanaDashboards")
    committed = committed_dashboards()
    assert sorted(rendered) == sorted(committed)
    for name, dashboard in rendered.items():
        assert dashboard == expected_dashboard(committed[name], DASHBOARD_OVERRIDE), name
        text = json.dumps(dashboard)
        assert 'k8s_cluster=~\\"$cluster\\"' in text
        assert ' cluster=~\\"$cluster\\"' not in text and '{cluster=~\\"$cluster' not in text
        assert "/docs/runbooks/" not in text
        assert "https://runbooks.example.com/kubev/Kubev" in text
        assert dashboard["title"].startswith("Kube-V / ")


# --- as kube-prometheus vendors and imports it ----------------------------------------------

#: a kube-prometheus-style build that vendors and configures the mixin
KUBE_PROMETHEUS = Path(__file__).with_name("kube-prometheus.jsonnet")


def test_kube_prometheus_vendors_and_configures_it(tmp_path: Path) -> None:
    """A copy of mixin/ alone, where jsonnet-bundler would vendor it, imported and
    configured the way kube-prometheus imports node-mixin."""
    from cloudcoil.models.prometheus_operator import v1

    vendor = tmp_path / "vendor"
    shutil.copytree(MIXIN, vendor / VENDORED)
    out = evaluate(KUBE_PROMETHEUS.read_text(), jpath=vendor)

    rule = out["prometheusRule"]
    model = v1.PrometheusRule.model_validate(rule)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == rule
    selector = 'job="kubev-node-exporter",namespace="monitoring"'
    groups = expected_rules(selector, "https://runbooks.example.com/kubev/%s", {})
    by_name = {g["name"]: g for g in rule["spec"]["groups"]}
    wanted_groups = {g["name"]: g for g in groups}
    # kube-prometheus lists alerts before rules: the same groups, in its order
    assert [g["name"] for g in rule["spec"]["groups"]] == [
        "kubev-node-exporter.alerts",
        "kubev-node-exporter.rules",
        "kubev-node-exporter.cluster",
    ]
    for name in ("kubev-node-exporter.rules", "kubev-node-exporter.cluster"):
        assert by_name[name] == wanted_groups[name]
    alerts = by_name["kubev-node-exporter.alerts"]["rules"]
    wanted_alerts = wanted_groups["kubev-node-exporter.alerts"]["rules"]
    for rendered, wanted in zip(alerts, wanted_alerts, strict=True):
        assert rendered["expr"] == wanted["expr"]
        assert rendered["annotations"]["runbook_url"] == wanted["annotations"]["runbook_url"]

    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    cluster = {
        name: next(v for v in d["templating"]["list"] if v["name"] == "cluster")
        for name, d in out["dashboards"].items()
    }
    assert sorted(cluster) == ["kubev-fleet.json", "kubev-node.json"]
    assert all(v["hide"] == 0 for v in cluster.values())
