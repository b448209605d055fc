"""Every alert: its rules, its runbook, and the promtool cases that prove it fires and stays
quiet. The generator (alerts/generate.py) turns this into the rule file, the runbooks and
the promtool test file; thresholds come from exporter/spec.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.checks import ROWS
from exporter.spec import (
    DISK_IO_LATENCY_WARNING_SECONDS,
    DNS_SLOW_SECONDS,
    FILESYSTEM_FILL_CRITICAL,
    FILESYSTEM_FILL_WARNING,
    GENEVE_OVERHEAD_BYTES,
    LINK_FLAP_CHANGES_15M,
    MEMORY_AVAILABLE_MIN_RATIO,
    MIN_POD_MTU_BYTES,
    PROFILES,
    Level,
    Req,
)

JOB = "kubev-node-exporter"
NODE1 = 'instance="node-1:19100",job="kubev-node-exporter"'  # labels of the test series


@dataclass(frozen=True)
class Rule:
    expr: str
    severity: str  # critical, warning, info
    for_: str
    summary: str
    description: str
    #: labels beside severity, when two rules of one alert share a severity
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Case:
    """A promtool case: input series, the time to evaluate, and what must fire there."""

    series: dict[str, str]
    eval_time: str
    fires: tuple[dict[str, str], ...] = ()  # each: labels + "description"


@dataclass(frozen=True)
class Alert:
    name: str
    rules: tuple[Rule, ...]
    meaning: str
    impact: str
    diagnosis: tuple[str, ...]
    mitigation: tuple[str, ...]
    cases: tuple[Case, ...] = field(default=())


def _levels(requirement: str) -> set[Level]:
    return {level for reqs in PROFILES.values() for level in reqs[Req(requirement)].thresholds}


def _threshold(requirement: str, level: str, fmt: str) -> str:
    return (
        '{{ with printf "kubev_requirement_threshold{instance=%q,requirement=%q,level=%q}" '
        f'$labels.instance "{requirement}" "{level}" | query }}}}'
        f"{{{{ . | first | value{fmt} }}}}{{{{ end }}}}"
    )


def requirement_rules(
    requirement: str, summary: str, what: str, fmt: str = "", for_: str = "1m"
) -> tuple[Rule, ...]:
    """Critical where the minimum fails, warning where only the recommendation does.

    $value is the observed value; the threshold comes from the node's own profile."""
    met = f'kubev_requirement_met{{requirement="{requirement}",level="%s"}} == 0'
    observed = f'kubev_requirement_observed{{requirement="{requirement}"}}'
    rules = []
    if Level.MINIMUM in _levels(requirement):
        rules.append(
            Rule(
                expr=f"{observed} and on(instance, job) ({met % 'minimum'})",
                severity="critical",
                for_=for_,
                summary=f"{summary} (below the minimum)",
                description=f"{{{{ $labels.instance }}}}: {what} is {{{{ $value{fmt} }}}}; the "
                f"minimum of its profile is {_threshold(requirement, 'minimum', fmt)}.",
            )
        )
    if Level.RECOMMENDED in _levels(requirement):
        rules.append(
            Rule(
                expr=f"({observed} and on(instance, job) ({met % 'recommended'})) "
                f"unless on(instance, job) ({met % 'minimum'})",
                severity="warning",
                for_=for_,
                summary=f"{summary} (below the recommendation)",
                description=f"{{{{ $labels.instance }}}}: {what} is {{{{ $value{fmt} }}}}; the "
                f"recommendation of its profile is {_threshold(requirement, 'recommended', fmt)}.",
            )
        )
    return tuple(rules)


def _req_series(
    requirement: str, unit: str, observed: float, thresholds: dict[str, float], met: dict[str, int]
) -> dict[str, str]:
    series = {
        f'kubev_requirement_observed{{{NODE1},requirement="{requirement}",unit="{unit}"}}': f"{observed:g}x10",
    }
    for level, value in thresholds.items():
        series[
            f'kubev_requirement_threshold{{{NODE1},requirement="{requirement}",level="{level}",'
            f'unit="{unit}"}}'
        ] = f"{value:g}x10"
    for level, ok in met.items():
        series[f'kubev_requirement_met{{{NODE1},requirement="{requirement}",level="{level}"}}'] = (
            f"{ok}x10"
        )
    return series


def _fired(requirement: str, unit: str, severity: str, description: str) -> dict[str, str]:
    return {
        "instance": "node-1:19100",
        "job": JOB,
        "requirement": requirement,
        "unit": unit,
        "severity": severity,
        "description": description,
    }


