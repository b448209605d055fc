"""The platform's requirements as data: the one place every threshold and port lives.

Source: the Kubermatic Virtualization "Single Node Deployment" page. The exporter's
verdicts, the alert rules, the dashboards and the docs all read this module; a number
from the spec is written here once and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

GIB = 1024**3
#: Link speeds are exported in bytes per second, as node_exporter does (Mb/s x 125000).
MBPS = 125_000


class Req(StrEnum):
    """Every requirement's name. A check observes a requirement by this name only: a typo is
    a type error (mypy) and a ValueError (Req("...")), never a silently missing verdict."""

    CPU_CORES = "cpu_cores"
    MEMORY = "memory"
    VIRTUALIZATION_EXTENSIONS = "virtualization_extensions"
    KVM = "kvm"
    TUN = "tun"
    VHOST_NET = "vhost_net"
    CPU_BASELINE = "cpu_baseline"
    KERNEL_MODULES = "kernel_modules"
    CGROUP_CONTROLLERS = "cgroup_controllers"
    STORAGE_SOLID_STATE = "storage_solid_state"
    DISK_LATENCY = "disk_latency"
    NIC_SPEED = "nic_speed"
    PORTS = "ports"
    OVN_ENDPOINTS = "ovn_endpoints"
    DNS = "dns"
    PEER_REACHABILITY = "peer_reachability"


class Level(StrEnum):
    MINIMUM = "minimum"
    RECOMMENDED = "recommended"


class Comparison(StrEnum):
    AT_LEAST = ">="
    AT_MOST = "<="


class Profile(StrEnum):
    TESTING = "testing"
    PRODUCTION = "production"


class Role(StrEnum):
    SINGLE_NODE = "single-node"
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


@dataclass(frozen=True)
class Requirement:
    """One requirement of the platform: an observed value compared against a threshold.

    Booleans are observed as 1 (true) or 0 (false) and compared ``>= 1``.
    ``slack`` widens the comparison by a fraction of the threshold, for quantities the
    kernel reports lower than what is installed (see MEMORY_SLACK).
    """

    name: Req
    title: str
    unit: str
    comparison: Comparison
    thresholds: Mapping[Level, float]
    rationale: str
    slack: float = 0.0

    def effective_threshold(self, level: Level) -> float:
        threshold = self.thresholds[level]
        if self.comparison is Comparison.AT_LEAST:
            return threshold * (1.0 - self.slack)
        return threshold * (1.0 + self.slack)

    def is_met(self, level: Level, observed: float) -> bool:
        limit = self.effective_threshold(level)
        if self.comparison is Comparison.AT_LEAST:
            return observed >= limit
        return observed <= limit

    def format(self, value: float) -> str:
        """A value of this requirement for people: 16 cores, 7.6 GiB, 10 Gb/s, 4.2 ms."""
        if self.unit == "bool":
            return "yes" if value >= 1 else "no"
        if self.unit == "bytes":
            return f"{value / GIB:.3g} GiB"
        if self.unit == "bytes/s":
            return f"{value / MBPS / 1000:g} Gb/s"
        if self.unit == "seconds":
            return f"{value * 1000:.3g} ms"
        return f"{value:g} {self.unit}"

    def headroom(self, level: Level, observed: float) -> float:
        """How far the observed value is on the good side of the threshold (negative: short)."""
        limit = self.effective_threshold(level)
        if self.comparison is Comparison.AT_LEAST:
            return observed - limit
        return limit - observed


# MemTotal excludes what firmware and the kernel reserve at boot (typically 2-4% of the
# installed RAM), so a machine with exactly 8 GiB installed reads about 7.7 GiB. Comparing
# MemTotal with 95% of the threshold keeps such a machine passing and still fails one with
# less RAM than the spec asks for.
MEMORY_SLACK = 0.05

# The spec names no latency figure. etcd's hardware guidance asks for WAL fsync under
# 10 ms (99th percentile); a disk ten times slower than that makes etcd leader elections
# and VM disk I/O visibly unreliable, so it fails the minimum.
FSYNC_RECOMMENDED_SECONDS = 0.010
FSYNC_MINIMUM_SECONDS = 0.100
# Far beyond the minimum: an fsync p99 at etcd's default election timeout (1000 ms; the
# heartbeat is 100 ms: etcd.io/docs/v3.5/tuning "Time parameters") lets a leader stalled
# on its WAL lose its followers, and etcd itself logs every fsync this slow as a warning
# (etcd-io/etcd server/storage/wal/wal.go: warnSyncDuration = time.Second). Not a
# requirement level: the alert rules page on it.
FSYNC_CRITICAL_SECONDS = 1.0

#: Share of the Kube-OVN pinger's node pings lost between two nodes over 10 minutes at
#: which the overlay between them counts as broken (KubevOverlayNodePingLoss). A firewall
#: that drops Geneve loses them all; a lossy but working path loses a few.
OVERLAY_PING_LOSS_RATIO = 0.5

# Operational thresholds: not requirements of the spec page, but what the alert rules
# (alerts/) and dashboards judge runtime behaviour by. Kept here with the rest.
#: available memory below this share of MemTotal, sustained, is a warning
MEMORY_AVAILABLE_MIN_RATIO = 0.10
#: mean time per read or write over 5 minutes above this, sustained, is a warning
DISK_IO_LATENCY_WARNING_SECONDS = 0.020
#: filesystem filling: (hours ahead, available share below which the prediction counts)
FILESYSTEM_FILL_WARNING = (24, 0.40)
FILESYSTEM_FILL_CRITICAL = (4, 0.20)
#: carrier changes in 15 minutes above this: the link flaps
LINK_FLAP_CHANGES_15M = 4
#: Kube-OVN reserves 100 bytes of the node MTU for the Geneve header; pods get 1400 only
#: when the node has at least 1500
GENEVE_OVERHEAD_BYTES = 100
MIN_POD_MTU_BYTES = 1400
#: a name that takes longer than this to resolve, sustained, is slow
DNS_SLOW_SECONDS = 0.5

#: x86-64-v2, as /proc/cpuinfo names its parts. KubeVirt's images are CentOS Stream 9 based,
#: and their glibc refuses to start below x86-64-v2 ("Fatal glibc error: CPU does not support
#: x86-64-v2", bminor/glibc sysdeps/x86/dl-get-cpu-features.c). The level is defined in
#: glibc sysdeps/x86/get-isa-level.h get_isa_level: CMPXCHG16B, LAHF64_SAHF64, POPCNT, SSE3,
#: SSSE3, SSE4_1, SSE4_2; cpuinfo calls SSE3 "pni". KubeVirt itself checks none of them: the
#: failure shows as virt-handler Init:CrashLoopBackOff (kubevirt#10713, #9458).
X86_64_V2_FLAGS = ("cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2")

#: cgroup controllers a VM node needs, by their v1 names. virt-host-validate qemu checks
#: cpu, cpuacct, cpuset, memory, devices and blkio (libvirt tools/virt-host-validate-qemu.c);
#: these four are the ones the platform cannot run without: kubeadm's preflight refuses a node
#: without them (kubernetes/system-validators validators/types_unix.go DefaultSysSpec Cgroups
#: and CgroupsV2), libvirt confines each VM's memory and vCPUs with memory, cpu and cpuset,
#: and the devices controller is what limits a virt-launcher pod to the devices it was given.
CGROUP_CONTROLLERS_REQUIRED = ("cpu", "cpuset", "memory", "devices")

#: kernel modules without a device of their own to judge them by (kvm, tun and vhost_net are
#: judged by /dev/kvm, /dev/net/tun and /dev/vhost-net). Kube-OVN runs on Open vSwitch's
#: kernel datapath; geneve carries its overlay between nodes (only where Geneve is used).
KERNEL_MODULES_REQUIRED = ("openvswitch",)
KERNEL_MODULES_FOR_GENEVE = ("geneve",)

_BOOL = {Level.MINIMUM: 1.0, Level.RECOMMENDED: 1.0}
_BOOL_RECOMMENDED_ONLY = {Level.RECOMMENDED: 1.0}
_MIN_ONLY = {Level.MINIMUM: 1.0}


def _flag(
    name: Req, title: str, rationale: str, levels: Mapping[Level, float] = _MIN_ONLY
) -> Requirement:
    """A yes/no requirement: observed as 1 or 0, met at 1."""
    return Requirement(name, title, "bool", Comparison.AT_LEAST, levels, rationale)


def _requirements(
    *,
    cores: tuple[float, float],
    memory_gib: tuple[float, float],
    virtualization_minimum: bool,
) -> dict[Req, Requirement]:
    reqs = [
        Requirement(
            name=Req.CPU_CORES,
            title="CPU cores",
            unit="cores",
            comparison=Comparison.AT_LEAST,
            thresholds={Level.MINIMUM: cores[0], Level.RECOMMENDED: cores[1]},
            rationale="8 cores suggested for testing, 16 or more for production.",
        ),
        Requirement(
            name=Req.MEMORY,
            title="Memory",
            unit="bytes",
            comparison=Comparison.AT_LEAST,
            thresholds={
                Level.MINIMUM: memory_gib[0] * GIB,
                Level.RECOMMENDED: memory_gib[1] * GIB,
            },
            rationale="At least 8 GB RAM per node; 16-32 GB recommended.",
            slack=MEMORY_SLACK,
        ),
        _flag(
            Req.VIRTUALIZATION_EXTENSIONS,
            "CPU virtualization extensions (VT-x / AMD-V)",
            "The spec's words. Without the flag a host cannot give KVM hardware "
            "virtualization; KubeVirt's software emulation is a cluster-wide opt-in "
            "(developerConfiguration.useEmulation), far slower and not for production. A VM "
            "host may offer a working /dev/kvm without the flag (nested or paravirtual KVM): "
            "the kvm row judges that separately.",
            _BOOL if virtualization_minimum else _BOOL_RECOMMENDED_ONLY,
        ),
        _flag(
            Req.KVM,
            "KVM usable (/dev/kvm)",
            "KubeVirt runs VMs through KVM; /dev/kvm must open and create a VM.",
            _BOOL,
        ),
        _flag(
            Req.TUN,
            "TUN device (/dev/net/tun)",
            "KubeVirt requests devices.kubevirt.io/tun for every VM with a network interface "
            "(kubevirt pkg/network/vmispec/devices.go RequiresTunDevice); its device plugin "
            "serves /dev/net/tun, so without the device the VM's pod stays Pending "
            '("Insufficient devices.kubevirt.io/tun"). libvirt virt-host-validate fails a host '
            "without it.",
            _BOOL,
        ),
        _flag(
            Req.VHOST_NET,
            "vhost-net device (/dev/vhost-net)",
            "A virtio NIC, KubeVirt's default model, requests devices.kubevirt.io/vhost-net unless "
            "software emulation is on (kubevirt pkg/network/vmispec/devices.go "
            "RequiresVirtioNetDevice); without /dev/vhost-net the VM's pod stays Pending "
            '("Insufficient devices.kubevirt.io/vhost-net").',
            _BOOL,
        ),
        _flag(
            Req.CPU_BASELINE,
            "CPU baseline x86-64-v2",
            "KubeVirt's CentOS Stream 9 based images need x86-64-v2 (cx16, lahf_lm, popcnt, "
            'SSE3, SSSE3, SSE4.1, SSE4.2): below it glibc aborts ("Fatal glibc error: CPU '
            'does not support x86-64-v2") and virt-handler stays in Init:CrashLoopBackOff '
            "(kubevirt#10713, #9458).",
            _BOOL,
        ),
        _flag(
            Req.KERNEL_MODULES,
            "Kernel modules (openvswitch, geneve)",
            "Kube-OVN's pod and VM network runs on Open vSwitch's kernel datapath (openvswitch); "
            "its overlay between nodes is Geneve (geneve). Each must be loaded, built in or "
            "installed for the running kernel.",
            _BOOL,
        ),
        _flag(
            Req.CGROUP_CONTROLLERS,
            "cgroup controllers (cpu, cpuset, memory, devices)",
            "kubeadm's preflight refuses a node without the cpu, cpuset, memory and devices "
            "controllers; libvirt and KubeVirt confine every VM with them (virt-host-validate "
            "qemu checks them).",
            _BOOL,
        ),
        _flag(
            Req.STORAGE_SOLID_STATE,
            "Storage on SSD or NVMe",
            "SSDs or NVMe drives are highly recommended for VM performance.",
            _BOOL_RECOMMENDED_ONLY,
        ),
        Requirement(
            name=Req.DISK_LATENCY,
            title="Storage fsync latency",
            unit="seconds",
            comparison=Comparison.AT_MOST,
            thresholds={
                Level.MINIMUM: FSYNC_MINIMUM_SECONDS,
                Level.RECOMMENDED: FSYNC_RECOMMENDED_SECONDS,
            },
            rationale="Low-latency storage is critical; etcd asks for fsync under 10 ms.",
        ),
        _flag(
            Req.PORTS,
            "Platform ports listening",
            "Every port the node's role requires (spec port table, as a real cluster runs it) "
            "accepts connections where it listens (TCP: the node address; 127.0.0.1 for "
            "kubeadm's scheduler and controller-manager) or has a bound socket (UDP); one "
            "other nodes must reach does not listen on loopback only.",
        ),
        _flag(
            Req.OVN_ENDPOINTS,
            "Kube-OVN endpoints alive",
            "kube-ovn-cni (10665) is alive on every node, kube-ovn-controller (10660) and "
            "kube-ovn-monitor (10661) wherever they listen: the health path (/livez) answers "
            "200. Metrics disabled, refused (401/403) or failing are reported, not failed.",
        ),
        _flag(
            Req.PEER_REACHABILITY,
            "Peers' ports reachable",
            "Every node must reach the ports its peers serve to other nodes (the spec's Inbound "
            "and Node-to-Node rows): no firewall between nodes may drop or reject them.",
        ),
        _flag(
            Req.DNS,
            "DNS resolution",
            "DNS resolution is crucial: nodes must find each other and external services.",
        ),
        Requirement(
            name=Req.NIC_SPEED,
            title="NIC link speed",
            unit="bytes/s",
            comparison=Comparison.AT_LEAST,
            thresholds={Level.MINIMUM: 1_000 * MBPS, Level.RECOMMENDED: 10_000 * MBPS},
            rationale="1 Gbps NICs are a minimum; 10 Gbps or higher is recommended.",
        ),
    ]
    return {r.name: r for r in reqs}


#: What the spec page ("Single Node Deployment") says of each requirement, verbatim; "" where
#: it says nothing and the requirement comes from what KubeVirt, Kube-OVN or kubeadm need
#: (the rationale says which). docs/requirements.md prints both.
SPEC_SAYS: Mapping[Req, str] = {
    Req.CPU_CORES: "A minimum of 8 CPU cores is suggested for testing environments. For "
    "production deployments, 16 CPU cores or more are recommended to accommodate multiple "
    "VMs and their workloads effectively.",
    Req.MEMORY: "RAM: At least 8 GB RAM per node. Recommended: 16-32 GB, depending on the "
    "number and memory requirements of your VMs.",
    Req.VIRTUALIZATION_EXTENSIONS: "The host node must have Intel VT-x or AMD-V hardware "
    "virtualization extensions enabled in the BIOS/UEFI.",
    Req.KVM: "This is a fundamental requirement for KubeVirt to leverage KVM (Kernel-based "
    "Virtual Machine) for efficient VM execution.",
    Req.TUN: "",
    Req.VHOST_NET: "",
    Req.CPU_BASELINE: "",
    Req.KERNEL_MODULES: "",
    Req.CGROUP_CONTROLLERS: "",
    Req.STORAGE_SOLID_STATE: "SSDs or NVMe drives are highly recommended for good VM "
    "performance in addition to sufficient storage capacity based on the disk images of "
    "your VMs and any data they store.",
    Req.DISK_LATENCY: "Performance: SSDs or NVMe drives are highly recommended for good VM "
    "performance where high-throughput services, low-latency, high-IOPS storage (often "
    "block storage) is critical.",
    Req.NIC_SPEED: "High-bandwidth, low-latency connections: 1 Gbps NICs are a minimum; "
    "10 Gbps or higher is recommended for performance-sensitive workloads.",
    Req.PORTS: "The port table (Component, Port(s), Protocol, Direction, Purpose).",
    Req.OVN_ENDPOINTS: "The port table's OVN Controller (10660), OVN Daemon (10665, on each "
    "node) and OVN Monitor (10661) rows: Metrics for ...",
    Req.DNS: "DNS: DNS resolution is crucial for the Kube-V environment, enabling all nodes "
    "to find each other and external services.",
    Req.PEER_REACHABILITY: "The port table's Direction column: Inbound (from other nodes or "
    "clients) and Node-to-Node.",
}

#: Requirements per profile. A testing node may sit in a nested VM where /dev/kvm works
#: but the vmx/svm flag is hidden, so there the flag is only recommended.
PROFILES: Mapping[Profile, Mapping[Req, Requirement]] = {
    Profile.TESTING: _requirements(cores=(8, 16), memory_gib=(8, 16), virtualization_minimum=False),
    Profile.PRODUCTION: _requirements(
        cores=(16, 16), memory_gib=(16, 32), virtualization_minimum=True
    ),
}


def requirements(profile: Profile) -> Mapping[Req, Requirement]:
    return PROFILES[profile]


class Expectation(StrEnum):
    REQUIRED = "required"  # must listen; its absence is alerted
    OPTIONAL = "optional"  # reported, never alerted
    TRANSIENT = "transient"  # listens only at times; reported, never alerted
    ABSENT = "absent"  # not expected on this role; not probed


class Scope(StrEnum):
    """Where a component listens on a real cluster, and so where it is probed."""

    ANY = "any"  # every address (0.0.0.0 / ::): probed on the node address
    NODE = "node"  # the node's own address: probed there
    LOOPBACK = "loopback"  # 127.0.0.1 only: probed there; other nodes cannot reach it
    POD = "pod"  # a pod's network, not the node's: the node address cannot observe it


class Condition(StrEnum):
    """Ports that listen only on some nodes of a role; the ports check decides per node
    (exporter/checks/ports.py: checks.ports.ovn_central and .tunnel)."""

    OVN_CENTRAL = "ovn-central"  # nodes that run OVN's databases (kube-ovn/role=master)
    OVN_RAFT = "ovn-raft"  # ... in clustered mode (install.sh's default, even for one master)
    GENEVE = "geneve"  # nodes with a Geneve tunnel to another node


@dataclass(frozen=True)
class PortRange:
    """One row of the spec's port table, and how a real cluster runs it."""

    component: str
    title: str
    first: int
    last: int
    protocols: tuple[str, ...]
    #: the spec's word: inbound, internal, node-to-node
    direction: str
    purpose: str
    roles: Mapping[Role, Expectation] = field(default_factory=dict)
    #: where it listens on a real cluster
    scope: Scope = Scope.ANY
    #: other nodes (or clients off the node) must reach it: loopback-only is a failure,
    #: and the peers check probes it from other nodes
    remote: bool = True
    #: False for ranges too wide to probe port by port (NodePort): sockets are counted
    probe: bool = True
    #: listens only where this holds (None: wherever the role says)
    condition: Condition | None = None
    #: what a real cluster does where the spec page says otherwise or nothing, and the
    #: source that says so (docs/requirements.md prints both)
    real: str = ""
    source: str = ""

    @property
    def ports(self) -> range:
        return range(self.first, self.last + 1)

    def expectation(self, role: Role) -> Expectation:
        return self.roles.get(role, Expectation.ABSENT)


