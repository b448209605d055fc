"""The Helm chart, rendered and linted by Helm's own engine (helm-python-sdk bundles Helm
v4's Go SDK): with its defaults, with every switch on, with the role split and each choice
that changes what the pods may do. Every rendered object passes the Kubernetes schemas
(strict), the Operator's CRD models, the rules a schema does not see; the rule groups pass
promtool; a misspelt or mistyped value is refused at install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from deploy import chart as chart_files
from deploy import policy
from deploy.render import NAMESPACE, Chart
from exporter import __version__
from exporter.checks.disk import DiskSettings
from exporter.checks.dns import DnsSettings
from exporter.checks.ovn import OvnSettings
from exporter.checks.peers import PeersSettings
from exporter.config import from_mapping
from exporter.web import DEFAULT_PORT
from tests.deploy.validate import by_kind, kubernetes_strict, operator_models, promtool_rules
from tests.deploy.variants import CASES, EVERY_SWITCH, KVM
from tools import docs


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in by_kind(objects, "DaemonSet")]


def exporter_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["containers"] if c["name"] == "exporter"]
    found: dict[str, Any] = container
    return found


def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config")]
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])
    return loaded


# --- Helm's lint and the schema --------------------------------------------------------


def test_lint_passes_with_the_default_values(chart: Chart) -> None:
    result = chart.lint()
    assert result["errors"] == [], result
    # info only ("icon is recommended"): no warning, no error
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"imagee": {"tag": "x"}}, "additional properties 'imagee' not allowed"),
        ({"serviceMonitor": {"enabeld": True}}, "additional properties 'enabeld' not allowed"),
        ({"port": "19100"}, "/port"),
        ({"port": 70000}, "/port"),
        ({"kvm": {"access": "hostdev"}}, "/kvm/access"),
        ({"runAsUser": 0}, "/runAsUser"),
        ({"storage": {"paths": ["var/lib/kubelet"]}}, "/storage/paths/0"),
        # the exporter's own keys, closed as the exporter closes them
        ({"config": {"checks": {"dsk": {}}}}, "additional properties 'dsk' not allowed"),
        ({"config": {"profil": "testing"}}, "additional properties 'profil' not allowed"),
        ({"config": {"checks": {"disk": {"interval": True}}}}, "/config/checks/disk/interval"),
        # a key the chart sets from what it mounts would be silently overridden: refused
        (
            {"config": {"checks": {"disk": {"storage_paths": ["/data"]}}}},
            "additional properties 'storage_paths' not allowed",
        ),
    ],
)
def test_a_typo_or_a_wrong_type_fails_the_install(
    chart: Chart, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(values)
    assert complaint in str(refused.value)
    # helm lint says the same (as data, not an exception)
    assert any(complaint in e for e in chart.lint(values)["errors"])


def test_a_parent_charts_globals_are_accepted(chart: Chart) -> None:
    assert chart.render({"global": {"imageRegistry": "registry.example"}}).objects


def test_the_schema_accepts_every_key_of_the_exporters_own_configuration(chart: Chart) -> None:
    """The README's default configuration (every key the exporter knows), less the keys
    the chart sets, renders, and the exporter reads back exactly those values."""
    full = yaml.safe_load(docs.default_config())
    for path in chart_files.CHART_OWNED:
        holder = full
        for key in path[:-1]:
            holder = holder[key]
        del holder[path[-1]]
    objects = chart.render({"config": full}).objects
    rendered = config_of(objects)
    parsed = from_mapping(rendered)
    assert parsed.settings(DnsSettings).lookup_timeout == (
        from_mapping(full).settings(DnsSettings).lookup_timeout
    )
    for path in chart_files.CHART_OWNED:
        if path[0] == "checks":
            holder = rendered
            for key in path[:-1]:
                holder = holder[key]
            assert path[-1] in holder or path[1] == "ovn"


# --- every case: valid objects, the rules a schema does not see -----------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_object_is_valid(chart: Chart, case: str, tmp_path: Path) -> None:
    objects = chart.render(CASES[case].values).objects
    kubernetes_strict(objects, tmp_path)
    operator_models(objects)
    assert from_mapping(config_of(objects))  # the exporter accepts its config


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_object_keeps_the_rules_a_schema_does_not_see(
    chart: Chart, case: str
) -> None:
    spec = CASES[case]
    objects = chart.render(spec.values).objects
    assert policy.violations(objects, spec.resources, spec.recursive) == []


def test_every_switch_renders_every_kind(chart: Chart, tmp_path: Path) -> None:
    objects = chart.render(EVERY_SWITCH).objects
    kinds = {o["kind"] for o in objects}
    assert kinds == {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "DaemonSet",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ClusterRole",
        "ClusterRoleBinding",
    }
    assert operator_models(objects) == 2
    promtool_rules(by_kind(objects, "PrometheusRule")[0], tmp_path)


def test_the_defaults_install_on_a_cluster_without_the_operator(chart: Chart) -> None:
    objects = chart.render().objects
    assert {o["kind"] for o in objects} == {"ServiceAccount", "ConfigMap", "Service", "DaemonSet"}
    assert all(o["apiVersion"] != "monitoring.coreos.com/v1" for o in objects)


# --- what the values do ----------------------------------------------------------------


def test_the_port_is_written_once(chart: Chart) -> None:
    """The exporter's DEFAULT_PORT is the chart's default; one value moves every place."""
    assert yaml.safe_load(chart_files.VALUES_YAML)["port"] == DEFAULT_PORT
    assert f":{DEFAULT_PORT}" in " ".join(
        exporter_container(pods(chart.render().objects)[0])["args"]
    )
    objects = chart.render({"port": 29100, **EVERY_SWITCH}).objects
    text = yaml.safe_dump_all(objects)
    assert str(DEFAULT_PORT) not in text
    container = exporter_container(pods(objects)[0])
    assert "--web.listen-address=:29100" in container["args"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 29100, "protocol": "TCP"}]
    assert by_kind(objects, "Service")[0]["spec"]["ports"][0]["port"] == 29100
    assert by_kind(objects, "NetworkPolicy")[0]["spec"]["ingress"][0]["ports"][0]["port"] == 29100
    assert container["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_the_image_follows_the_exporters_version(chart: Chart) -> None:
    container = exporter_container(pods(chart.render().objects)[0])
    assert container["image"] == f"{chart_files.IMAGE}:{__version__}"
    digest = "sha256:" + "0" * 64
    pod = pods(chart.render({"image": {"digest": digest}}).objects)[0]
    assert {c["image"] for c in [*pod["initContainers"], *pod["containers"]]} == {
        f"{chart_files.IMAGE}@{digest}"
    }


def test_a_node_agent_tolerates_every_taint_and_asks_for_nothing_a_node_may_lack(
    chart: Chart,
) -> None:
    (pod,) = pods(chart.render().objects)
    assert pod["tolerations"] == [{"operator": "Exists"}]
    container = exporter_container(pod)
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert pod["priorityClassName"] == "system-node-critical"


def test_the_pod_is_not_node_root(chart: Chart) -> None:
    (pod,) = pods(chart.render().objects)
    assert pod["securityContext"]["runAsUser"] == chart_files.RUN_AS != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert "hostPID" not in pod and pod["hostNetwork"] is True
    container = exporter_container(pod)
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        volumes[m["name"]]["hostPath"]["path"]
        for m in container["volumeMounts"]
        if not m.get("readOnly")
    }
    assert writable == {"/var/lib/kubelet/.kubev-node-exporter-pod"}
    host = sorted(v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v)
    assert host == [
        "/dev",
        "/etc/resolv.conf",
        "/lib/modules",
        "/proc",
        "/sys",
        "/var/lib/kubelet/.kubev-node-exporter-pod",
        "/var/lib/kubelet/config.yaml",
    ]
    # the one step as root: CAP_CHOWN alone, on the probe directory alone
    (init,) = pod["initContainers"]
    assert init["command"] == [
        "chown",
        f"{chart_files.RUN_AS}:{chart_files.RUN_AS}",
        "/probe/probe-storage-0",
    ]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert [m["name"] for m in init["volumeMounts"]] == ["probe-storage-0"]


def test_the_probe_directories_are_mounted_where_the_exporter_looks_for_each_path(
    chart: Chart,
) -> None:
    """The exporter writes in <path>/.kubev-node-exporter and sizes <path>: the host's
    <path>/.kubev-node-exporter-pod is mounted at <path> under --path.rootfs, so both land
    on the path's own filesystem, and in the pod's directory only."""
    objects = chart.render(CASES["two-storage-paths"].values).objects
    (pod,) = pods(objects)
    container = exporter_container(pod)
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounted = {
        volumes[m["name"]]: m["mountPath"]
        for m in container["volumeMounts"]
        if m["name"] in volumes
    }
    for path in ("/var/lib/kubelet", "/var/lib/longhorn"):
        assert mounted[f"{path}/.kubev-node-exporter-pod"] == f"/host/root{path}"
    assert "--path.rootfs=/host/root" in container["args"]
    config = from_mapping(config_of(objects))
    assert config.settings(DiskSettings).storage_paths == ("/var/lib/kubelet", "/var/lib/longhorn")
    # kubeletConfig "" mounts nothing and tells the DNS check so
    assert "/var/lib/kubelet/config.yaml" not in volumes
    assert config.settings(DnsSettings).kubelet_config is None


def test_etcds_data_directory_is_probed_only_on_the_roles_that_run_etcd(chart: Chart) -> None:
    assert config_of(chart.render().objects)["checks"]["disk"]["etcd_data_dir"] is None
    objects = chart.render(EVERY_SWITCH).objects
    assert config_of(objects)["checks"]["disk"]["etcd_data_dir"] == "/var/lib/etcd"
    etcd_dir = "/var/lib/etcd/.kubev-node-exporter-pod"
    mounted = {}
    for ds in by_kind(objects, "DaemonSet"):
        pod = ds["spec"]["template"]["spec"]
        paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        mounted[ds["metadata"]["labels"]["kubev.io/role"]] = etcd_dir in paths
    assert mounted == {"control-plane": True, "worker": False}


def test_the_role_split_covers_every_node_once(chart: Chart) -> None:
    objects = chart.render({"roleSplit": {"enabled": True}}).objects
    roles = {}
    for ds in by_kind(objects, "DaemonSet"):
        pod = ds["spec"]["template"]["spec"]
        (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
        (expression,) = term["matchExpressions"]
        args = exporter_container(pod)["args"]
        roles[ds["metadata"]["name"]] = (
            next(a for a in args if a.startswith("--role=")),
            expression["key"],
            expression["operator"],
        )
    assert roles == {
        "kubev-node-exporter-control-plane": (
            "--role=control-plane",
            "node-role.kubernetes.io/control-plane",
            "Exists",
        ),
        "kubev-node-exporter-worker": (
            "--role=worker",
            "node-role.kubernetes.io/control-plane",
            "DoesNotExist",
        ),
    }


@pytest.mark.parametrize(
    ("web", "liveness"),
    [
        ({}, {"httpGet": {"path": "/-/healthy", "port": "metrics", "scheme": "HTTP"}}),
        (
            {"secretName": "web", "tls": True},
            {"httpGet": {"path": "/-/healthy", "port": "metrics", "scheme": "HTTPS"}},
        ),
        (
            {"secretName": "web", "tls": True, "requireClientCert": True},
            {"tcpSocket": {"port": "metrics"}},
        ),
    ],
)
def test_the_probes_follow_the_web_config(
    chart: Chart, web: dict[str, Any], liveness: dict[str, Any]
) -> None:
    """Basic auth leaves the health paths open (the web hardening's contract), TLS needs
    https (kubelet verifies no certificate), a required client certificate leaves kubelet
    only the port."""
    objects = chart.render({"webConfig": web, "serviceMonitor": {"enabled": True}}).objects
    container = exporter_container(pods(objects)[0])
    probe = {k: v for k, v in container["livenessProbe"].items() if k in ("httpGet", "tcpSocket")}
    assert probe == liveness
    scheme = by_kind(objects, "ServiceMonitor")[0]["spec"]["endpoints"][0]["scheme"]
    assert scheme == ("https" if web.get("tls") else "http")
    if web:
        assert "--web.config.file=/etc/kubev-node-exporter-web/web-config.yml" in container["args"]


@pytest.mark.parametrize("access", ["hostDev", "devicePlugin", "privileged"])
def test_kvm_access(chart: Chart, access: str) -> None:
    (pod,) = pods(chart.render({"kvm": {"access": access, "hostGroupID": 36}}).objects)
    container = exporter_container(pod)
    sc = container["securityContext"]
    assert "--path.dev=/host/dev" in container["args"]
    assert (KVM in container["resources"]["limits"]) is (access == "devicePlugin")
    assert sc.get("privileged", False) is (access == "privileged")
    # a privileged container may not also refuse escalation: the API server says so
    assert ("allowPrivilegeEscalation" in sc) is (access != "privileged")
    groups = pod["securityContext"].get("supplementalGroups")
    assert groups == (None if access == "hostDev" else [36])


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_path_flag_points_at_the_hosts_own_directory(chart: Chart, case: str) -> None:
    """The exporter reads the node's /proc, /sys and /dev where the pod mounts them (the
    devices and kvm checks stat and open <--path.dev>/kvm, /net/tun, /vhost-net: the
    host's /dev, not the container's own, which has none of them)."""
    for pod in pods(chart.render(CASES[case].values).objects):
        container = exporter_container(pod)
        flags = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)
        volumes = {v["name"]: v for v in pod["volumes"]}
        host_at = {
            m["mountPath"]: volumes[m["name"]]["hostPath"]["path"]
            for m in container["volumeMounts"]
            if "hostPath" in volumes[m["name"]]
        }
        assert host_at[flags["path.procfs"]] == "/proc"
        assert host_at[flags["path.sysfs"]] == "/sys"
        assert host_at[flags["path.dev"]] == "/dev"
        # the host's / is not mounted: every other host path is a single path below it
        others = set(host_at) - {flags["path.procfs"], flags["path.sysfs"], flags["path.dev"]}
        assert others and all(p.startswith(flags["path.rootfs"] + "/") for p in others)


def test_the_peers_check_finds_the_nodes_through_the_headless_service(chart: Chart) -> None:
    """By default: checks.peers.dns_name is the headless Service's name, whose records
    include not-ready pods, and the identity requests go to the chart's one port."""
    objects = chart.render().objects
    (svc,) = by_kind(objects, "Service")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    peers = from_mapping(config_of(objects)).settings(PeersSettings)
    assert peers.enabled  # a configured DNS name switches the check on
    assert peers.dns_name == f"{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert peers.identity.port == DEFAULT_PORT == svc["spec"]["ports"][0]["port"]
    assert peers.identity.scheme == "http"

    # another release, namespace, cluster domain and port: the name and port follow
    values = {"port": 29100, "clusterDomain": "k8s.example", "webConfig": {"secretName": "w"}}
    objects = chart.render(values, name="kne", namespace="monitoring").objects
    (svc,) = by_kind(objects, "Service")
    peers = from_mapping(config_of(objects)).settings(PeersSettings)
    name = svc["metadata"]["name"]
    assert name == "kne-kubev-node-exporter"
    assert peers.dns_name == f"{name}.monitoring.svc.k8s.example"
    assert peers.identity.port == 29100 == svc["spec"]["ports"][0]["port"]
    # the exporters serve TLS: so do the peers' requests
    tls = {"webConfig": {"secretName": "w", "tls": True}}
    peers = from_mapping(config_of(chart.render(tls).objects)).settings(PeersSettings)
    assert peers.identity.scheme == "https"


