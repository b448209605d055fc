"""The chart values the deploy tests render: the defaults, every switch on, and each
choice a user can make that changes what the pods are allowed to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KVM = "devices.kubevirt.io/kvm"


@dataclass(frozen=True)
class Case:
    values: dict[str, Any]
    #: extended resources this case asks for on purpose (none on the default path)
    resources: frozenset[str] = field(default_factory=frozenset)
    #: every read-only host mount is recursively read-only
    recursive: bool = True


EVERY_SWITCH: dict[str, Any] = {
    "roleSplit": {"enabled": True},
    "etcdProbe": {"enabled": True},
    "serviceMonitor": {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus-stack"},
        "tlsConfig": {"insecureSkipVerify": True},
        "relabelings": [{"targetLabel": "cluster", "replacement": "prod-1", "action": "replace"}],
        "metricRelabelings": [
            {"sourceLabels": ["__name__"], "regex": "kubev_disk_.*", "action": "drop"}
        ],
    },
    "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
    "dashboards": {"enabled": True, "annotations": {"grafana_folder": "Kube-V"}},
    "networkPolicy": {
        "enabled": True,
        "from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    },
    "kubeOvnSecureServing": {"enabled": True},
    "webConfig": {"secretName": "kubev-node-exporter-web", "tls": True},
    "extraArgs": ["--log.level=debug"],
    "commonLabels": {"team": "platform"},
    "podAnnotations": {"example.com/owner": "platform"},
}

CASES: dict[str, Case] = {
    "defaults": Case({}),
    "every-switch": Case(EVERY_SWITCH),
    "role-split": Case({"roleSplit": {"enabled": True}}),
    "single-node-etcd": Case({"etcdProbe": {"enabled": True}}),
    "kvm-device-plugin": Case(
        {"kvm": {"access": "devicePlugin", "hostGroupID": 36}}, resources=frozenset({KVM})
    ),
    "kvm-privileged": Case({"kvm": {"access": "privileged", "hostGroupID": 36}}),
    "mtls": Case(
        {
            "webConfig": {"secretName": "web", "tls": True, "requireClientCert": True},
            "serviceMonitor": {"enabled": True},
        }
    ),
    "recursive-enabled": Case({"recursiveReadOnly": "Enabled"}),
    "recursive-disabled": Case({"recursiveReadOnly": "Disabled"}, recursive=False),
    "two-storage-paths": Case(
        {"storage": {"paths": ["/var/lib/kubelet", "/var/lib/longhorn"]}, "kubeletConfig": ""}
    ),
}
