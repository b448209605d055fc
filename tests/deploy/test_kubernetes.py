"""The Kubernetes manifests: kustomize renders every overlay, every object validates offline
against the Kubernetes schemas (strict), the Operator's objects against models generated
from their CRD schemas, and the PrometheusRule's groups pass promtool."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.generate import K8S, NAME, files
from exporter.checks.disk import DiskSettings
from exporter.config import from_mapping
from exporter.web import DEFAULT_PORT

KUBERNETES_VERSION = "1.33.0"
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
OVERLAYS = ["base", "overlays/split-roles", "overlays/without-kubevirt"]


def render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / overlay)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_pass_strict_schema_validation(overlay: str, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(render(overlay)))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("kubernetes-validate")),
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            str(rendered),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = done.stdout.count(" passed for resource ")
    assert passed == len(
        [o for o in render(overlay) if o["apiVersion"] != "monitoring.coreos.com/v1"]
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_objects_match_their_crd_models(overlay: str) -> None:
    from cloudcoil.models.prometheus_operator import v1

    for obj in render(overlay):
        if obj["apiVersion"] != "monitoring.coreos.com/v1":
            continue
        model = getattr(v1, obj["kind"]).model_validate(obj)
        # strict: a field the schema does not know would be dropped here
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj


def test_prometheusrule_groups_pass_promtool(tmp_path: Path) -> None:
    rule = by_kind(render("base"), "PrometheusRule")[0]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifests_are_generated_and_current() -> None:
    for path, text in files().items():
        assert path.read_text() == text, f"{path} is stale: run make generate"


def test_daemonset_shape() -> None:
    ds = by_kind(render("base"), "DaemonSet")[0]
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {t["key"] for t in pod["tolerations"]} >= {"node-role.kubernetes.io/control-plane"}
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert c["resources"]["limits"]["devices.kubevirt.io/kvm"] == "1"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/host/proc"]["readOnly"] and mounts["/host/sys"]["readOnly"]
    assert not mounts["/host/root/var/lib/kubelet"].get("readOnly")  # the fsync probe writes
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert f"--web.listen-address=:{DEFAULT_PORT}" in c["args"]


def test_service_and_servicemonitor_find_the_pods() -> None:
    objects = render("base")
    ds, svc, sm = (by_kind(objects, k)[0] for k in ("DaemonSet", "Service", "ServiceMonitor"))
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    # the alert rules expect job="kubev-node-exporter": the Operator takes it from jobLabel
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == NAME


def test_split_roles_overlay_covers_every_node_once() -> None:
    daemonsets = {
        d["metadata"]["name"]: d for d in by_kind(render("overlays/split-roles"), "DaemonSet")
    }
    assert set(daemonsets) == {NAME, f"{NAME}-worker"}
    roles = {}
    for name, ds in daemonsets.items():
        pod = ds["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expr = term["nodeSelectorTerms"][0]["matchExpressions"][0]
        roles[name] = (env["KUBEV_ROLE"], expr["key"], expr["operator"])
        assert ds["spec"]["selector"]["matchLabels"].items() <= (
            ds["spec"]["template"]["metadata"]["labels"].items()
        )
    assert roles == {
        NAME: ("control-plane", "node-role.kubernetes.io/control-plane", "Exists"),
        f"{NAME}-worker": ("worker", "node-role.kubernetes.io/control-plane", "DoesNotExist"),
    }


def test_dashboards_configmaps_carry_the_generated_json() -> None:
    from dashboards.generate import outputs

    maps = [
        m
        for m in by_kind(render("base"), "ConfigMap")
        if m["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    data = {k: v for m in maps for k, v in m["data"].items()}
    assert data == {p.name: t for p, t in outputs().items()}


def test_the_exporter_accepts_the_configmap_config() -> None:
    cm = next(
        m for m in by_kind(render("base"), "ConfigMap") if m["metadata"]["name"].endswith("-config")
    )
    cfg = from_mapping(yaml.safe_load(cm["data"]["config.yaml"]))
    # the fsync probe's path is the kubelet's, which the DaemonSet mounts writable
    assert cfg.settings(DiskSettings).storage_paths == ("/var/lib/kubelet",)
    assert shutil.which("promtool")
