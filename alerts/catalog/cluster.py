"""The cluster's requirements (exporter/spec.py CLUSTER_REQUIREMENTS), judged from what the
cluster already exports: kube-state-metrics (nodes, their allocatable KubeVirt devices and
labels) and CDI (one series per StorageProfile), joined with the exporters' own
kubev_node_info. A user with kube-prometheus gets them without giving the exporter any
Kubernetes API access.

Recording rules give the verdicts (`kubev:cluster_requirement_met{requirement}`, and per node
`kubev:node_cluster_requirement_met{node,requirement}`, with the observed values beside them)
for the `fleet` command and the dashboards; the alerts compute what they need themselves from
the same expressions (built once, below), so none waits on a recording rule.

These are other exporters' series: they are selected by RuleSettings.ksm_selector and
.cdi_selector (placeholders KSM and CDI), never by the exporter's job. The shapes the
promtool cases feed are kube-state-metrics' and CDI's own (alerts/catalog/cluster_series.py
cites the source lines).

One cluster per rule evaluation, as kube-prometheus runs: the counts and `on()` joins here
aggregate over every series the selectors match.
"""

from __future__ import annotations

from alerts.catalog.cluster_series import (
    DEVICES_PER_PLUGIN,
    Series,
    allocatable,
    capacity,
    device_resource,
    node_info,
    node_labels,
    promtool_series,
    sanitize,
    storage_profile,
)
from alerts.catalog.common import (
    CDI,
    CDI_SELECTOR,
    INSTANCE,
    JOB,
    KSM,
    KSM_JOB,
    SELECTOR,
    Alert,
    Case,
    Impact,
    RecordingCase,
    RecordingRule,
    Rule,
)
from exporter import recorded
from exporter.report.fleet import (
    EXPORTER_MISSING_ALERT,
    EXPORTER_MISSING_HINT,
    METRICS_ABSENT_ALERT,
)
from exporter.spec import (
    CLUSTER_REQUIREMENTS,
    KUBEVIRT_DEVICE_NAMESPACE,
    KUBEVIRT_DEVICES,
    KUBEVIRT_SCHEDULABLE_LABEL,
    ClusterReq,
)

SHARED = CLUSTER_REQUIREMENTS[ClusterReq.SHARED_STORAGE]
KVM_NODES_REQ = CLUSTER_REQUIREMENTS[ClusterReq.KVM_NODES]
DEVICES_REQ = CLUSTER_REQUIREMENTS[ClusterReq.KUBEVIRT_DEVICES]
SCHEDULABLE_REQ = CLUSTER_REQUIREMENTS[ClusterReq.KUBEVIRT_SCHEDULABLE]
#: nodes with KVM live migration needs (spec.py MIN_KVM_NODES), as the rules write it
MIN_KVM_NODES = f"{KVM_NODES_REQ.threshold:g}"

# --- the expressions ------------------------------------------------------------------------

PROFILE = "kubevirt_cdi_storageprofile_info"
#: every label CDI gives the series (storageprofile.go): kept, the scrape's own dropped, so a
#: second job scraping the same CDI adds no second series
PROFILE_LABELS = (
    "storageclass, provisioner, complete, default, virtdefault, rwx, smartclone, degraded"
)
KVM_RESOURCE = device_resource("kvm")
DEVICE_RESOURCES = "|".join(device_resource(device) for device in KUBEVIRT_DEVICES)
#: kube_node_labels' label for kubevirt.io/schedulable (kube-state-metrics
#: internal/store/utils.go labelName: "label_" + the sanitized key)
SCHEDULABLE = "label_" + sanitize(KUBEVIRT_SCHEDULABLE_LABEL)
KVM_DEVICE = f"{KUBEVIRT_DEVICE_NAMESPACE}/kvm"


def _profiles(match: str) -> str:
    return f"max by ({PROFILE_LABELS}) ({PROFILE}{{{CDI},{match}}})"


def vm_storage_classes(match: str = "") -> str:
    """The StorageProfile of the class a VM disk gets when it names none: CDI's
    virtualization default where one is annotated, else the Kubernetes default
    (kubevirt/containerized-data-importer pkg/controller/common/util.go
    getFallbackStorageClass). `match` narrows the result, never the choice: a virt default
    hides the Kubernetes default whatever its labels."""
    narrow = f",{match}" if match else ""
    virt_default, default = 'virtdefault="true"', 'default="true"'
    return (
        f"({_profiles(virt_default + narrow)} or ({_profiles(default + narrow)} "
        f"unless on() {PROFILE}{{{CDI},{virt_default}}}))"
    )