_CP = Role.CONTROL_PLANE
_W = Role.WORKER
_SN = Role.SINGLE_NODE
_REQ = Expectation.REQUIRED
_OPT = Expectation.OPTIONAL
_ABSENT = Expectation.ABSENT


def _on(control_plane: Expectation, worker: Expectation) -> dict[Role, Expectation]:
    """A single node carries both roles: it expects the stronger of the two."""
    order = [Expectation.ABSENT, Expectation.TRANSIENT, _OPT, _REQ]
    single = max(control_plane, worker, key=order.index)
    roles = {_CP: control_plane, _W: worker, _SN: single}
    return {role: exp for role, exp in roles.items() if exp is not Expectation.ABSENT}


_KUBEADM_MANIFESTS = (
    "kubernetes/kubernetes cmd/kubeadm/app/phases/controlplane/manifests.go "
    '(getSchedulerCommand, getControllerManagerCommand: "bind-address": "127.0.0.1")'
)
_BIND_LOCAL = (
    "kubeovn/kube-ovn pkg/util/net.go GetDefaultListenAddr (ENABLE_BIND_LOCAL_IP, true in "
    "dist/images/install.sh and both charts: one listener per POD_IPS address, the node's "
    "under hostNetwork)"
)

#: The spec's port table, in its order, with what a real kubeadm + KubeVirt + Kube-OVN
#: cluster does. Roles say where a port must listen.
PORTS: tuple[PortRange, ...] = (
    PortRange(
        "kube-apiserver",
        "API Server",
        6443,
        6443,
        ("tcp",),
        "inbound",
        "All API communication with the cluster",
        _on(_REQ, _ABSENT),
        scope=Scope.ANY,
        source="kubeadm passes no --bind-address; kube-apiserver defaults to 0.0.0.0:6443 "
        "(kubernetes/kubernetes pkg/kubeapiserver/options/serving.go NewSecureServingOptions)",
    ),
    PortRange(
        "etcd",
        "etcd",
        2379,
        2380,
        ("tcp",),
        "inbound",
        "etcd database communication",
        _on(_REQ, _ABSENT),
        scope=Scope.NODE,
        real="clients on 127.0.0.1 and the node address (2379), peers on the node address "
        "only (2380)",
        source="kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go getEtcdCommand "
        "(listen-client-urls, listen-peer-urls)",
    ),
    PortRange(
        "kubelet",
        "Kubelet",
        10250,
        10250,
        ("tcp",),
        "inbound",
        "Kubelet API for control plane communication",
        _on(_REQ, _REQ),
        scope=Scope.ANY,
        source="kubernetes/kubernetes pkg/kubelet/apis/config/v1beta1/defaults.go "
        '(Address "0.0.0.0", Port 10250)',
    ),
    PortRange(
        "kube-scheduler",
        "Kube-Scheduler",
        10259,
        10259,
        ("tcp",),
        "inbound",
        "Kube-Scheduler component",
        _on(_REQ, _ABSENT),
        scope=Scope.LOOPBACK,
        remote=False,
        real="the spec says inbound; kubeadm binds it to 127.0.0.1, so it is probed there "
        "and no other node can reach it",
        source=_KUBEADM_MANIFESTS,
    ),
    PortRange(
        "kube-controller-manager",
        "Controller-Manager",
        10257,
        10257,
        ("tcp",),
        "inbound",
        "Kube-Controller-Manager component",
        _on(_REQ, _ABSENT),
        scope=Scope.LOOPBACK,
        remote=False,
        real="the spec says inbound; kubeadm binds it to 127.0.0.1, so it is probed there "
        "and no other node can reach it",
        source=_KUBEADM_MANIFESTS,
    ),
    PortRange(
        "kube-proxy",
        "Kube-Proxy",
        10256,
        10256,
        ("tcp",),
        "inbound",
        "Kube-Proxy health checks and service routing",
        _on(_REQ, _REQ),
        scope=Scope.ANY,
        source="kubernetes/kubernetes pkg/proxy/apis/config/v1alpha1/defaults.go "
        "(healthz 0.0.0.0:10256)",
    ),
    PortRange(
        "nodeport",
        "NodePort Services",
        30000,
        32767,
        ("tcp", "udp"),
        "inbound",
        "Default range for exposing services on node IPs",
        _on(_OPT, _OPT),
        probe=False,
        real="listens only for the Services that exist: counted, not probed",
    ),
    PortRange(
        "kubevirt-api",
        "KubeVirt API",
        8443,
        8443,
        ("tcp",),
        "internal",
        "KubeVirt API communication",
        _on(_OPT, _OPT),
        scope=Scope.POD,
        remote=False,
        real="virt-api serves 8443 in its pods' network, behind a ClusterIP Service on 443: "
        "the node address never has it (not probed, no verdict)",
        source="kubevirt/kubevirt pkg/virt-operator/resource/generate/components/"
        "deployments.go (ContainerPort 8443; NewApiServerService ClusterIP 443)",
    ),
    PortRange(
        "live-migration",
        "Live Migration",
        61000,
        61009,
        ("tcp",),
        "node-to-node",
        "For migrating VM state between nodes",
        _on(_OPT, _OPT),
        scope=Scope.POD,
        remote=False,
        real="virt-handler's migration proxy listens on a random port at its pod IP for the "
        "length of a migration: no fixed host port exists (not probed, no verdict)",
        source="kubevirt/kubevirt pkg/virt-handler/migration-proxy/migration-proxy.go "
        "StartTargetListener (zero address, port 0 = random)",
    ),
    PortRange(
        "ovn-nb",
        "OVN NB DB",
        6641,
        6641,
        ("tcp",),
        "internal",
        "OVN Northbound Database",
        _on(_REQ, _REQ),
        scope=Scope.NODE,
        condition=Condition.OVN_CENTRAL,
        real="only on OVN central nodes (label kube-ovn/role=master), on the node address",
        source="kubeovn/kube-ovn dist/images/start-db.sh (NB_PORT, DB_ADDR=$POD_IP with "
        "ENABLE_BIND_LOCAL_IP); install.sh nodeSelector kube-ovn/role: master",
    ),
    PortRange(
        "ovn-sb",
        "OVN SB DB",
        6642,
        6642,
        ("tcp",),
        "internal",
        "OVN Southbound Database",
        _on(_REQ, _REQ),
        scope=Scope.NODE,
        condition=Condition.OVN_CENTRAL,
        real="only on OVN central nodes (label kube-ovn/role=master), on the node address",
        source="kubeovn/kube-ovn dist/images/start-db.sh (SB_PORT)",
    ),
    PortRange(
        "ovn-nb-raft",
        "OVN Northd",
        6643,
        6643,
        ("tcp",),
        "internal",
        "OVN Northd process (the spec's name); in fact the NB database's raft port",
        _on(_REQ, _REQ),
        scope=Scope.NODE,
        condition=Condition.OVN_RAFT,
        real="the spec calls it Northd, but ovn-northd listens on no TCP port: 6643 is the "
        "NB database's raft port, open in clustered mode only (install.sh sets NODE_IPS even "
        "for one master)",
        source="kubeovn/kube-ovn dist/images/start-db.sh (NB_CLUSTER_PORT, NODE_IPS); "
        "ovn-org/ovn northd/ovn-northd.c (only a unixctl server)",
    ),
    PortRange(
        "ovn-sb-raft",
        "OVN Raft",
        6644,
        6644,
        ("tcp",),
        "internal",
        "OVN Raft consensus (for HA OVN DBs); in fact the SB database's raft port",
        _on(_REQ, _REQ),
        scope=Scope.NODE,
        condition=Condition.OVN_RAFT,
        real="the SB database's raft port, open in clustered mode only, on the node address",
        source="kubeovn/kube-ovn dist/images/start-db.sh (SB_CLUSTER_PORT); "
        "openvswitch/ovs ovsdb/raft.c raft_make_address_passive",
    ),
    PortRange(
        "geneve",
        "Geneve Tunnel",
        6081,
        6081,
        ("udp",),
        "node-to-node",
        "Default overlay network for pod communication (OVN)",
        _on(_REQ, _REQ),
        scope=Scope.ANY,
        condition=Condition.GENEVE,
        real="the kernel binds 6081/udp with the genev_sys_6081 device, which OVS creates "
        "only with a tunnel to another node: none on a single node, none with vxlan",
        source="kubeovn/kube-ovn cmd/daemon/init.go initForOS (a missing genev_sys_6081 is "
        "normal; kube-ovn#3605); ovn-org/ovn controller/encaps.c (tunnels to other chassis)",
    ),
    PortRange(
        "kube-ovn-controller",
        "OVN Controller",
        10660,
        10660,
        ("tcp",),
        "internal",
        "Metrics for OVN Controller",
        _on(_OPT, _OPT),
        scope=Scope.NODE,
        real="kube-ovn-controller runs on kube-ovn/role=master nodes only: alive where found",
        source=_BIND_LOCAL,
    ),
    PortRange(
        "kube-ovn-cni",
        "OVN Daemon",
        10665,
        10665,
        ("tcp",),
        "internal",
        "Metrics for OVN Daemon (on each node)",
        _on(_REQ, _REQ),
        scope=Scope.NODE,
        source=_BIND_LOCAL,
    ),
    PortRange(
        "kube-ovn-monitor",
        "OVN Monitor",
        10661,
        10661,
        ("tcp",),
        "internal",
        "Metrics for OVN Monitor",
        _on(_OPT, _OPT),
        scope=Scope.NODE,
        real="kube-ovn-monitor has one replica, on one kube-ovn/role=master node: alive "
        "where found",
        source=_BIND_LOCAL,
    ),
)