_GIB = 1024**3
_FS_WARN_H, _FS_WARN_RATIO = FILESYSTEM_FILL_WARNING
_FS_CRIT_H, _FS_CRIT_RATIO = FILESYSTEM_FILL_CRITICAL
_MIN_NODE_MTU = MIN_POD_MTU_BYTES + GENEVE_OVERHEAD_BYTES

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevKVMUnusable",
        rules=(
            Rule(
                expr='kubev_requirement_met{requirement="kvm",level="minimum"} == 0',
                severity="critical",
                for_="1m",
                summary="KVM is not usable on the node",
                description="{{ $labels.instance }}: /dev/kvm is missing or cannot create a VM "
                '(device present: {{ with printf "kubev_kvm_device_present{instance=%q}" '
                "$labels.instance | query }}{{ . | first | value }}{{ end }}). KubeVirt cannot run "
                "VMs with hardware acceleration here.",
            ),
        ),
        meaning="The exporter could not open /dev/kvm, or the device did not answer KVM's API "
        "(version 12) or refused KVM_CREATE_VM.",
        impact="virt-handler marks the node unschedulable for VMs, or VMs fall back to software "
        "emulation (useEmulation) and run many times slower. Live migration to this node fails.",
        diagnosis=(
            "Which part failed: `kubev_kvm_device_present`, `kubev_kvm_usable`, "
            "`kubev_kvm_api_version` for the instance; the exporter's log says why "
            '(`msg="cannot open /dev/kvm: ..."`).',
            "On the node: `ls -l /dev/kvm` (expect `crw-rw---- 10, 232`), `lsmod | grep kvm`, "
            "`dmesg | grep -i kvm`.",
            "Is virtualization enabled in firmware? `grep -cwE 'vmx|svm' /proc/cpuinfo`.",
            "In Kubernetes: does the node offer `devices.kubevirt.io/kvm`? "
            "`kubectl get node NODE -o jsonpath='{.status.allocatable}'`.",
        ),
        mitigation=(
            ROWS[Req.KVM].hint,
            "Enable VT-x / AMD-V in the BIOS/UEFI, then `modprobe kvm_intel` or `modprobe kvm_amd`.",
            "If the node is itself a VM, enable nested virtualization on its hypervisor.",
            "If only the exporter lacks access: run it with the KubeVirt device plugin resource "
            "or the kvm group (see the deployment docs).",
        ),
        cases=(
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="kvm",level="minimum"}}': "0x10",
                    f"kubev_kvm_device_present{{{NODE1}}}": "0x10",
                },
                "5m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "requirement": "kvm",
                        "level": "minimum",
                        "severity": "critical",
                        "description": "node-1:19100: /dev/kvm is missing or cannot create a VM "
                        "(device present: 0). KubeVirt cannot run VMs with hardware acceleration "
                        "here.",
                    },
                ),
            ),
            Case(
                {f'kubev_requirement_met{{{NODE1},requirement="kvm",level="minimum"}}': "1x10"},
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevVirtualizationExtensionsMissing",
        rules=tuple(
            Rule(
                expr=f'kubev_requirement_met{{requirement="virtualization_extensions",'
                f'level="{level}"}} == 0'
                + (
                    ""
                    if level == "minimum"
                    else " unless on(instance, job) kubev_requirement_met"
                    '{requirement="virtualization_extensions",level="minimum"} == 0'
                ),
                severity=severity,
                for_="1m",
                summary="The CPU shows no VT-x / AMD-V flag",
                description="{{ $labels.instance }}: /proc/cpuinfo has no vmx or svm flag."
                '{{ with printf "kubev_host_is_virtual_machine{instance=%q}" $labels.instance '
                "| query }}{{ if eq (. | first | value) 1.0 }} The host is itself a virtual "
                "machine: enable nested virtualization on its hypervisor, or rely on a working "
                "/dev/kvm (see KubevKVMUnusable).{{ end }}{{ end }}",
            )
            for level, severity in (("minimum", "critical"), ("recommended", "warning"))
        ),
        meaning="The CPU flags in /proc/cpuinfo include neither vmx (Intel VT-x) nor svm "
        "(AMD-V). Production profiles require them; testing profiles recommend them.",
        impact="Without the extensions KubeVirt can only emulate, which is far slower and not "
        "fit for production. A VM host may still offer a working /dev/kvm without the flag "
        "(paravirtual or hidden nested KVM): then VMs run, but the platform's requirement is "
        "not met as written.",
        diagnosis=(
            "`kubev_cpu_virtualization_extensions_present`, `kubev_host_is_virtual_machine` and "
            "`kubev_kvm_usable` for the instance.",
            "On the node: `grep -cwE 'vmx|svm' /proc/cpuinfo`, `lscpu | grep -i virtualization`.",
        ),
        mitigation=(
            ROWS[Req.VIRTUALIZATION_EXTENSIONS].hint,
            "Bare metal: enable Intel VT-x / AMD-V (SVM) in the firmware setup and reboot.",
            "VM: enable nested virtualization (for KVM hosts `kvm_intel nested=1` or "
            "`kvm_amd nested=1`; for cloud instances, a nested-capable instance type).",
        ),
        cases=(
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="minimum"}': "0x10",
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "0x10",
                    f"kubev_host_is_virtual_machine{{{NODE1}}}": "1x10",
                },
                "5m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "requirement": "virtualization_extensions",
                        "level": "minimum",
                        "severity": "critical",
                        "description": "node-1:19100: /proc/cpuinfo has no vmx or svm flag. The "
                        "host is itself a virtual machine: enable nested virtualization on its "
                        "hypervisor, or rely on a working /dev/kvm (see KubevKVMUnusable).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "1x10"
                },
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevCPUCoresInsufficient",
        rules=requirement_rules(
            "cpu_cores", "Too few CPU cores for the profile", "the number of logical cores"
        ),
        meaning="The node has fewer logical CPUs than its requirement profile asks for "
        "(testing: 8 minimum, 16 recommended; production: 16).",
        impact="VMs and platform components compete for too few cores: scheduling fails or "
        "VMs run slowly.",
        diagnosis=(
            "`kubev_cpu_logical_cores`, `kubev_cpu_physical_cores`, "
            "`kubev_cpu_headroom_cores` for the instance; `nproc` on the node.",
            "Are CPUs offline? `cat /sys/devices/system/cpu/offline`; SMT disabled?",
        ),
        mitigation=(
            ROWS[Req.CPU_CORES].hint,
            "Move the node to hardware with more cores, bring offline CPUs online, or judge it "
            "by the `testing` profile if it is not meant for production.",
        ),
        cases=(
            Case(
                _req_series(
                    "cpu_cores",
                    "cores",
                    4,
                    {"minimum": 16, "recommended": 16},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    _fired(
                        "cpu_cores",
                        "cores",
                        "critical",
                        "node-1:19100: the number of logical cores is 4; the minimum of its "
                        "profile is 16.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "cpu_cores",
                    "cores",
                    12,
                    {"minimum": 8, "recommended": 16},
                    {"minimum": 1, "recommended": 0},
                ),
                "5m",
                (
                    _fired(
                        "cpu_cores",
                        "cores",
                        "warning",
                        "node-1:19100: the number of logical cores is 12; the recommendation "
                        "of its profile is 16.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "cpu_cores",
                    "cores",
                    32,
                    {"minimum": 16, "recommended": 16},
                    {"minimum": 1, "recommended": 1},
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevMemoryInsufficient",
        rules=requirement_rules(
            "memory", "Too little memory for the profile", "MemTotal", " | humanize1024"
        ),
        meaning="The node's MemTotal is below its profile's threshold (testing: 8 GiB minimum, "
        "16 GiB recommended; production: 16 GiB minimum, 32 GiB recommended), allowing 5% for "
        "what firmware and kernel reserve.",
        impact="Fewer or smaller VMs fit; the platform's own components may be evicted under "
        "memory pressure.",
        diagnosis=(
            "`kubev_memory_total_bytes`, `kubev_memory_headroom_bytes` for the instance; "
            "`grep MemTotal /proc/meminfo` and `dmidecode -t memory` on the node.",
            "Is memory reserved by hugepages or crashkernel? `cat /proc/cmdline`.",
        ),
        mitigation=(
            ROWS[Req.MEMORY].hint,
            "Add RAM, or move the node to the `testing` profile if it is a test node.",
        ),
        cases=(
            Case(
                _req_series(
                    "memory",
                    "bytes",
                    4 * _GIB,
                    {"minimum": 8 * _GIB, "recommended": 16 * _GIB},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    _fired(
                        "memory",
                        "bytes",
                        "critical",
                        "node-1:19100: MemTotal is 4Gi; the minimum of its profile is 8Gi.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "memory",
                    "bytes",
                    24 * _GIB,
                    {"minimum": 16 * _GIB, "recommended": 32 * _GIB},
                    {"minimum": 1, "recommended": 1},
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevMemoryAvailableLow",
        rules=(
            Rule(
                expr="kubev_memory_available_bytes / kubev_memory_total_bytes "
                f"< {MEMORY_AVAILABLE_MIN_RATIO:g}",
                severity="warning",
                for_="15m",
                summary="Little memory left available on the node",
                description="{{ $labels.instance }}: only {{ $value | humanizePercentage }} of "
                f"memory is available (warning below {MEMORY_AVAILABLE_MIN_RATIO:.0%}).",
            ),
        ),
        meaning="MemAvailable has stayed below "
        f"{MEMORY_AVAILABLE_MIN_RATIO:.0%} of MemTotal for 15 minutes.",
        impact="New VMs do not fit; the kernel may start reclaiming aggressively or OOM-kill "
        "processes, VMs included.",
        diagnosis=(
            "`kubev_memory_available_bytes` over time; `free -h` and "
            "`ps -eo rss,comm --sort=-rss | head` on the node.",
            "Which pods use it: `kubectl top pods -A --sort-by=memory` on the node's pods.",
        ),
        mitigation=("Live-migrate VMs away, lower overcommit, or add memory.",),
        cases=(
            Case(
                {
                    f"kubev_memory_available_bytes{{{NODE1}}}": "500x30",
                    f"kubev_memory_total_bytes{{{NODE1}}}": "10000x30",
                },
                "20m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "severity": "warning",
                        "description": "node-1:19100: only 5% of memory is available (warning "
                        "below 10%).",
                    },
                ),
            ),
            Case(
                {
                    f"kubev_memory_available_bytes{{{NODE1}}}": "5000x30",
                    f"kubev_memory_total_bytes{{{NODE1}}}": "10000x30",
                },
                "20m",
            ),
        ),
    ),
    Alert(
        name="KubevStorageNotSolidState",
        rules=requirement_rules(
            "storage_solid_state",
            "VM storage is on a spinning disk",
            "solid-state storage (1 yes, 0 no)",
        ),
        meaning="At least one disk the exporter watches reports itself as rotational (HDD). "
        "The spec highly recommends SSD or NVMe.",
        impact="VM disks and etcd see high latency and low IOPS.",
        diagnosis=(
            '`kubev_disk_info{type="hdd"}` and `kubev_disk_rotational` for the instance; '
            "`lsblk -d -o NAME,ROTA,MODEL` on the node.",
            "Virtual disks often claim rotational=1: check what backs them.",
        ),
        mitigation=(
            ROWS[Req.STORAGE_SOLID_STATE].hint,
            "Put VM storage on SSD/NVMe; or narrow `checks.disk.devices.include` to the disks "
            "that hold VM storage if the HDD holds something else.",
        ),
        cases=(
            Case(
                _req_series(
                    "storage_solid_state", "bool", 0, {"recommended": 1}, {"recommended": 0}
                ),
                "5m",
                (
                    _fired(
                        "storage_solid_state",
                        "bool",
                        "warning",
                        "node-1:19100: solid-state storage (1 yes, 0 no) is 0; the "
                        "recommendation of its profile is 1.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "storage_solid_state", "bool", 1, {"recommended": 1}, {"recommended": 1}
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevStorageFsyncSlow",
        rules=requirement_rules(
            "disk_latency",
            "Storage fsync latency is high",
            "the median fsync latency of the storage probe",
            " | humanizeDuration",
            for_="10m",
        ),
        meaning="Writing and fsyncing a small file in a storage path (the exporter's probe) "
        "takes longer than the profile allows (10 ms recommended, 100 ms minimum).",
        impact="etcd becomes unstable above ~10 ms fsync (leader elections); VM disks stall.",
        diagnosis=(
            "`histogram_quantile(0.99, rate(kubev_storage_fsync_latency_seconds_bucket[10m]))` "
            "per path; `kubev_disk_write_latency_seconds` per device.",
            "On the node: `iostat -x 5`, `fio --name=fsync --rw=write --bs=4k --fsync=1 "
            "--size=64m --directory=/var/lib/kubelet`.",
        ),
        mitigation=(
            ROWS[Req.DISK_LATENCY].hint,
            "Move the storage path to faster media; find and stop the noisy neighbour.",
        ),
        cases=(
            Case(
                _req_series(
                    "disk_latency",
                    "seconds",
                    0.25,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 0, "recommended": 0},
                ),
                "15m",
                (
                    _fired(
                        "disk_latency",
                        "seconds",
                        "critical",
                        "node-1:19100: the median fsync latency of the storage probe is 250ms; "
                        "the minimum of its profile is 100ms.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "disk_latency",
                    "seconds",
                    0.002,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 1, "recommended": 1},
                ),
                "15m",
            ),
        ),
    ),
    Alert(
        name="KubevDiskLatencyHigh",
        rules=tuple(
            Rule(
                expr=f"rate(kubev_disk_{op}_time_seconds_total[5m]) / "
                f"rate(kubev_disk_{op}s_completed_total[5m]) > {DISK_IO_LATENCY_WARNING_SECONDS:g}",
                severity="warning",
                for_="15m",
                summary=f"Disk {op} latency is high",
                description=f"{{{{ $labels.instance }}}}: {op}s on {{{{ $labels.device }}}} take "
                "{{ $value | humanizeDuration }} on average (warning above "
                f"{DISK_IO_LATENCY_WARNING_SECONDS * 1000:g}ms).",
                labels=(("direction", op),),
            )
            for op in ("read", "write")
        ),
        meaning="The mean time per read or write of a disk, from /proc/diskstats over 5 "
        f"minutes, has stayed above {DISK_IO_LATENCY_WARNING_SECONDS * 1000:g} ms for 15 minutes.",
        impact="VMs on this disk see slow I/O; etcd and the kubelet may lag.",
        diagnosis=(
            "`rate(kubev_disk_read_time_seconds_total[5m]) / "
            "rate(kubev_disk_reads_completed_total[5m])` by device.",
            "On the node: `iostat -x 5`, `pidstat -d 5`.",
        ),
        mitigation=("Rebalance I/O-heavy VMs, check the disk's health (`smartctl -a`).",),
        cases=(
            Case(
                {
                    f'kubev_disk_read_time_seconds_total{{{NODE1},device="sda"}}': "0+30x30",
                    f'kubev_disk_reads_completed_total{{{NODE1},device="sda"}}': "0+600x30",
                    f'kubev_disk_write_time_seconds_total{{{NODE1},device="sda"}}': "0+1x30",
                    f'kubev_disk_writes_completed_total{{{NODE1},device="sda"}}': "0+600x30",
                },
                "25m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "device": "sda",
                        "direction": "read",
                        "severity": "warning",
                        "description": "node-1:19100: reads on sda take 50ms on average (warning "
                        "above 20ms).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_disk_read_time_seconds_total{{{NODE1},device="sda"}}': "0+1x30",
                    f'kubev_disk_reads_completed_total{{{NODE1},device="sda"}}': "0+600x30",
                },
                "25m",
            ),
        ),
    ),
    Alert(
        name="KubevFilesystemFillingUp",
        rules=tuple(
            Rule(
                expr=f"kubev_filesystem_avail_bytes / kubev_filesystem_size_bytes < {ratio:g} "
                f"and predict_linear(kubev_filesystem_avail_bytes[6h], {hours} * 3600) < 0",
                severity=severity,
                for_="1h" if severity == "warning" else "30m",
                summary=f"A storage filesystem will be full within {hours} hours",
                description="{{ $labels.instance }}: the filesystem of {{ $labels.path }} has "
                "{{ $value | humanizePercentage }} left and fills up within "
                f"{hours} hours at the current rate.",
            )
            for hours, ratio, severity in (
                (_FS_WARN_H, _FS_WARN_RATIO, "warning"),
                (_FS_CRIT_H, _FS_CRIT_RATIO, "critical"),
            )
        ),
        meaning="A storage path's filesystem (VM images, kubelet) is filling and, at the rate "
        "of the last 6 hours, will be full soon (node_exporter mixin's linear prediction).",
        impact="VMs pause on write errors; the kubelet evicts pods under disk pressure.",
        diagnosis=(
            "`kubev_filesystem_avail_bytes` over time per path; `df -h PATH` and "
            "`du -xsh PATH/* | sort -h | tail` on the node.",
        ),
        mitigation=("Free space (old images, snapshots), grow the volume, or move VMs away.",),
        cases=(
            Case(
                {
                    f'kubev_filesystem_avail_bytes{{{NODE1},path="/var/lib/kubelet"}}': "1000-1x480",
                    f'kubev_filesystem_size_bytes{{{NODE1},path="/var/lib/kubelet"}}': "10000x480",
                },
                "7h",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "path": "/var/lib/kubelet",
                        "severity": "warning",
                        "description": "node-1:19100: the filesystem of /var/lib/kubelet has 5.8% "
                        "left and fills up within 24 hours at the current rate.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_filesystem_avail_bytes{{{NODE1},path="/var/lib/kubelet"}}': "9000x480",
                    f'kubev_filesystem_size_bytes{{{NODE1},path="/var/lib/kubelet"}}': "10000x480",
                },
                "7h",
            ),
        ),
    ),
    Alert(
        name="KubevNICSpeedInsufficient",
        rules=requirement_rules(
            "nic_speed",
            "The node's link is slower than required",
            "the fastest link that is up",
            " | humanize",
        ),
        meaning="The fastest physical link that is up runs below 1 Gb/s (minimum) or 10 Gb/s "
        "(recommended). Speeds are in bytes per second: 1 Gb/s is 125 MB/s.",
        impact="Live migration, storage replication and pod traffic are throttled.",
        diagnosis=(
            "`kubev_network_speed_bytes` per interface; `ethtool IFACE` on the node "
            "(negotiated speed, cabling, switch port).",
        ),
        mitigation=(
            ROWS[Req.NIC_SPEED].hint,
            "Fix auto-negotiation or cabling; use a 10G NIC for VM traffic.",
        ),
        cases=(
            Case(
                _req_series(
                    "nic_speed",
                    "bytes/s",
                    12.5e6,
                    {"minimum": 125e6, "recommended": 1.25e9},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    _fired(
                        "nic_speed",
                        "bytes/s",
                        "critical",
                        "node-1:19100: the fastest link that is up is 12.5M; the minimum of "
                        "its profile is 125M.",
                    ),
                ),
            ),
            Case(
                _req_series(
                    "nic_speed",
                    "bytes/s",
                    1.25e9,
                    {"minimum": 125e6, "recommended": 1.25e9},
                    {"minimum": 1, "recommended": 1},
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevNetworkLinkDown",
        rules=(
            Rule(
                expr="kubev_network_up == 0 and on(instance, job, interface) "
                "max_over_time(kubev_network_up[1h]) == 1",
                severity="warning",
                for_="2m",
                summary="A network link went down",
                description="{{ $labels.instance }}: {{ $labels.interface }} was up within the "
                "last hour and is down now.",
            ),
        ),
        meaning="A physical interface that was up in the last hour is not up now. Links that "
        "were never up (unused ports) do not alert.",
        impact="Traffic on that link stops; bonds lose redundancy.",
        diagnosis=("`ip link show IFACE`, `ethtool IFACE`, `dmesg | grep -i link` on the node.",),
        mitigation=("Check cable, switch port and NIC; reseat or replace.",),
        cases=(
            Case(
                {f'kubev_network_up{{{NODE1},interface="eno1"}}': "1x20 0x20"},
                "35m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "interface": "eno1",
                        "severity": "warning",
                        "description": "node-1:19100: eno1 was up within the last hour and is down "
                        "now.",
                    },
                ),
            ),
            Case({f'kubev_network_up{{{NODE1},interface="eno2"}}': "0x40"}, "35m"),
        ),
    ),
    Alert(
        name="KubevNetworkLinkFlapping",
        rules=(
            Rule(
                expr=f"increase(kubev_network_carrier_changes_total[15m]) > {LINK_FLAP_CHANGES_15M}",
                severity="warning",
                for_="5m",
                summary="A network link is flapping",
                description="{{ $labels.instance }}: {{ $labels.interface }} changed carrier "
                '{{ $value | printf "%.0f" }} times in 15 minutes.',
            ),
        ),
        meaning=f"The carrier of a link went up or down more than {LINK_FLAP_CHANGES_15M} "
        "times in 15 minutes.",
        impact="Connections reset; OVN tunnels and live migrations fail intermittently.",
        diagnosis=("`kubev_network_carrier_changes_total`; `dmesg -T | grep -i 'link is'`.",),
        mitigation=("Replace the cable or transceiver; check the switch port's error counters.",),
        cases=(
            Case(
                {f'kubev_network_carrier_changes_total{{{NODE1},interface="eno1"}}': "0+1x30"},
                "25m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "interface": "eno1",
                        "severity": "warning",
                        "description": "node-1:19100: eno1 changed carrier 15 times in 15 minutes.",
                    },
                ),
            ),
            Case(
                {f'kubev_network_carrier_changes_total{{{NODE1},interface="eno1"}}': "3x30"}, "25m"
            ),
        ),
    ),
    Alert(
        name="KubevNetworkMTUTooSmall",
        rules=(
            Rule(
                expr=f"kubev_network_mtu_bytes < {_MIN_NODE_MTU} and on(instance, job, interface) "
                "kubev_network_up == 1",
                severity="warning",
                for_="5m",
                summary="The link MTU leaves too little for Geneve",
                description="{{ $labels.instance }}: {{ $labels.interface }} has MTU {{ $value }}; "
                f"Kube-OVN reserves {GENEVE_OVERHEAD_BYTES} bytes for Geneve, so pods get less than "
                f"{MIN_POD_MTU_BYTES} (node MTU {_MIN_NODE_MTU} or more recommended).",
            ),
        ),
        meaning=f"An up physical link has an MTU below {_MIN_NODE_MTU} bytes.",
        impact="Pod MTU shrinks below 1400; large packets fragment or drop (PMTU black holes).",
        diagnosis=(
            "`ip link show IFACE`; Kube-OVN's pod MTU: `kubectl -n kube-system get "
            "ds kube-ovn-cni -o yaml | grep -i mtu`.",
        ),
        mitigation=(
            "Raise the NIC and switch MTU (1500, or jumbo frames), or set Kube-OVN's "
            "`--mtu` explicitly and accept the smaller pod MTU.",
        ),
        cases=(
            Case(
                {
                    f'kubev_network_mtu_bytes{{{NODE1},interface="eth0"}}': "1400x10",
                    f'kubev_network_up{{{NODE1},interface="eth0"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "interface": "eth0",
                        "severity": "warning",
                        "description": "node-1:19100: eth0 has MTU 1400; Kube-OVN reserves 100 bytes "
                        "for Geneve, so pods get less than 1400 (node MTU 1500 or more "
                        "recommended).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_network_mtu_bytes{{{NODE1},interface="eth0"}}': "9000x10",
                    f'kubev_network_up{{{NODE1},interface="eth0"}}': "1x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevPortDown",
        rules=(
            Rule(
                expr='kubev_port_up{component!="geneve"} == 0 and on(instance, job, component, '
                "port, protocol) kubev_port_expected == 1",
                severity="critical",
                for_="5m",
                summary="A platform port is down",
                description="{{ $labels.instance }}: {{ $labels.component }} does not answer on "
                "{{ $labels.port }}/{{ $labels.protocol }}, which this node's role requires.",
            ),
        ),
        meaning="A TCP port the node's role requires (the spec's port table) refused or did not "
        "answer a connect to the node address.",
        impact="The component behind it is down or unreachable: API, etcd, kubelet, OVN "
        "databases or metrics, depending on the port.",
        diagnosis=(
            "`kubev_port_up`, `kubev_port_listening` for the port: listening but not up means "
            "it binds another address or a firewall drops it.",
            "On the node: `ss -ltnp 'sport = :PORT'`, `nc -vz NODE_IP PORT`, the component's "
            "logs (`crictl ps`, `crictl logs`).",
        ),
        mitigation=(
            ROWS[Req.PORTS].hint,
            "Restart or fix the component; open the port in host and network "
            "firewalls; if this node's role does not need it, set the role or "
            "`checks.ports.expectations`.",
        ),
        cases=(
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="etcd",port="2379",protocol="tcp"}}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="etcd",port="2379",protocol="tcp"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "component": "etcd",
                        "port": "2379",
                        "protocol": "tcp",
                        "severity": "critical",
                        "description": "node-1:19100: etcd does not answer on 2379/tcp, which this "
                        "node's role requires.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="live-migration",port="61000",'
                    'protocol="tcp"}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="live-migration",port="61000",'
                    'protocol="tcp"}': "0x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevGeneveNotBound",
        rules=(
            Rule(
                expr='kubev_port_up{component="geneve"} == 0 and on(instance, job, component, '
                "port, protocol) kubev_port_expected == 1",
                severity="critical",
                for_="5m",
                summary="No socket is bound to Geneve's UDP port",
                description="{{ $labels.instance }}: nothing is bound to {{ $labels.port }}/udp: "
                "the OVN overlay cannot reach this node.",
            ),
        ),
        meaning="No UDP socket is bound to 6081 (Geneve), as the kernel reports through sock_diag.",
        impact="Pods on this node cannot talk to pods on other nodes over the overlay.",
        diagnosis=(
            "`ss -lun 'sport = :6081'`, `ovs-vsctl show` (geneve ports), "
            "`kubectl -n kube-system logs ds/ovs-ovn`.",
        ),
        mitigation=(
            "Restart ovs-ovn / kube-ovn-cni on the node; check that the Geneve kernel "
            "module loads (`modprobe geneve`).",
        ),
        cases=(
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "component": "geneve",
                        "port": "6081",
                        "protocol": "udp",
                        "severity": "critical",
                        "description": "node-1:19100: nothing is bound to 6081/udp: the OVN overlay "
                        "cannot reach this node.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                    f'kubev_port_expected{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevOVNEndpointDown",
        rules=(
            Rule(
                expr="kubev_ovn_endpoint_up == 0 and on(instance, job, component, port) "
                "(kubev_ovn_endpoint_expected == 1 or kubev_ovn_endpoint_http_status > 0)",
                severity="critical",
                for_="5m",
                summary="A Kube-OVN metrics endpoint does not serve metrics",
                description="{{ $labels.instance }}: {{ $labels.component }} on port "
                "{{ $labels.port }} does not serve parseable metrics (HTTP status "
                '{{ with printf "kubev_ovn_endpoint_http_status{instance=%q,port=%q}" '
                "$labels.instance $labels.port | query }}{{ . | first | value }}{{ end }}).",
            ),
        ),
        meaning="GET /metrics on a Kube-OVN endpoint (10660 controller, 10661 monitor, 10665 "
        "cni) did not return 200 with Prometheus text: required endpoints always count, "
        "optional ones once they answer at all.",
        impact="Kube-OVN's own monitoring goes blind; a failing kube-ovn-cni usually means pod "
        "networking on the node is broken too.",
        diagnosis=(
            "`kubev_ovn_endpoint_http_status` (0: no HTTP answer), the exporter's log line for "
            "the endpoint.",
            "`curl -sk https://NODE_IP:10665/metrics | head`; `kubectl -n kube-system get pods "
            "-o wide | grep kube-ovn`.",
        ),
        mitigation=(
            ROWS[Req.OVN_ENDPOINTS].hint,
            "Restart the failing Kube-OVN pod; with secure serving, give the exporter "
            "a bearer token and CA (`checks.ovn`).",
        ),
        cases=(
            Case(
                {
                    f'kubev_ovn_endpoint_up{{{NODE1},component="kube-ovn-cni",port="10665"}}': "0x10",
                    f'kubev_ovn_endpoint_expected{{{NODE1},component="kube-ovn-cni",port="10665"}}': "1x10",
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="kube-ovn-cni",port="10665"}}': "500x10",
                },
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "component": "kube-ovn-cni",
                        "port": "10665",
                        "severity": "critical",
                        "description": "node-1:19100: kube-ovn-cni on port 10665 does not serve "
                        "parseable metrics (HTTP status 500).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_ovn_endpoint_up{{{NODE1},component="kube-ovn-monitor",port="10661"}}': "0x10",
                    f'kubev_ovn_endpoint_expected{{{NODE1},component="kube-ovn-monitor",'
                    'port="10661"}': "0x10",
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="kube-ovn-monitor",'
                    'port="10661"}': "0x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevDNSResolutionFailing",
        rules=(
            Rule(
                expr="kubev_dns_resolution_success == 0",
                severity="critical",
                for_="5m",
                summary="DNS resolution fails on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} does not resolve through "
                "the node's resolver.",
            ),
        ),
        meaning="A configured name did not resolve (NXDOMAIN, SERVFAIL or no answer within "
        "the lookup timeout) for 5 minutes.",
        impact="Nodes cannot find each other or external services: image pulls, API access "
        "and VM networking break.",
        diagnosis=(
            "The exporter's log says why; on the node: `getent hosts NAME`, "
            "`cat /etc/resolv.conf`, `dig NAME @NAMESERVER`.",
        ),
        mitigation=(
            ROWS[Req.DNS].hint,
            "Fix the resolver configuration or the DNS server; add the name to DNS.",
        ),
        cases=(
            Case(
                {f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "0x10"},
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "name": "api.example.com",
                        "severity": "critical",
                        "description": "node-1:19100: api.example.com does not resolve through the "
                        "node's resolver.",
                    },
                ),
            ),
            Case({f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x10"}, "8m"),
        ),
    ),
    Alert(
        name="KubevDNSResolutionSlow",
        rules=(
            Rule(
                expr=f"kubev_dns_resolution_duration_seconds > {DNS_SLOW_SECONDS:g} and "
                "on(instance, job, name) kubev_dns_resolution_success == 1",
                severity="warning",
                for_="15m",
                summary="DNS resolution is slow on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} takes "
                "{{ $value | humanizeDuration }} to resolve (warning above "
                f"{DNS_SLOW_SECONDS * 1000:g}ms).",
            ),
        ),
        meaning=f"A name resolves, but slower than {DNS_SLOW_SECONDS * 1000:g} ms, for 15 minutes.",
        impact="Every new connection waits; timeouts cascade in components with short deadlines.",
        diagnosis=(
            "`dig NAME` timing on the node; is the first nameserver in resolv.conf down "
            "(each lookup waits for its timeout before the next)?",
        ),
        mitigation=("Remove dead nameservers, add a local cache, fix the upstream resolver.",),
        cases=(
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com"}}': "2x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x30",
                },
                "20m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "name": "api.example.com",
                        "severity": "warning",
                        "description": "node-1:19100: api.example.com takes 2s to resolve (warning "
                        "above 500ms).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com"}}': "0.01x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x30",
                },
                "20m",
            ),
        ),
    ),
    Alert(
        name="KubevNodeLocalDNSCacheDetected",
        rules=(
            Rule(
                expr="kubev_dns_nodelocal_cache_detected == 1",
                severity="info",
                for_="1h",
                summary="NodeLocal DNSCache runs on a node that hosts VMs",
                description="{{ $labels.instance }}: NodeLocal DNSCache (169.254.20.10) is in use. "
                "Guest clusters in VMs that run it too need their dnsConfig/dnsPolicy adjusted.",
            ),
        ),
        meaning="169.254.20.10, NodeLocal DNSCache's default address, is configured on the "
        "node or used as its nameserver.",
        impact="None by itself. Guest Kubernetes clusters in KubeVirt VMs that also run "
        "NodeLocal DNSCache on the same address can get answers from the wrong cluster.",
        diagnosis=(
            "`ip addr | grep 169.254.20.10`; in a guest VM: `cat /etc/resolv.conf` of a "
            "pod, `nslookup kubernetes.default`.",
        ),
        mitigation=(
            "Give guest VMs `dnsPolicy: None` with an explicit `dnsConfig`, or run "
            "one NodeLocal DNSCache on another address (docs/dns.md).",
        ),
        cases=(
            Case(
                {f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "1x70"},
                "65m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "severity": "info",
                        "description": "node-1:19100: NodeLocal DNSCache (169.254.20.10) is in use. "
                        "Guest clusters in VMs that run it too need their dnsConfig/dnsPolicy "
                        "adjusted.",
                    },
                ),
            ),
            Case({f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "0x70"}, "65m"),
        ),
    ),
    Alert(
        name="KubevCheckFailing",
        rules=(
            Rule(
                expr="kubev_check_success == 0",
                severity="warning",
                for_="15m",
                summary="An exporter check keeps failing",
                description="{{ $labels.instance }}: the {{ $labels.check }} check has failed for "
                "15 minutes; its requirements are unknown meanwhile.",
            ),
        ),
        meaning="One of the exporter's checks could not run (a file missing or garbled, a "
        "timeout) for 15 minutes. Its metrics and verdicts are absent meanwhile.",
        impact="The requirements that check covers are not watched: a failure there would go "
        "unnoticed.",
        diagnosis=(
            'The exporter\'s log: `msg="check failed" check=NAME err=...` names the file '
            "or the timeout; `kubev_check_runs_total` by result.",
        ),
        mitigation=(
            "Fix what the error names (mounts of /proc, /sys, /dev into the pod, "
            "permissions), or raise the check's timeout.",
        ),
        cases=(
            Case(
                {f'kubev_check_success{{{NODE1},check="disk"}}': "0x20"},
                "18m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "check": "disk",
                        "severity": "warning",
                        "description": "node-1:19100: the disk check has failed for 15 minutes; its "
                        "requirements are unknown meanwhile.",
                    },
                ),
            ),
            Case({f'kubev_check_success{{{NODE1},check="disk"}}': "1x20"}, "18m"),
        ),
    ),
    Alert(
        name="KubevExporterDown",
        rules=(
            Rule(
                expr=f'up{{job="{JOB}"}} == 0',
                severity="critical",
                for_="5m",
                summary="The node's exporter cannot be scraped",
                description="{{ $labels.instance }}: Prometheus cannot scrape "
                "kubev-node-exporter; the node's requirements are not watched.",
            ),
        ),
        meaning="Prometheus cannot scrape an exporter (its target is down).",
        impact="Nothing on those nodes is watched; every other alert of this pack is silent there.",
        diagnosis=(
            "Prometheus's Targets page for the job; on the node: `curl -s "
            "NODE:19100/-/healthy`; `kubectl -n monitoring get ds,pods -l "
            "app.kubernetes.io/name=kubev-node-exporter`.",
        ),
        mitigation=(
            "Restart the pod; check the ServiceMonitor/scrape config and network "
            "policies between Prometheus and port 19100.",
        ),
        cases=(
            Case(
                {f"up{{{NODE1}}}": "0x10"},
                "8m",
                (
                    {
                        "instance": "node-1:19100",
                        "job": JOB,
                        "severity": "critical",
                        "description": "node-1:19100: Prometheus cannot scrape kubev-node-exporter; "
                        "the node's requirements are not watched.",
                    },
                ),
            ),
            Case({f"up{{{NODE1}}}": "1x20"}, "18m"),
        ),
    ),
    Alert(
        name="KubevExporterAbsent",
        rules=(
            Rule(
                expr=f'absent(up{{job="{JOB}"}})',
                severity="critical",
                for_="15m",
                summary="No kubev-node-exporter target at all",
                description=f"Prometheus has no target of job {JOB}: no node's requirements "
                "are watched.",
            ),
        ),
        meaning=f"Prometheus has no target of job `{JOB}` at all.",
        impact="Nothing is watched on any node; every other alert of this pack is silent.",
        diagnosis=(
            "Prometheus's Targets and Service Discovery pages; `kubectl get "
            "servicemonitor -A | grep kubev`; the scrape config's job name.",
        ),
        mitigation=(
            "Deploy the DaemonSet and its ServiceMonitor, or fix the job name in the "
            'scrape config (the rules expect `job="kubev-node-exporter"`).',
        ),
        cases=(
            Case(
                {'up{instance="other:9100",job="other"}': "1x20"},
                "18m",
                (
                    {
                        "job": JOB,
                        "severity": "critical",
                        "description": "Prometheus has no target of job kubev-node-exporter: no "
                        "node's requirements are watched.",
                    },
                ),
            ),
            Case({f"up{{{NODE1}}}": "1x20"}, "18m"),
        ),
    ),
)