#: 1 when the VMs' class offers ReadWriteMany (every such class, should two be annotated
#: default), 0 when not or when no class is default; absent without CDI's series
_RWX, _NOT_RWX = vm_storage_classes('rwx="true"'), vm_storage_classes('rwx!="true"')
SHARED_STORAGE_OBSERVED = f"min({_RWX} or ({_NOT_RWX} * 0)) or on() (0 * count({PROFILE}{{{CDI}}}))"
#: the cluster's nodes, once each (kube-state-metrics may run as an HA pair)
KSM_NODES = f"max by (node) (kube_node_info{{{KSM}}})"
NODE_COUNT = f"count({KSM_NODES})"
#: nodes with devices.kubevirt.io/kvm allocatable, as KubeVirt counts them
#: (pkg/monitoring/rules/recordingrules/nodes.go cluster:kubevirt_nodes_with_kvm:count);
#: 0 rather than absent while kube-state-metrics reports nodes
KVM_NODES = (
    f'count(max by (node) (kube_node_status_allocatable{{{KSM},resource="{KVM_RESOURCE}"}}) > 0) '
    f"or on() (0 * {NODE_COUNT})"
)
#: a cluster of one node has nowhere to migrate to: there the requirement does not apply
#: (LowKVMNodesCount asks cluster:kubevirt_nodes_allocatable:count > 1 the same way; KubeVirt
#: also leaves out OpenShift's arbiter nodes, which a Kube-V cluster does not have)
MORE_THAN_ONE_NODE = f"({NODE_COUNT} > 1)"
#: per node: how many of KubeVirt's three devices it has allocatable (0 for a node without
#: any, e.g. where virt-handler does not run)
DEVICES_OBSERVED = (
    f"count by (node) (max by (node, resource) (kube_node_status_allocatable{{{KSM},"
    f'resource=~"{DEVICE_RESOURCES}"}}) > 0) or on(node) (0 * {KSM_NODES})'
)
#: per node: 1 where kubevirt.io/schedulable is "true", 0 where it is anything else or
#: missing; absent altogether while no node carries the label (kube-state-metrics' label
#: allowlist lacks it, or KubeVirt runs nowhere): unknown is not "false"
SCHEDULABLE_OBSERVED = (
    f'(max by (node) (kube_node_labels{{{KSM},{SCHEDULABLE}="true"}}) '
    f"or on(node) (0 * max by (node) (kube_node_labels{{{KSM}}}))) "
    f'and on() (count(kube_node_labels{{{KSM},{SCHEDULABLE}!=""}}) > 0)'
)
#: per node of the cluster: 1 when a kubev-node-exporter reports it, 0 when none does. The
#: exporter's node label is the DaemonSet's spec.nodeName ($NODE_NAME), kube-state-metrics'
#: is the Node's name: the same string, from two jobs, so the join is on(node) alone.
EXPORTER_REPORTING = (
    f"({KSM_NODES} and on(node) kubev_node_info{{{SELECTOR}}}) or on(node) (0 * {KSM_NODES})"
)
NODES_WITHOUT_EXPORTER = f"{KSM_NODES} unless on(node) kubev_node_info{{{SELECTOR}}}"


def _met(observed: str, threshold: float) -> str:
    return f"({observed}) >= bool {threshold:g}"


# --- promtool series ------------------------------------------------------------------------

KSM_LABELS = f'job="{KSM_JOB}"'
CEPH = ("ceph-rbd", "rook-ceph.rbd.csi.ceph.com")
LOCAL = ("local-path", "rancher.io/local-path")
NFS = ("nfs-csi", "nfs.csi.k8s.io")


def _nodes(*nodes: str) -> tuple[Series, ...]:
    return tuple(node_info(node, f"10.0.0.{11 + i}") for i, node in enumerate(nodes))


def _devices(node: str, kvm: float = DEVICES_PER_PLUGIN) -> tuple[Series, ...]:
    """A node where virt-handler runs: its three device plugins, kvm's allocatable as given
    (0: /dev/kvm missing, the plugin Unhealthy; capacity still counts it)."""
    found = []
    for device in KUBEVIRT_DEVICES:
        value = kvm if device == "kvm" else DEVICES_PER_PLUGIN
        found += [allocatable(node, device, value), capacity(node, device)]
    return tuple(found)


def _series(*series: Series) -> dict[str, str]:
    return promtool_series(series)


#: the VMs' class is Ceph RBD (the virt default, RWX in Block mode: CDI
#: pkg/storagecapabilities/storagecapabilities.go createRbdCapabilities {rwx, block}); the
#: Kubernetes default is local-path, RWO only
VIRT_DEFAULT_RWX = (
    storage_profile(*CEPH, virtdefault=True, rwx=True),
    storage_profile(*LOCAL, default=True, rwx=False),
)
#: only a Kubernetes default, local-path, RWO
DEFAULT_RWO = (storage_profile(*LOCAL, default=True, rwx=False), storage_profile(*NFS, rwx=True))
#: no default class at all
NO_DEFAULT = (storage_profile(*LOCAL, rwx=False), storage_profile(*NFS, rwx=True))
#: the VMs' class is a driver CDI knows nothing of: no claimPropertySets, so incomplete,
#: and rwx "false" whatever it can do
UNKNOWN_DRIVER = (
    storage_profile(
        "vendor-block", "csi.vendor.example", virtdefault=True, complete=False, rwx=False
    ),
)