def port_row(component: str) -> PortRange:
    """The port table's row of a component (KeyError names it when there is none)."""
    for row in PORTS:
        if row.component == component:
            return row
    raise KeyError(f"no port-table row for {component!r}")


# --- the cluster's requirements ---------------------------------------------------------------
# Some of the spec's requirements belong to the cluster, not to one node: no node's check
# observes them, so they are not `Req` members (the check registry refuses a requirement no
# check observes). The cluster's own exporters already publish what answers them:
# kube-state-metrics (the nodes' allocatable KubeVirt devices and labels) and CDI (one
# series per StorageProfile). Prometheus rules (alerts/catalog/cluster.py) judge them and
# record `kubev:cluster_requirement_met{requirement}` (one verdict for the cluster) and
# `kubev:node_cluster_requirement_met{node,requirement}` (one per node); the `fleet` command
# and docs/requirements.md read this table.


class ClusterReq(StrEnum):
    """Every cluster requirement's name, as in kubev:cluster_requirement_met{requirement}."""

    SHARED_STORAGE = "shared_storage"
    KVM_NODES = "kvm_nodes"
    KUBEVIRT_DEVICES = "kubevirt_devices"
    KUBEVIRT_SCHEDULABLE = "kubevirt_schedulable"


class Extent(StrEnum):
    """What one verdict of a cluster requirement is about."""

    CLUSTER = "cluster"  # the whole cluster: one verdict
    NODE = "node"  # each node, as the cluster sees it (kube-state-metrics): one per node


