"""The kustomize manifests: rendered from the Helm chart by make generate, so the two ways
to install cannot drift. kubectl's kustomize builds each directory; the result equals the
chart's render with the same values, passes the Kubernetes schemas (strict), the
Operator's CRD models and the rules a schema does not see; the base needs no CRDs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import policy
from deploy.generate import files
from deploy.kustomize import BASE, K8S, KPS_RELEASE, VARIANTS, Variant
from deploy.render import Chart, identity, without_helm_labels
from exporter.checks.disk import DiskSettings
from exporter.checks.dns import DnsSettings
from exporter.checks.peers import PeersSettings
from exporter.config import from_mapping
from exporter.web import DEFAULT_PORT
from tests.deploy.validate import (
    by_kind,
    kubernetes_strict,
    kustomize,
    operator_models,
    promtool_rules,
)

OVERLAYS = [v for v in (BASE, *VARIANTS) if v.kind == "overlay"]


def by_path(path: str) -> Variant:
    (variant,) = [v for v in OVERLAYS if v.path == path]
    return variant


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return {v.path: kustomize(K8S / v.path) for v in OVERLAYS}


def test_the_manifests_are_generated_and_current() -> None:
    for path, text in files().items():
        assert path.read_text() == text, f"{path} is stale: run make generate"


@pytest.mark.parametrize("variant", [v.path for v in OVERLAYS])
def test_kustomize_builds_what_the_chart_renders(
    chart: Chart, built: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """No drift: every object kustomize builds is the chart's, with the same values."""
    from_kustomize = {identity(o): o for o in built[variant] if o["kind"] != "Namespace"}
    from_chart = {
        identity(o): without_helm_labels(o) for o in chart.render(by_path(variant).values).objects
    }
    assert sorted(from_kustomize) == sorted(from_chart)
    for key, obj in from_chart.items():
        assert from_kustomize[key] == obj, key


@pytest.mark.parametrize("variant", [v.path for v in OVERLAYS])
def test_every_object_is_valid_and_keeps_the_rules(
    built: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    objects = built[variant]
    kubernetes_strict(objects, tmp_path)
    operator_models(objects)
    assert policy.violations(objects) == []


def test_the_base_applies_without_the_operators_crds(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    """kubectl apply -k stops at the first kind the API server does not know: no
    ServiceMonitor or PrometheusRule outside the kube-prometheus overlay."""
    for path, objects in built.items():
        operator = {o["kind"] for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
        expected = {"ServiceMonitor", "PrometheusRule"} if "kube-prometheus" in path else set()
        assert operator == expected, path
    (ns,) = by_kind(built["base"], "Namespace")
    # hostNetwork and hostPath volumes: Pod Security's privileged level
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_kube_prometheus_stack_sees_the_monitoring_objects(
    built: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    objects = built["overlays/kube-prometheus"]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        (obj,) = by_kind(objects, kind)
        assert obj["metadata"]["labels"]["release"] == KPS_RELEASE
    promtool_rules(by_kind(objects, "PrometheusRule")[0], tmp_path)
    # another release name: one line in the user's own kustomization
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays/kube-prometheus", mine)],
                "labels": [{"pairs": {"release": "monitoring"}}],
            }
        )
    )
    relabelled = kustomize(mine)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert by_kind(relabelled, kind)[0]["metadata"]["labels"]["release"] == "monitoring"


def test_the_component_combines_with_the_role_split(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays/split-roles", mine)],
                "components": [os.path.relpath(K8S / "components/kube-prometheus", mine)],
            }
        )
    )
    objects = kustomize(mine)
    assert len(by_kind(objects, "DaemonSet")) == 2
    assert len(by_kind(objects, "ServiceMonitor")) == 1
    assert policy.violations(objects) == []


def test_without_kubevirt_opens_dev_kvm_without_the_device_resource(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    """Issue 12: it asked for the kvm resource (Pending where KubeVirt's plugin offers none)
    and set privileged beside allowPrivilegeEscalation: false (refused by the API)."""
    (ds,) = by_kind(built["overlays/without-kubevirt"], "DaemonSet")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["privileged"] is True
    assert "allowPrivilegeEscalation" not in container["securityContext"]
    assert not [r for r in container["resources"]["limits"] if "kubevirt" in r]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_the_exporter_accepts_the_configmap(built: dict[str, list[dict[str, Any]]]) -> None:
    (cm,) = [
        m for m in by_kind(built["base"], "ConfigMap") if m["metadata"]["name"].endswith("-config")
    ]
    config = from_mapping(yaml.safe_load(cm["data"]["config.yaml"]))
    assert config.settings(DiskSettings).storage_paths == ("/var/lib/kubelet",)
    # kubelet's clusterDomain decides the DNS check's domain: the config does not pin one
    assert config.settings(DnsSettings).cluster_domain is None


@pytest.mark.parametrize("variant", [v.path for v in OVERLAYS])
def test_the_peers_find_each_other_through_the_headless_service(
    built: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    """As the chart: the peers check asks for the headless Service's name (not-ready pods
    included) and for identities on the one port."""
    objects = built[variant]
    (svc,) = by_kind(objects, "Service")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    (cm,) = [m for m in by_kind(objects, "ConfigMap") if m["metadata"]["name"].endswith("-config")]
    peers = from_mapping(yaml.safe_load(cm["data"]["config.yaml"])).settings(PeersSettings)
    meta = svc["metadata"]
    assert peers.dns_name == f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    assert peers.enabled
    (port,) = svc["spec"]["ports"]
    assert peers.identity.port == port["port"] == DEFAULT_PORT
    for ds in by_kind(objects, "DaemonSet"):
        container = ds["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == DEFAULT_PORT