#: three nodes; a and b offer KVM, c has virt-handler but no /dev/kvm, d runs no virt-handler
THREE_WITH_VIRT_HANDLER = (
    *_nodes("node-a", "node-b", "node-c", "node-d"),
    *_devices("node-a"),
    *_devices("node-b"),
    *_devices("node-c", kvm=0),
    node_labels("node-a", kubevirt_io_schedulable="true"),
    node_labels("node-b", kubevirt_io_schedulable="false"),
    node_labels("node-c", kubevirt_io_schedulable="true"),
    node_labels("node-d"),
)
ONE_KVM_NODE = (*_nodes("node-a", "node-b"), *_devices("node-a"), *_devices("node-b", kvm=0))
SINGLE_NODE = (*_nodes("node-a"), *_devices("node-a"))


def _exporter_info(node: str, instance: str) -> str:
    return (
        f'kubev_node_info{{instance="{instance}",job="{JOB}",node="{node}",role="worker",'
        'profile="production"}'
    )


def _profile_sample(series: Series) -> str:
    """The recorded kubev:vm_storageclass:info sample of a StorageProfile series."""
    labels = ",".join(f'{k}="{v}"' for k, v in series.labels)
    return f"{recorded.VM_STORAGE_CLASS}{{{labels}}}"


# --- the recording rules ----------------------------------------------------------------------


def _requirement(
    record: str, requirement: ClusterReq, expr: str, *cases: RecordingCase
) -> RecordingRule:
    return RecordingRule(record, expr, (("requirement", requirement.value),), cases)


_SHARED = ClusterReq.SHARED_STORAGE
_KVM = ClusterReq.KVM_NODES
_DEVICES = ClusterReq.KUBEVIRT_DEVICES
_SCHED = ClusterReq.KUBEVIRT_SCHEDULABLE
_CLUSTER_MET = recorded.CLUSTER_MET
_CLUSTER_OBSERVED = recorded.CLUSTER_OBSERVED
_NODE_MET = recorded.NODE_MET
_NODE_OBSERVED = recorded.NODE_OBSERVED


def _sample(record: str, value: float, **labels: str) -> dict[str, float]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {f"{record}{{{text}}}": value}