#: Live migration needs a second node that offers KVM. KubeVirt's own alert says so:
#: LowKVMNodesCount, "At least two nodes with kvm resource required for VM live migration."
#: (kubevirt/kubevirt pkg/monitoring/rules/alerts/system.go:
#: cluster:kubevirt_nodes_with_kvm:count < 2).
MIN_KVM_NODES = 2

#: The device plugins virt-handler always starts, by device name; each offers the resource
#: devices.kubevirt.io/<name> (kubevirt/kubevirt pkg/virt-handler/device-manager/
#: device_controller.go PermanentHostDevicePlugins; generic_device.go DeviceNamespace).
KUBEVIRT_DEVICES = ("kvm", "tun", "vhost-net")
KUBEVIRT_DEVICE_NAMESPACE = "devices.kubevirt.io"

#: The node label virt-handler keeps "true" while its device plugins serve, and that every
#: virt-launcher pod selects (kubevirt/kubevirt staging/src/kubevirt.io/api/core/v1/types.go
#: NodeSchedulable; pkg/virt-controller/services/nodeselectorrenderer.go).
KUBEVIRT_SCHEDULABLE_LABEL = "kubevirt.io/schedulable"

_SPEC_STORAGE = (
    "CSI Driver Capabilities (Crucial for HA/Live Migration): This is perhaps the most "
    "critical component for KubeVirt. You need a shared storage backend that supports "
    "ReadWriteMany (RWX) access mode or Block-mode (volumeMode: Block) volumes."
)
_SPEC_KVM = (
    "The host node must have Intel VT-x or AMD-V hardware virtualization extensions enabled "
    "in the BIOS/UEFI. This is a fundamental requirement for KubeVirt to leverage KVM "
    "(Kernel-based Virtual Machine) for efficient VM execution."
)


