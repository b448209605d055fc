"""kube-state-metrics' and CDI's series as those exporters serve them: the promtool cases of
the cluster rules (alerts/catalog/cluster.py) and the end-to-end test's stand-in for both
exporters (tests/pack/test_fleet.py) are written with these, so the two cannot disagree
about a label's name, order or value.

Where each shape comes from:

- kube-state-metrics, kubernetes/kube-state-metrics internal/store/node.go @c92fe0c5:
  every node series starts with `node` (wrapNodeFunc: descNodeLabelsDefaultLabels);
  kube_node_info's labels are createNodeInfoFamilyGenerator's (kubeproxy_version is always
  "deprecated", internal_ip last); kube_node_status_allocatable and _capacity carry
  `resource` and `unit`, an extended resource's name through SanitizeLabelName
  (internal/store/utils.go: every character outside [a-zA-Z0-9_] becomes "_") with unit
  "integer"; kube_node_labels carries `label_<sanitized key>` for the allowlisted labels a
  node has, and does not exist at all without --metric-labels-allowlist
  (createNodeLabelsGenerator). Stable metrics' HELP starts with "[STABLE]"
  (pkg/metric_generator/generator.go generateHeader).
- CDI, kubevirt/containerized-data-importer pkg/monitoring/metrics/cdi-controller/
  storageprofile.go @c07cdb6f: kubevirt_cdi_storageprofile_info, value 1, labels
  storageclass, provisioner, complete, default, virtdefault, rwx, smartclone, degraded,
  the flags as strconv.FormatBool's "true"/"false" (pkg/controller/
  storageprofile-controller.go createLabels).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.catalog.common import KSM_JOB
from exporter.spec import KUBEVIRT_DEVICE_NAMESPACE

#: the target labels Prometheus adds: kube-prometheus scrapes kube-state-metrics as this job
KSM_TARGET = (("job", KSM_JOB), ("instance", "10.244.0.12:8443"))
#: ... and CDI's controller through its Service cdi-prometheus-metrics
CDI_JOB = "cdi-prometheus-metrics"
CDI_TARGET = (("job", CDI_JOB), ("instance", "10.244.0.31:8443"))

HELP = {
    "kube_node_info": "[STABLE] Information about a cluster node.",
    "kube_node_status_allocatable": "[STABLE] The allocatable for different resources of a "
    "node that are available for scheduling.",
    "kube_node_status_capacity": "[STABLE] The capacity for different resources of a node.",
    "kube_node_labels": "[STABLE] Kubernetes labels converted to Prometheus labels.",
    "kubevirt_cdi_storageprofile_info": "`StorageProfiles` info labels: `storageclass`, "
    "`provisioner`, `complete` indicates if all storage profiles recommended PVC settings are "
    "complete, `default` indicates if it's the Kubernetes default storage class, `virtdefault` "
    "indicates if it's the default virtualization storage class, `rwx` indicates if the "
    "storage class supports `ReadWriteMany`, `smartclone` indicates if it supports snapshot or "
    "CSI based clone, `degraded` indicates it is not optimal for virtualization",
}
#: KubeVirt's device plugins advertise 1000 devices each (kubevirt/kubevirt
#: cmd/virt-handler/virt-handler.go maxDevices)
DEVICES_PER_PLUGIN = 1000


def sanitize(name: str) -> str:
    """A Kubernetes name as kube-state-metrics writes it into a label (SanitizeLabelName)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def device_resource(device: str) -> str:
    """'kvm' -> 'devices_kubevirt_io_kvm', as in kube_node_status_allocatable{resource}."""
    return sanitize(f"{KUBEVIRT_DEVICE_NAMESPACE}/{device}")


@dataclass(frozen=True)
class Series:
    """One series as its exporter serves it, and the target it is scraped from."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    target: tuple[tuple[str, str], ...]

    def exposition(self) -> str:
        """Its line in the text exposition format."""
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels)
        return f"{self.name}{{{labels}}} {self.value:g}"

    def promtool(self) -> str:
        """Its name and labels as Prometheus stores them (target labels added, empty values
        dropped), for a promtool input series."""
        labels = ",".join(f'{k}="{v}"' for k, v in (*self.labels, *self.target) if v != "")
        return f"{self.name}{{{labels}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def node_info(node: str, internal_ip: str) -> Series:
    labels = (
        ("node", node),
        ("kernel_version", "6.1.0-25-amd64"),
        ("os_image", "Debian GNU/Linux 12 (bookworm)"),
        ("container_runtime_version", "containerd://1.7.22"),
        ("kubelet_version", "v1.31.4"),
        ("kubeproxy_version", "deprecated"),
        ("provider_id", ""),
        ("pod_cidr", ""),
        ("system_uuid", f"4c4c4544-0042-{zlib.crc32(node.encode()) % 10000:04d}-8000-b2c04f4d3332"),
        ("internal_ip", internal_ip),
    )
    return Series("kube_node_info", labels, 1, KSM_TARGET)


def _resource(metric: str, node: str, device: str, value: float) -> Series:
    labels = (("node", node), ("resource", device_resource(device)), ("unit", "integer"))
    return Series(metric, labels, value, KSM_TARGET)


def allocatable(node: str, device: str, value: float = DEVICES_PER_PLUGIN) -> Series:
    return _resource("kube_node_status_allocatable", node, device, value)


def capacity(node: str, device: str, value: float = DEVICES_PER_PLUGIN) -> Series:
    return _resource("kube_node_status_capacity", node, device, value)


def node_labels(node: str, **labels: str) -> Series:
    """kube_node_labels of a node with these allowlisted Kubernetes labels (key: the
    sanitized name, e.g. kubevirt_io_schedulable="true")."""
    extra = tuple((f"label_{key}", value) for key, value in sorted(labels.items()))
    return Series("kube_node_labels", (("node", node), *extra), 1, KSM_TARGET)


def storage_profile(
    storageclass: str,
    provisioner: str,
    *,
    complete: bool = True,
    default: bool = False,
    virtdefault: bool = False,
    rwx: bool,
    smartclone: bool = True,
    sno: bool = False,
) -> Series:
    """A StorageProfile's series; `degraded` follows computeMetrics:
    (!isSNO && !isRWX) || !isSmartClone."""
    degraded = (not sno and not rwx) or not smartclone
    flags = {
        "complete": complete,
        "default": default,
        "virtdefault": virtdefault,
        "rwx": rwx,
        "smartclone": smartclone,
        "degraded": degraded,
    }
    labels = (
        ("storageclass", storageclass),
        ("provisioner", provisioner),
        *((key, "true" if value else "false") for key, value in flags.items()),
    )
    return Series("kubevirt_cdi_storageprofile_info", labels, 1, CDI_TARGET)


def exposition(series: Iterable[Series]) -> str:
    """A /metrics body: each family's HELP and TYPE, then its series (all are gauges)."""
    lines: list[str] = []
    seen: set[str] = set()
    ordered = sorted(series, key=lambda s: s.name)
    for s in ordered:
        if s.name not in seen:
            seen.add(s.name)
            lines += [f"# HELP {s.name} {HELP[s.name]}", f"# TYPE {s.name} gauge"]
        lines.append(s.exposition())
    return "\n".join(lines) + "\n"


def promtool_series(series: Iterable[Series], samples: int = 20) -> dict[str, str]:
    """promtool input series: each of these at its value, `samples` times (one a minute)."""
    return {s.promtool(): f"{s.value:g}x{samples}" for s in series}