RECORDING_RULES: tuple[RecordingRule, ...] = (
    RecordingRule(
        recorded.VM_STORAGE_CLASS,
        vm_storage_classes(),
        cases=(
            RecordingCase(
                _series(*VIRT_DEFAULT_RWX),
                "5m",
                {_profile_sample(VIRT_DEFAULT_RWX[0]): 1},
            ),
            RecordingCase(_series(*DEFAULT_RWO), "5m", {_profile_sample(DEFAULT_RWO[0]): 1}),
            RecordingCase(_series(*NO_DEFAULT), "5m", {}),
        ),
    ),
    _requirement(
        _CLUSTER_OBSERVED,
        _SHARED,
        SHARED_STORAGE_OBSERVED,
        RecordingCase(
            _series(*VIRT_DEFAULT_RWX), "5m", _sample(_CLUSTER_OBSERVED, 1, requirement=_SHARED)
        ),
        RecordingCase(
            _series(*DEFAULT_RWO), "5m", _sample(_CLUSTER_OBSERVED, 0, requirement=_SHARED)
        ),
        RecordingCase(
            _series(*NO_DEFAULT), "5m", _sample(_CLUSTER_OBSERVED, 0, requirement=_SHARED)
        ),
        # no CDI: not known, so not recorded
        RecordingCase(_series(*SINGLE_NODE), "5m", {}),
    ),
    _requirement(
        _CLUSTER_MET,
        _SHARED,
        _met(SHARED_STORAGE_OBSERVED, SHARED.threshold),
        RecordingCase(
            _series(*VIRT_DEFAULT_RWX), "5m", _sample(_CLUSTER_MET, 1, requirement=_SHARED)
        ),
        RecordingCase(
            _series(*UNKNOWN_DRIVER), "5m", _sample(_CLUSTER_MET, 0, requirement=_SHARED)
        ),
        RecordingCase(_series(*NO_DEFAULT), "5m", _sample(_CLUSTER_MET, 0, requirement=_SHARED)),
        RecordingCase(_series(*SINGLE_NODE), "5m", {}),
    ),
    _requirement(
        _CLUSTER_OBSERVED,
        _KVM,
        KVM_NODES,
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER), "5m", _sample(_CLUSTER_OBSERVED, 2, requirement=_KVM)
        ),
        # kube-state-metrics without any KubeVirt device: 0, not absent
        RecordingCase(
            _series(*_nodes("node-a", "node-b")),
            "5m",
            _sample(_CLUSTER_OBSERVED, 0, requirement=_KVM),
        ),
        RecordingCase(_series(*VIRT_DEFAULT_RWX), "5m", {}),
    ),
    _requirement(
        _CLUSTER_MET,
        _KVM,
        f"(({KVM_NODES}) >= bool {MIN_KVM_NODES}) and on() {MORE_THAN_ONE_NODE}",
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER), "5m", _sample(_CLUSTER_MET, 1, requirement=_KVM)
        ),
        RecordingCase(_series(*ONE_KVM_NODE), "5m", _sample(_CLUSTER_MET, 0, requirement=_KVM)),
        # one node: not applicable, so no verdict (the observed count still says 1)
        RecordingCase(_series(*SINGLE_NODE), "5m", {}),
    ),
    _requirement(
        _NODE_OBSERVED,
        _DEVICES,
        DEVICES_OBSERVED,
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER),
            "5m",
            {
                **_sample(_NODE_OBSERVED, 3, node="node-a", requirement=_DEVICES),
                **_sample(_NODE_OBSERVED, 3, node="node-b", requirement=_DEVICES),
                **_sample(_NODE_OBSERVED, 2, node="node-c", requirement=_DEVICES),
                **_sample(_NODE_OBSERVED, 0, node="node-d", requirement=_DEVICES),
            },
        ),
    ),
    _requirement(
        _NODE_MET,
        _DEVICES,
        _met(DEVICES_OBSERVED, DEVICES_REQ.threshold),
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER),
            "5m",
            {
                **_sample(_NODE_MET, 1, node="node-a", requirement=_DEVICES),
                **_sample(_NODE_MET, 1, node="node-b", requirement=_DEVICES),
                **_sample(_NODE_MET, 0, node="node-c", requirement=_DEVICES),
                **_sample(_NODE_MET, 0, node="node-d", requirement=_DEVICES),
            },
        ),
    ),
    _requirement(
        _NODE_OBSERVED,
        _SCHED,
        SCHEDULABLE_OBSERVED,
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER),
            "5m",
            {
                **_sample(_NODE_OBSERVED, 1, node="node-a", requirement=_SCHED),
                **_sample(_NODE_OBSERVED, 0, node="node-b", requirement=_SCHED),
                **_sample(_NODE_OBSERVED, 1, node="node-c", requirement=_SCHED),
                **_sample(_NODE_OBSERVED, 0, node="node-d", requirement=_SCHED),
            },
        ),
        # the allowlist names other labels only: no node has the label, so unknown
        RecordingCase(
            _series(*_nodes("node-a"), node_labels("node-a", topology_kubernetes_io_zone="z1")),
            "5m",
            {},
        ),
    ),
    _requirement(
        _NODE_MET,
        _SCHED,
        _met(SCHEDULABLE_OBSERVED, SCHEDULABLE_REQ.threshold),
        RecordingCase(
            _series(*THREE_WITH_VIRT_HANDLER),
            "5m",
            {
                **_sample(_NODE_MET, 1, node="node-a", requirement=_SCHED),
                **_sample(_NODE_MET, 0, node="node-b", requirement=_SCHED),
                **_sample(_NODE_MET, 1, node="node-c", requirement=_SCHED),
                **_sample(_NODE_MET, 0, node="node-d", requirement=_SCHED),
            },
        ),
        # kube-state-metrics without --metric-labels-allowlist: no kube_node_labels at all
        RecordingCase(_series(*SINGLE_NODE), "5m", {}),
    ),
    RecordingRule(
        recorded.EXPORTER_REPORTING,
        EXPORTER_REPORTING,
        cases=(
            RecordingCase(
                {
                    **_series(*_nodes("node-a", "node-b")),
                    _exporter_info("node-a", INSTANCE): "1x20",
                },
                "5m",
                {
                    **_sample(recorded.EXPORTER_REPORTING, 1, node="node-a"),
                    **_sample(recorded.EXPORTER_REPORTING, 0, node="node-b"),
                },
            ),
        ),
    ),
)


# --- the alerts -----------------------------------------------------------------------------


def _class_fired(series: Series, severity: str, description: str, **extra: str) -> dict[str, str]:
    return {
        **dict(series.labels),
        **extra,
        "severity": severity,
        "description": description,
    }


_NO_RWX_TEXT = (
    "StorageClass local-path (provisioner rancher.io/local-path), the class a VM disk gets "
    "when it names none, offers no ReadWriteMany. VMs on it cannot live-migrate."
)