@dataclass(frozen=True)
class ClusterRequirement:
    """A requirement of the cluster: judged by Prometheus rules from the series of the
    cluster's own exporters, never by a node's check. Met when observed >= threshold."""

    name: ClusterReq
    title: str
    extent: Extent
    unit: str  # bool, nodes, devices
    threshold: float
    #: the spec page's words it answers
    spec: str
    rationale: str
    #: the exporter whose series judge it
    source: str
    #: the series it is judged from, and the source that defines them
    judged_from: str
    #: what those series cannot show (said, not guessed)
    unobservable: str
    #: the alert that fires when it is not met, and the first thing to do
    alert: str
    hint: str
    #: node roles that need it (Extent.NODE): on other roles the verdict is not applicable
    roles: frozenset[Role] = frozenset({Role.WORKER, Role.SINGLE_NODE})

    def is_met(self, observed: float) -> bool:
        return observed >= self.threshold

    def format(self, value: float) -> str:
        if self.unit == "bool":
            return "yes" if value >= 1 else "no"
        return f"{value:g} {self.unit}"


CLUSTER_REQUIREMENTS: Mapping[ClusterReq, ClusterRequirement] = {
    r.name: r
    for r in (
        ClusterRequirement(
            name=ClusterReq.SHARED_STORAGE,
            title="Shared storage (ReadWriteMany) for VM disks",
            extent=Extent.CLUSTER,
            unit="bool",
            threshold=1,
            spec=_SPEC_STORAGE,
            rationale="Live migration needs every disk of the VM on shared storage: "
            "virt-handler refuses with 'live migration requires that all PVCs must be shared "
            "(using ReadWriteMany access mode)' (kubevirt/kubevirt pkg/virt-handler/vm.go "
            "checkVolumesForMigration). Judged on the StorageClass a VM disk gets when it "
            "names none: CDI's virtualization default, else the Kubernetes default "
            "(kubevirt/containerized-data-importer pkg/controller/common/util.go "
            "getFallbackStorageClass). No such default fails too: which class VMs use "
            "cannot be told.",
            source="CDI",
            judged_from="CDI's kubevirt_cdi_storageprofile_info{storageclass,provisioner,"
            "complete,default,virtdefault,rwx,smartclone,degraded}, one series per "
            'StorageProfile, label values "true"/"false" '
            "(kubevirt/containerized-data-importer pkg/monitoring/metrics/cdi-controller/"
            "storageprofile.go; set in pkg/controller/storageprofile-controller.go "
            "computeMetrics). rwx is true when any of the profile's claimPropertySets offers "
            "ReadWriteMany, in Filesystem or Block mode (hasRWX).",
            unobservable="Block volume mode: the StorageProfile's claimPropertySets say "
            "which volumeMode each access mode comes with, but the metric exports no "
            "volumeMode label; its `complete` label only says that every claimPropertySet "
            "names an access mode and a volumeMode (isIncomplete). An incomplete profile "
            'reads rwx="false" whatever the backend can do. See the modes with `kubectl get '
            "storageprofile CLASS -o jsonpath='{.status.claimPropertySets}'`.",
            alert="KubevSharedStorageMissing",
            hint="Make a StorageClass whose CSI driver offers ReadWriteMany the VMs' "
            "default (annotation storageclass.kubevirt.io/is-default-virt-class=true)",
        ),
        ClusterRequirement(
            name=ClusterReq.KVM_NODES,
            title="Nodes offering KVM to VMs (live migration)",
            extent=Extent.CLUSTER,
            unit="nodes",
            threshold=MIN_KVM_NODES,
            spec=_SPEC_KVM,
            rationale="A VM live-migrates only to another node that offers "
            "devices.kubevirt.io/kvm; KubeVirt's LowKVMNodesCount fires below two. The spec "
            "page names no count: the number is KubeVirt's. A cluster of one node has "
            "nothing to migrate to, so there the requirement does not apply (as "
            "LowKVMNodesCount asks for more than one node).",
            source="kube-state-metrics",
            judged_from="kube-state-metrics' kube_node_status_allocatable{node,resource="
            '"devices_kubevirt_io_kvm",unit="integer"} (kubernetes/kube-state-metrics '
            "internal/store/node.go: extended resources, the name through SanitizeLabelName) "
            "and kube_node_info{node} for the number of nodes; counted as KubeVirt's "
            "recording rule cluster:kubevirt_nodes_with_kvm:count does "
            "(pkg/monitoring/rules/recordingrules/nodes.go).",
            unobservable="",
            alert="KubevKVMNodesTooFew",
            hint="Give a second node working KVM (VT-x/AMD-V on, /dev/kvm present) and "
            "let virt-handler run there",
        ),
        ClusterRequirement(
            name=ClusterReq.KUBEVIRT_DEVICES,
            title="KubeVirt devices allocatable (kvm, tun, vhost-net)",
            extent=Extent.NODE,
            unit="devices",
            threshold=len(KUBEVIRT_DEVICES),
            spec=_SPEC_KVM,
            rationale="A virt-launcher pod requests devices.kubevirt.io/kvm (unless software "
            "emulation is on), tun (any network interface) and vhost-net (virtio NICs) "
            "(kubevirt/kubevirt pkg/virt-controller/services/renderresources.go). A device "
            "plugin whose device is missing reports it Unhealthy, and kubelet then counts it "
            "in capacity but not in allocatable: 0 allocatable, and the pod stays Pending "
            "with 'Insufficient devices.kubevirt.io/kvm'.",
            source="kube-state-metrics",
            judged_from="kube-state-metrics' kube_node_status_allocatable{node,resource=~"
            '"devices_kubevirt_io_(kvm|tun|vhost_net)"}: the count of the three with '
            "allocatable above 0.",
            unobservable="Whether the cluster allows software emulation "
            "(developerConfiguration.useEmulation): KubeVirt exports it, kube-state-metrics "
            "does not; with emulation on, kvm is not requested.",
            alert="KubevKubeVirtDevicesUnavailable",
            hint="Make virt-handler's device plugins healthy on the node: /dev/kvm, "
            "/dev/net/tun and /dev/vhost-net present (modprobe kvm_intel|kvm_amd, tun, "
            "vhost_net)",
        ),
        ClusterRequirement(
            name=ClusterReq.KUBEVIRT_SCHEDULABLE,
            title="Node schedulable for VMs (kubevirt.io/schedulable)",
            extent=Extent.NODE,
            unit="bool",
            threshold=1,
            spec=_SPEC_KVM,
            rationale="Every virt-launcher pod selects kubevirt.io/schedulable=true. "
            "virt-handler sets it while its device plugins are registered with kubelet, and "
            "virt-controller sets it to false when virt-handler's heartbeat is older than 5 "
            "minutes (kubevirt/kubevirt pkg/virt-handler/heartbeat/heartbeat.go; "
            "pkg/virt-controller/watch/node/node.go).",
            source="kube-state-metrics",
            judged_from="kube-state-metrics' kube_node_labels{node,"
            "label_kubevirt_io_schedulable}, which exists only with kube-state-metrics' "
            "--metric-labels-allowlist=nodes=[kubevirt.io/schedulable] "
            "(kubernetes/kube-state-metrics internal/store/node.go createNodeLabelsGenerator; "
            "pkg/options/options.go).",
            unobservable="Without that allowlist kube-state-metrics exports no node labels: "
            "the verdict is unknown. The label can read true on a node whose /dev/kvm is "
            "missing (an unhealthy device plugin still counts as registered): "
            "kubevirt_devices tells that part.",
            alert="KubevNodeNotSchedulableForVMs",
            hint="Make virt-handler run and report on the node: kubectl -n kubevirt get "
            "pods -o wide -l kubevirt.io=virt-handler",
        ),
    )
}