def test_the_peers_configuration_is_the_users_where_given(chart: Chart) -> None:
    given = {"dns_name": "peers.example", "enabled": False, "identity": {"refresh": "10m"}}
    objects = chart.render({"config": {"checks": {"peers": given}}}).objects
    peers = from_mapping(config_of(objects)).settings(PeersSettings)
    assert peers.dns_name == "peers.example"
    assert not peers.enabled
    assert peers.identity.refresh == 600 and peers.identity.port == DEFAULT_PORT
    with pytest.raises(helm.HelmValuesError) as refused:  # the port is the chart's
        chart.render({"config": {"checks": {"peers": {"identity": {"port": 1}}}}})
    assert "additional properties 'port' not allowed" in str(refused.value)
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render({"clusterDomain": "cluster.local."})
    assert "/clusterDomain" in str(refused.value)


def test_kube_ovn_secure_serving(chart: Chart) -> None:
    objects = chart.render({"kubeOvnSecureServing": {"enabled": True}}).objects
    (role,) = by_kind(objects, "ClusterRole")
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    (binding,) = by_kind(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubev-node-exporter", "namespace": NAMESPACE}
    ]
    (pod,) = pods(objects)
    assert pod["automountServiceAccountToken"] is False  # only the projected token
    (token,) = [v for v in pod["volumes"] if "projected" in v]
    assert token["projected"]["sources"] == [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    ]
    ovn = from_mapping(config_of(objects)).settings(OvnSettings)
    assert ovn.scheme == "https"
    assert ovn.bearer_token_file == "/var/run/secrets/kube-ovn-metrics/token"
    mount = [m for m in exporter_container(pod)["volumeMounts"] if m["name"] == token["name"]]
    assert mount == [
        {"name": token["name"], "mountPath": "/var/run/secrets/kube-ovn-metrics", "readOnly": True}
    ]