ALERTS: tuple[Alert, ...] = (
    Alert(
        name=SHARED.alert,
        rules=(
            Rule(
                expr=vm_storage_classes('rwx="false"'),
                impact=Impact.DEGRADES,
                for_="10m",
                summary="The VMs' StorageClass offers no ReadWriteMany (no live migration)",
                description="StorageClass {{ $labels.storageclass }} (provisioner "
                "{{ $labels.provisioner }}), the class a VM disk gets when it names none, offers "
                'no ReadWriteMany{{ if eq $labels.complete "false" }} as far as CDI knows: its '
                "StorageProfile is incomplete{{ end }}. VMs on it cannot live-migrate.",
                labels=(("reason", "no_rwx"),),
            ),
            Rule(
                expr=f"count(max by (storageclass) ({PROFILE}{{{CDI}}})) unless on() "
                f'({PROFILE}{{{CDI},virtdefault="true"}} or {PROFILE}{{{CDI},default="true"}})',
                impact=Impact.DEGRADES,
                for_="10m",
                summary="No default StorageClass for VM disks",
                description="CDI reports {{ $value }} StorageClasses, none of them the default "
                "for VMs (storageclass.kubevirt.io/is-default-virt-class) or for the cluster "
                "(storageclass.kubernetes.io/is-default-class): which storage VMs get, and so "
                "whether they can live-migrate, cannot be told.",
                labels=(("reason", "no_default_class"),),
            ),
        ),
        meaning="The StorageClass a VM disk gets when it names none (CDI's virtualization "
        "default, else the Kubernetes default) does not offer ReadWriteMany, as CDI's "
        f"`{PROFILE}{{rwx}}` reports it; or no StorageClass is default at all. The spec asks "
        "for a shared storage backend with ReadWriteMany or Block volumes, "
        "'crucial for HA/Live Migration'.",
        impact="Live migration of VMs on that storage is refused: virt-handler says 'live "
        "migration requires that all PVCs must be shared (using ReadWriteMany access mode)' "
        "(kubevirt/kubevirt pkg/virt-handler/vm.go). Node drains and upgrades then stop or "
        "shut those VMs down instead of moving them. For a PVC, Block mode alone is not enough: "
        "KubeVirt asks for ReadWriteMany, in Filesystem or Block mode.",
        diagnosis=(
            "The classes and their flags: `kubevirt_cdi_storageprofile_info` (or the recorded "
            "`kubev:vm_storageclass:info`, the one VMs use).",
            "`kubectl get storageclass` (which is `(default)`), `kubectl get sc -o "
            "custom-columns=NAME:.metadata.name,VIRT:.metadata.annotations.storageclass\\.kubevirt\\.io/is-default-virt-class`.",
            "The access and volume modes CDI will use: `kubectl get storageprofile CLASS -o "
            "jsonpath='{.status.claimPropertySets}'`. The metric has no volumeMode label: "
            "whether ReadWriteMany comes in Block mode only (Ceph RBD does) shows only here.",
            "VMs that cannot move: `kubectl get vmi -A -o custom-columns=NAME:.metadata.name,"
            "MIGRATABLE:.status.conditions[?(@.type=='LiveMigratable')].status`.",
        ),
        mitigation=(
            SHARED.hint,
            "If the backend offers ReadWriteMany but the StorageProfile does not say so (an "
            "incomplete profile): set `spec.claimPropertySets` on the StorageProfile, e.g. "
            "`[{accessModes: [ReadWriteMany], volumeMode: Block}]`.",
            "Existing VMs keep their disks: move them to the new class (clone or export and "
            "import) before relying on live migration.",
        ),
        cases=(
            Case(
                _series(*DEFAULT_RWO),
                "15m",
                (_class_fired(DEFAULT_RWO[0], "warning", _NO_RWX_TEXT, reason="no_rwx"),),
            ),
            Case(
                _series(*UNKNOWN_DRIVER),
                "15m",
                (
                    _class_fired(
                        UNKNOWN_DRIVER[0],
                        "warning",
                        "StorageClass vendor-block (provisioner csi.vendor.example), the class a "
                        "VM disk gets when it names none, offers no ReadWriteMany as far as CDI "
                        "knows: its StorageProfile is incomplete. VMs on it cannot live-migrate.",
                        reason="no_rwx",
                    ),
                ),
            ),
            Case(
                _series(*NO_DEFAULT),
                "15m",
                (
                    {
                        "reason": "no_default_class",
                        "severity": "warning",
                        "description": "CDI reports 2 StorageClasses, none of them the default "
                        "for VMs (storageclass.kubevirt.io/is-default-virt-class) or for the "
                        "cluster (storageclass.kubernetes.io/is-default-class): which storage "
                        "VMs get, and so whether they can live-migrate, cannot be told.",
                    },
                ),
            ),
            # the Kubernetes default is RWO, but VMs get the virt default, which is RWX
            Case(_series(*VIRT_DEFAULT_RWX), "15m"),
        ),
    ),
    Alert(
        name="KubevVMStorageProfileIncomplete",
        rules=(
            Rule(
                expr=vm_storage_classes('complete="false"'),
                impact=Impact.DEGRADES,
                for_="10m",
                summary="CDI does not know the access and volume modes of the VMs' StorageClass",
                description="StorageClass {{ $labels.storageclass }} (provisioner "
                "{{ $labels.provisioner }}), the class a VM disk gets when it names none, has "
                "an incomplete StorageProfile: CDI cannot tell its access modes or volume "
                "mode, so whether it is shared cannot be judged.",
            ),
        ),
        meaning="CDI's StorageProfile for the VMs' StorageClass lacks an access mode or a "
        'volumeMode in a claimPropertySet, or has none (`complete="false"`: kubevirt/containerized-data-importer '
        "pkg/controller/storageprofile-controller.go isIncomplete). CDI fills them in for "
        "the provisioners it knows (pkg/storagecapabilities); a driver it does not know "
        "gets none.",
        impact="A DataVolume that gives no access mode is not provisioned ('accessMode/"
        "volumeMode cannot be inferred by CDI', CDIStorageProfilesIncomplete), and CDI "
        "reports the class without ReadWriteMany whatever the driver can do, so the shared "
        "storage requirement reads failed.",
        diagnosis=(
            "`kubectl get storageprofile CLASS -o yaml`: `status.claimPropertySets` empty or a "
            "set without `volumeMode`.",
            "The CSI driver's documentation: which access modes it offers in Filesystem and "
            "in Block mode.",
        ),
        mitigation=(
            "Set `spec.claimPropertySets` on the StorageProfile to what the driver offers, "
            "ReadWriteMany first where it can (e.g. `[{accessModes: [ReadWriteMany], "
            "volumeMode: Block}]`).",
        ),
        cases=(
            Case(
                _series(*UNKNOWN_DRIVER),
                "15m",
                (
                    _class_fired(
                        UNKNOWN_DRIVER[0],
                        "warning",
                        "StorageClass vendor-block (provisioner csi.vendor.example), the class "
                        "a VM disk gets when it names none, has an incomplete StorageProfile: CDI "
                        "cannot tell its access modes or volume mode, so whether it is shared "
                        "cannot be judged.",
                    ),
                ),
            ),
            # an incomplete profile of a class VMs do not get by default stays quiet
            Case(
                _series(
                    *VIRT_DEFAULT_RWX,
                    storage_profile(
                        "vendor-block", "csi.vendor.example", complete=False, rwx=False
                    ),
                ),
                "15m",
            ),
        ),
    ),
    Alert(
        name=KVM_NODES_REQ.alert,
        rules=(
            Rule(
                expr=f"({KVM_NODES}) < {MIN_KVM_NODES} and on() {MORE_THAN_ONE_NODE}",
                impact=Impact.DEGRADES,
                for_="5m",
                summary=f"Fewer than {MIN_KVM_NODES} nodes offer KVM: no live migration",
                description=f"{{{{ $value }}}} of the cluster's nodes offer {KVM_DEVICE}; live "
                f"migration needs at least {MIN_KVM_NODES} nodes with it.",
            ),
        ),
        meaning=f"Fewer than {MIN_KVM_NODES} nodes have `{KVM_DEVICE}` allocatable "
        "(kube-state-metrics' `kube_node_status_allocatable`), in a cluster of more than one "
        "node. The same condition as KubeVirt's own LowKVMNodesCount (kubevirt/kubevirt "
        "pkg/monitoring/rules/alerts/system.go, over pkg/monitoring/rules/recordingrules/"
        "nodes.go).",
        impact="A VM can live-migrate only to another node that offers KVM: with one such "
        "node, no VM can move, and draining that node stops its VMs. With none, no VM starts "
        "at all (unless software emulation is on).",
        diagnosis=(
            'Per node: `kube_node_status_allocatable{resource="devices_kubevirt_io_kvm"}` '
            "(0: the node's device plugin found no /dev/kvm; absent: virt-handler does not "
            "run there), or `kubectl get nodes -o custom-columns=NAME:.metadata.name,"
            "KVM:.status.allocatable.devices\\.kubevirt\\.io/kvm`.",
            "On the exporters: KubevKVMUnusable and KubevVirtualizationExtensionsMissing say "
            "why a node has no KVM.",
            "Where virt-handler runs: `kubectl -n kubevirt get pods -o wide -l "
            "kubevirt.io=virt-handler`.",
        ),
        mitigation=(
            KVM_NODES_REQ.hint,
            "If KubeVirt's LowKVMNodesCount fires too, it is the same condition: silence one.",
        ),
        cases=(
            Case(
                _series(*ONE_KVM_NODE),
                "10m",
                (
                    {
                        "severity": "warning",
                        "description": f"1 of the cluster's nodes offer {KVM_DEVICE}; live "
                        f"migration needs at least {MIN_KVM_NODES} nodes with it.",
                    },
                ),
            ),
            Case(_series(*THREE_WITH_VIRT_HANDLER), "10m"),
            # one node: nothing to migrate to, nothing to say
            Case(_series(*SINGLE_NODE), "10m"),
        ),
    ),
    Alert(
        name=DEVICES_REQ.alert,
        rules=(
            Rule(
                expr=f"max by (node, resource) (kube_node_status_allocatable{{{KSM},"
                f'resource=~"{DEVICE_RESOURCES}"}}) == 0',
                impact=Impact.DEGRADES,
                for_="10m",
                summary="A KubeVirt device is advertised but not allocatable on a node",
                description="{{ $labels.node }}: KubeVirt's device plugin offers "
                "{{ $labels.resource }}, but none is allocatable: the device is missing on the "
                "node, and VMs that need it are not scheduled there.",
            ),
        ),
        meaning="virt-handler's device plugin for kvm, tun or vhost-net runs on the node but "
        "reports its device Unhealthy, because /dev/kvm, /dev/net/tun or /dev/vhost-net is "
        "missing (kubevirt/kubevirt pkg/virt-handler/device-manager/generic_device.go "
        "healthCheck). kubelet keeps such devices in the capacity and leaves them out of the "
        "allocatable.",
        impact="VM pods request the device; the scheduler places none on this node "
        "('Insufficient devices.kubevirt.io/kvm'), and live migration cannot target it.",
        diagnosis=(
            "`kubectl get node NODE -o jsonpath='{.status.allocatable}'` against "
            "`.status.capacity`.",
            "virt-handler's log on the node: \"device '/dev/kvm' is not present, the device "
            "plugin can't expose it.\"",
            "On the node: `ls -l /dev/kvm /dev/net/tun /dev/vhost-net`, `lsmod | grep -E "
            "'kvm|tun|vhost'`; the node's exporter (KubevKVMUnusable).",
        ),
        mitigation=(
            DEVICES_REQ.hint,
            "virt-handler notices a device that appears (fsnotify) and marks it healthy: no "
            "restart is needed.",
        ),
        cases=(
            Case(
                _series(*THREE_WITH_VIRT_HANDLER),
                "15m",
                (
                    {
                        "node": "node-c",
                        "resource": KVM_RESOURCE,
                        "severity": "warning",
                        "description": f"node-c: KubeVirt's device plugin offers {KVM_RESOURCE}, "
                        "but none is allocatable: the device is missing on the node, and VMs that "
                        "need it are not scheduled there.",
                    },
                ),
            ),
            # node-d runs no virt-handler (no device resources at all): a choice, not a fault
            Case(_series(*_nodes("node-a", "node-d"), *_devices("node-a")), "15m"),
        ),
    ),
    Alert(
        name=SCHEDULABLE_REQ.alert,
        rules=(
            Rule(
                expr=f'max by (node) (kube_node_labels{{{KSM},{SCHEDULABLE}="false"}})',
                impact=Impact.DEGRADES,
                for_="10m",
                summary="A node is not schedulable for VMs (kubevirt.io/schedulable=false)",
                description="{{ $labels.node }}: the node label kubevirt.io/schedulable is "
                "false: virt-handler there is not running, not ready, or has not reported for "
                "5 minutes; no VM is scheduled on the node.",
            ),
        ),
        meaning='The node\'s label kubevirt.io/schedulable is "false". virt-handler sets it '
        "while its device plugins are not registered and when it shuts down "
        "(kubevirt/kubevirt pkg/virt-handler/heartbeat/heartbeat.go); virt-controller sets it "
        "when virt-handler's heartbeat (annotation kubevirt.io/heartbeat) is older than 5 "
        "minutes (pkg/virt-controller/watch/node/node.go markNodeAsUnresponsive).",
        impact="Every VM pod selects kubevirt.io/schedulable=true (kubevirt/kubevirt "
        "pkg/virt-controller/services/nodeselectorrenderer.go): no VM starts or migrates to "
        "the node. VMs already there keep running, but KubeVirt no longer manages them.",
        diagnosis=(
            "`kubectl get node NODE --show-labels`, `kubectl get node NODE -o "
            "jsonpath='{.metadata.annotations.kubevirt\\.io/heartbeat}'`.",
            "virt-handler on the node: `kubectl -n kubevirt get pods -o wide -l "
            "kubevirt.io=virt-handler`, its log; events 'virt-handler is not responsive, "
            "marking node as unresponsive'.",
            "Needs kube-state-metrics' `--metric-labels-allowlist=nodes=[kubevirt.io/"
            "schedulable]`: without it this alert never fires.",
        ),
        mitigation=(
            SCHEDULABLE_REQ.hint,
            "Restart virt-handler on the node if it hangs; once it reports, it sets the label "
            "back to true.",
        ),
        cases=(
            Case(
                _series(*THREE_WITH_VIRT_HANDLER),
                "15m",
                (
                    {
                        "node": "node-b",
                        "severity": "warning",
                        "description": "node-b: the node label kubevirt.io/schedulable is false: "
                        "virt-handler there is not running, not ready, or has not reported for 5 "
                        "minutes; no VM is scheduled on the node.",
                    },
                ),
            ),
            Case(
                _series(*_nodes("node-a"), node_labels("node-a", kubevirt_io_schedulable="true")),
                "15m",
            ),
        ),
    ),
    Alert(
        name=EXPORTER_MISSING_ALERT,
        rules=(
            Rule(
                expr=NODES_WITHOUT_EXPORTER,
                impact=Impact.DEGRADES,
                for_="15m",
                summary="A node of the cluster has no kubev-node-exporter",
                description="{{ $labels.node }} is a node of the cluster (kube-state-metrics), "
                "but no kubev-node-exporter reports it: its requirements are not watched.",
            ),
        ),
        meaning="kube-state-metrics' `kube_node_info` (one per Node: kubernetes/"
        "kube-state-metrics internal/store/node.go) lists a node that no `kubev_node_info"
        f"{{{SELECTOR}}}` names: no exporter on it reports (none scheduled there, or "
        "its target is down or not scraped). Matched on the node name: the exporter's is "
        "$NODE_NAME, which the DaemonSet sets from spec.nodeName.",
        impact="Nothing on that node is watched; every other node alert of this pack is silent "
        "there. KubevExporterAbsent notices only when every exporter is gone.",
        diagnosis=(
            "Is an exporter pod on the node? `kubectl -n monitoring get pods -o wide -l "
            "app.kubernetes.io/name=kubev-node-exporter --field-selector spec.nodeName=NODE`.",
            "If none: the DaemonSet's nodeSelector and tolerations against the node's labels "
            "and taints (`kubectl describe node NODE`).",
            "If one runs: KubevExporterDown for its instance, and its node name: "
            '`kubev_node_info` must carry `node="NODE"` ($NODE_NAME in the pod).',
        ),
        mitigation=(
            EXPORTER_MISSING_HINT,
            "A node that is meant to have no exporter: silence the alert for its `node`.",
        ),
        cases=(
            Case(
                {
                    **_series(*_nodes("node-a", "node-b")),
                    _exporter_info("node-a", INSTANCE): "1x20",
                },
                "18m",
                (
                    {
                        "node": "node-b",
                        "severity": "warning",
                        "description": "node-b is a node of the cluster (kube-state-metrics), "
                        "but no kubev-node-exporter reports it: its requirements are not watched.",
                    },
                ),
            ),
            # the exporter's series come from another job: joined on the node name alone
            Case(
                {
                    **_series(*_nodes("node-a", "node-b")),
                    _exporter_info("node-a", INSTANCE): "1x20",
                    _exporter_info("node-b", "node-2:19100"): "1x20",
                },
                "18m",
            ),
        ),
    ),
    Alert(
        name=METRICS_ABSENT_ALERT,
        rules=(
            Rule(
                expr=f"absent(kube_node_info{{{KSM}}})",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="No kube-state-metrics series: the cluster's node requirements are not judged",
                description=f"Prometheus has no kube_node_info series of {KSM}: KVM-capable "
                "nodes, KubeVirt's devices and nodes without an exporter are not judged.",
                labels=(("source", "kube-state-metrics"),),
            ),
            Rule(
                expr=f"absent({PROFILE}{{{CDI}}})",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="No CDI StorageProfile series: shared storage is not judged",
                description=f"Prometheus has no {PROFILE} series of {CDI}: whether VM storage "
                "is shared (ReadWriteMany) is not judged.",
                labels=(("source", "cdi"),),
            ),
        ),
        meaning=f"The rules judge the cluster's requirements from kube-state-metrics "
        f"(`kube_node_info{{{KSM}}}`) and CDI (`{PROFILE}{{{CDI}}}`); Prometheus has "
        "none of one of them.",
        impact="The cluster's verdicts (`kubev:cluster_requirement_met`) for that source are "
        "absent and its alerts silent; `kubev-node-exporter fleet` reports them as errors.",
        diagnosis=(
            "Prometheus's Targets page: is kube-state-metrics (or CDI's "
            "cdi-prometheus-metrics Service) scraped, and under which job?",
            "kube-state-metrics: `kube_node_info` by job. CDI: does the cluster run CDI "
            "(`kubectl get cdi`), does it have StorageClasses (no class, no profile series), "
            "is its ServiceMonitor service-monitor-cdi picked up (kubevirt/"
            "containerized-data-importer pkg/operator/controller/prometheus.go; it scrapes "
            "the Service cdi-prometheus-metrics)?",
        ),
        mitigation=(
            "Scrape the source, or render the rules with the selector it is scraped under "
            f"(RuleSettings ksm_selector, default `{KSM}`; cdi_selector, default "
            f"`{CDI}`).",
        ),
        cases=(
            Case(
                _series(*VIRT_DEFAULT_RWX),
                "18m",
                (
                    {
                        "job": KSM_JOB,
                        "source": "kube-state-metrics",
                        "severity": "warning",
                        "description": f"Prometheus has no kube_node_info series of {KSM_LABELS}: "
                        "KVM-capable nodes, KubeVirt's devices and nodes without an exporter are "
                        "not judged.",
                    },
                ),
            ),
            Case(
                _series(*SINGLE_NODE),
                "18m",
                (
                    {
                        "source": "cdi",
                        "severity": "warning",
                        "description": f"Prometheus has no {PROFILE} series of {CDI_SELECTOR}: "
                        "whether VM storage is shared (ReadWriteMany) is not judged.",
                    },
                ),
            ),
            Case(_series(*SINGLE_NODE, *VIRT_DEFAULT_RWX), "18m"),
        ),
    ),
)
