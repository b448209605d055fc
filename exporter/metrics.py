"""The metric catalog: every metric the exporter serves, with its type, help and labels.

docs/metrics.md is generated from this list, and checks can only emit what it declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    source: str  # the check that emits it, or "exporter"
    label_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_set", frozenset(self.labels))


CATALOG: list[MetricDef] = []


def _m(name: str, type_: MetricType, help_: str, labels: tuple[str, ...], source: str) -> MetricDef:
    metric = MetricDef(name, type_, help_, labels, source)
    CATALOG.append(metric)
    return metric


# Exporter self metrics and verdicts.
BUILD_INFO = _m(
    "kubev_exporter_build_info",
    "gauge",
    "Always 1; the version label says which exporter build serves.",
    ("version", "python_version"),
    "exporter",
)
NODE_INFO = _m(
    "kubev_node_info",
    "gauge",
    "Always 1; the node name, role and requirement profile this exporter judges by.",
    ("node", "role", "profile"),
    "exporter",
)
CHECK_SUCCESS = _m(
    "kubev_check_success",
    "gauge",
    "1 if the check's last run succeeded, 0 if it failed or timed out.",
    ("check",),
    "exporter",
)
CHECK_DURATION = _m(
    "kubev_check_duration_seconds",
    "gauge",
    "Wall time of the check's last run.",
    ("check",),
    "exporter",
)
CHECK_LAST_SUCCESS = _m(
    "kubev_check_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the check's last successful run.",
    ("check",),
    "exporter",
)
CHECK_RUNS = _m(
    "kubev_check_runs_total",
    "counter",
    "Runs of the check since the exporter started, by result (success, failure, timeout).",
    ("check", "result"),
    "exporter",
)
ITEMS_DROPPED = _m(
    "kubev_check_items_dropped",
    "gauge",
    "Devices, interfaces, ports or names the check's last run left out "
    "because of its max_items cap.",
    ("check", "kind"),
    "exporter",
)
LOOP_LAG = _m(
    "kubev_exporter_event_loop_lag_seconds",
    "histogram",
    "How late the event loop ran a 250 ms tick: scrapes wait as long.",
    (),
    "exporter",
)
REQUIREMENT_MET = _m(
    "kubev_requirement_met",
    "gauge",
    "1 if the node meets the requirement at this level of the active profile, "
    "0 if not. Absent while the observation is unknown.",
    ("requirement", "level"),
    "exporter",
)
REQUIREMENT_THRESHOLD = _m(
    "kubev_requirement_threshold",
    "gauge",
    "The threshold of the requirement at this level of the active "
    "profile, in the requirement's unit (booleans: 1).",
    ("requirement", "level", "unit"),
    "exporter",
)
REQUIREMENT_OBSERVED = _m(
    "kubev_requirement_observed",
    "gauge",
    "The value the requirement's verdict was made on, in its unit.",
    ("requirement", "unit"),
    "exporter",
)

# kvm
KVM_DEVICE_PRESENT = _m(
    "kubev_kvm_device_present",
    "gauge",
    "1 if /dev/kvm exists and is the KVM character device (10:232).",
    (),
    "kvm",
)
KVM_USABLE = _m(
    "kubev_kvm_usable",
    "gauge",
    "1 if /dev/kvm opened, reported API version 12 and KVM_CREATE_VM succeeded.",
    (),
    "kvm",
)
KVM_API_VERSION = _m(
    "kubev_kvm_api_version",
    "gauge",
    "KVM_GET_API_VERSION of /dev/kvm (12 on every supported kernel).",
    (),
    "kvm",
)
KVM_MAX_VCPUS = _m(
    "kubev_kvm_max_vcpus",
    "gauge",
    "Maximum vCPUs per VM the kernel allows (KVM_CAP_MAX_VCPUS).",
    (),
    "kvm",
)
CPU_VIRT_EXTENSIONS = _m(
    "kubev_cpu_virtualization_extensions_present",
    "gauge",
    "1 if /proc/cpuinfo shows the vmx (Intel VT-x) or svm (AMD-V) flag.",
    (),
    "kvm",
)
KVM_NESTED = _m(
    "kubev_kvm_nested_enabled",
    "gauge",
    "1 if the kvm_intel or kvm_amd module has nested virtualization enabled.",
    (),
    "kvm",
)
HOST_IS_VM = _m(
    "kubev_host_is_virtual_machine",
    "gauge",
    "1 if /proc/cpuinfo shows the hypervisor flag: this host is itself a VM.",
    (),
    "kvm",
)

# compute
CPU_LOGICAL = _m(
    "kubev_cpu_logical_cores",
    "gauge",
    "Online logical CPUs (hardware threads) in /proc/cpuinfo.",
    (),
    "compute",
)
CPU_PHYSICAL = _m(
    "kubev_cpu_physical_cores",
    "gauge",
    "Physical cores: distinct (package, core) pairs.",
    (),
    "compute",
)
CPU_HEADROOM = _m(
    "kubev_cpu_headroom_cores",
    "gauge",
    "Logical cores above the profile's threshold at this level (negative: short).",
    ("level",),
    "compute",
)
CPU_IDLE = _m(
    "kubev_cpu_idle_cores",
    "gauge",
    "Cores' worth of idle time (idle + iowait) over the last interval "
    "(since boot on the first run).",
    (),
    "compute",
)
MEMORY_TOTAL = _m("kubev_memory_total_bytes", "gauge", "MemTotal of /proc/meminfo.", (), "compute")
MEMORY_AVAILABLE = _m(
    "kubev_memory_available_bytes", "gauge", "MemAvailable of /proc/meminfo.", (), "compute"
)
MEMORY_HEADROOM = _m(
    "kubev_memory_headroom_bytes",
    "gauge",
    "MemTotal above the profile's threshold at this level (negative: short).",
    ("level",),
    "compute",
)

# disk
DISK_INFO = _m(
    "kubev_disk_info",
    "gauge",
    "Always 1 per whole block device; type is nvme, ssd, hdd, or unknown when sysfs does not say.",
    ("device", "type", "model"),
    "disk",
)
DISK_ROTATIONAL = _m(
    "kubev_disk_rotational",
    "gauge",
    "1 if the kernel reports the device as rotational (spinning disk).",
    ("device",),
    "disk",
)
DISK_READ_LATENCY = _m(
    "kubev_disk_read_latency_seconds",
    "gauge",
    "Mean time per read completed over the last interval (since boot on the "
    "first run; kept while no read completes).",
    ("device",),
    "disk",
)
DISK_WRITE_LATENCY = _m(
    "kubev_disk_write_latency_seconds",
    "gauge",
    "Mean time per write completed over the last interval (since boot on the "
    "first run; kept while no write completes).",
    ("device",),
    "disk",
)
DISK_READS = _m(
    "kubev_disk_reads_completed_total",
    "counter",
    "Reads completed, from /proc/diskstats.",
    ("device",),
    "disk",
)
DISK_WRITES = _m(
    "kubev_disk_writes_completed_total",
    "counter",
    "Writes completed, from /proc/diskstats.",
    ("device",),
    "disk",
)
DISK_READ_TIME = _m(
    "kubev_disk_read_time_seconds_total",
    "counter",
    "Time spent on reads, from /proc/diskstats.",
    ("device",),
    "disk",
)
DISK_WRITE_TIME = _m(
    "kubev_disk_write_time_seconds_total",
    "counter",
    "Time spent on writes, from /proc/diskstats.",
    ("device",),
    "disk",
)
FSYNC_LATENCY = _m(
    "kubev_storage_fsync_latency_seconds",
    "histogram",
    "Latency of the active probe: write a small file in the storage path and fsync it.",
    ("path",),
    "disk",
)
STORAGE_PROBE_SUCCESS = _m(
    "kubev_storage_probe_success",
    "gauge",
    "1 if the last fsync probe and statfs of the storage path succeeded.",
    ("path",),
    "disk",
)
FS_AVAIL = _m(
    "kubev_filesystem_avail_bytes",
    "gauge",
    "Bytes available to unprivileged users on the storage path's filesystem.",
    ("path",),
    "disk",
)
FS_SIZE = _m(
    "kubev_filesystem_size_bytes",
    "gauge",
    "Size of the storage path's filesystem.",
    ("path",),
    "disk",
)

# network
NET_SPEED = _m(
    "kubev_network_speed_bytes",
    "gauge",
    "Link speed in bytes per second (Mb/s x 125000). Absent when the link reports "
    "no speed; never negative.",
    ("interface",),
    "network",
)
NET_UP = _m(
    "kubev_network_up", "gauge", "1 if the interface's operstate is up.", ("interface",), "network"
)
NET_FULL_DUPLEX = _m(
    "kubev_network_full_duplex",
    "gauge",
    "1 if the link runs full duplex, 0 if half. Absent when unknown.",
    ("interface",),
    "network",
)
NET_MTU = _m("kubev_network_mtu_bytes", "gauge", "MTU of the interface.", ("interface",), "network")
NET_CARRIER_CHANGES = _m(
    "kubev_network_carrier_changes_total",
    "counter",
    "Times the link's carrier went up or down since the interface appeared.",
    ("interface",),
    "network",
)

# ports
NODE_ADDRESS_INFO = _m(
    "kubev_node_address_info",
    "gauge",
    "Always 1; the address the network probes target and where it came from "
    "(config, env, default-route, fallback).",
    ("address", "source"),
    "ports",
)
PORT_UP = _m(
    "kubev_port_up",
    "gauge",
    "1 if the port answers: a TCP connect to the node address succeeded, or a UDP socket is bound.",
    ("component", "port", "protocol"),
    "ports",
)
PORT_LISTENING = _m(
    "kubev_port_listening",
    "gauge",
    "1 if the kernel has a listening TCP or bound UDP socket on the port, on any "
    "address (sock_diag).",
    ("component", "port", "protocol"),
    "ports",
)
PORT_EXPECTED = _m(
    "kubev_port_expected",
    "gauge",
    "1 if this node's role requires the port; 0 if optional or transient (live "
    "migration): reported, never alerted.",
    ("component", "port", "protocol"),
    "ports",
)
PORT_CONNECT_DURATION = _m(
    "kubev_port_connect_duration_seconds",
    "gauge",
    "Time the last successful TCP connect took.",
    ("component", "port"),
    "ports",
)
NODEPORT_SOCKETS = _m(
    "kubev_nodeport_listening_sockets",
    "gauge",
    "Listening sockets in the NodePort range 30000-32767 (counted, not probed).",
    ("protocol",),
    "ports",
)

# ovn
OVN_UP = _m(
    "kubev_ovn_endpoint_up",
    "gauge",
    "1 if GET /metrics answered 200 with a body that parses as Prometheus text.",
    ("component", "port"),
    "ovn",
)
OVN_EXPECTED = _m(
    "kubev_ovn_endpoint_expected",
    "gauge",
    "1 if this node's role requires the endpoint (kube-ovn-cni on every node).",
    ("component", "port"),
    "ovn",
)
OVN_STATUS = _m(
    "kubev_ovn_endpoint_http_status",
    "gauge",
    "HTTP status of the last fetch; 0 when no HTTP response came.",
    ("component", "port"),
    "ovn",
)
OVN_RESPONSE_SECONDS = _m(
    "kubev_ovn_endpoint_response_seconds",
    "gauge",
    "Time from request to the whole body (or to the failure).",
    ("component", "port"),
    "ovn",
)
OVN_SAMPLES = _m(
    "kubev_ovn_endpoint_samples",
    "gauge",
    "Samples in the endpoint's last parseable answer.",
    ("component", "port"),
    "ovn",
)

# dns
DNS_SUCCESS = _m(
    "kubev_dns_resolution_success",
    "gauge",
    "1 if the name resolved through the node's resolver within the lookup timeout.",
    ("name",),
    "dns",
)
DNS_DURATION = _m(
    "kubev_dns_resolution_duration_seconds",
    "gauge",
    "Time the last lookup took (to the answer, the error or the timeout).",
    ("name",),
    "dns",
)
DNS_NODELOCAL = _m(
    "kubev_dns_nodelocal_cache_detected",
    "gauge",
    "1 if NodeLocal DNSCache (169.254.20.10) is on an interface or in resolv.conf.",
    (),
    "dns",
)