def test_the_servicemonitor_finds_the_pods_with_the_job_the_rules_expect(chart: Chart) -> None:
    objects = chart.render(EVERY_SWITCH).objects
    (svc,) = by_kind(objects, "Service")
    (sm,) = by_kind(objects, "ServiceMonitor")
    assert svc["spec"]["clusterIP"] == "None"  # headless: also the peers' DNS name
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "kubev-node-exporter"
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["relabelings"][0]["targetLabel"] == "instance"
    assert endpoint["relabelings"][1] == EVERY_SWITCH["serviceMonitor"]["relabelings"][0]
    assert endpoint["metricRelabelings"] == EVERY_SWITCH["serviceMonitor"]["metricRelabelings"]
    (rule,) = by_kind(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboards_carry_the_generated_json(chart: Chart) -> None:
    from dashboards.generate import outputs

    maps = by_kind(chart.render(EVERY_SWITCH).objects, "ConfigMap")
    dashboards = [m for m in maps if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert {k: v for m in dashboards for k, v in m["data"].items()} == {
        p.name: t for p, t in outputs().items()
    }
    assert all(m["metadata"]["annotations"] == {"grafana_folder": "Kube-V"} for m in dashboards)


def test_notes_tell_the_user_what_to_do_next(chart: Chart) -> None:
    notes = chart.render().notes
    assert "pod-security.kubernetes.io/enforce=privileged" in notes
    assert "serviceMonitor.enabled" in notes
    assert f"port-forward pod/<pod> {DEFAULT_PORT}" in notes
    assert f"open {DEFAULT_PORT}/TCP between the nodes" in notes
    assert "kubev-node-exporter.kubev-monitoring.svc.cluster.local" in notes
    off = chart.render({"config": {"checks": {"peers": {"enabled": False}}}}).notes
    assert "between the nodes" not in off
    # kube-prometheus-stack ignores a ServiceMonitor without its release label
    unlabelled = chart.render({"serviceMonitor": {"enabled": True}}).notes
    assert "helm-charts#1631" in unlabelled and "additionalLabels.release" in unlabelled
    labelled = chart.render(EVERY_SWITCH).notes
    assert "helm-charts#1631" not in labelled
    assert "https://localhost" in labelled
    plugin = chart.render({"kvm": {"access": "devicePlugin"}}).notes
    assert "Pending" in plugin and "kvm.hostGroupID" in plugin
