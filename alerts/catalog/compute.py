"""Alerts of the compute check (exporter/checks/compute.py): CPU cores and memory."""

from __future__ import annotations

from alerts.catalog.common import (
    INSTANCE,
    JOB,
    NODE1,
    SELECTOR,
    Alert,
    Case,
    Impact,
    Rule,
    fired,
    minimum_alert,
    requirement_rules,
    requirement_series,
    thresholds_text,
)
from exporter.checks import ROWS
from exporter.spec import GIB, MEMORY_AVAILABLE_MIN_RATIO, MEMORY_SLACK, Level, Req

_CPU_BASELINE = minimum_alert(
    "KubevCPUBaselineMissing",
    Req.CPU_BASELINE,
    summary="The CPU lacks the x86-64-v2 baseline",
    description="the CPU lacks x86-64-v2 flags (cx16, lahf_lm, popcnt, pni, ssse3, sse4_1, "
    "sse4_2): KubeVirt's virt-handler cannot start here.",
    meaning="/proc/cpuinfo lacks one of the x86-64-v2 flags that glibc requires of the CPU "
    "(glibc sysdeps/x86/get-isa-level.h).",
    impact="KubeVirt's images are built on CentOS Stream 9, whose glibc aborts on such a CPU "
    '("Fatal glibc error: CPU does not support x86-64-v2"): virt-handler stays in '
    "Init:CrashLoopBackOff and no VM runs on the node (kubevirt#10713, kubevirt#9458).",
    diagnosis=(
        "`kubev_cpu_x86_64_level` for the instance; the report row names the missing flags.",
        "On the node: `/lib64/ld-linux-x86-64.so.2 --help | grep x86-64-v2` (supported or "
        "not); `kubectl -n kubevirt logs <virt-handler pod> -c virt-launcher`.",
    ),
    mitigation=(),
)

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevCPUCoresInsufficient",
        rules=requirement_rules(
            Req.CPU_CORES, "Too few CPU cores for the profile", "the number of logical cores"
        ),
        meaning="The node has fewer logical CPUs than its requirement profile asks for "
        f"({thresholds_text(Req.CPU_CORES)}).",
        impact="Nothing stops by itself: fewer VMs fit, and pods whose CPU requests exceed "
        "what is left stay Pending (`Insufficient cpu`); VMs and platform components that "
        "share the cores slow each other down. A fact of the machine: a ticket, and a "
        "verdict of the `check` command before install.",
        diagnosis=(
            "`kubev_cpu_logical_cores`, `kubev_cpu_physical_cores`, "
            "`kubev_cpu_headroom_cores` for the instance; `nproc` on the node.",
            "Are CPUs offline? `cat /sys/devices/system/cpu/offline`; SMT disabled?",
        ),
        mitigation=(
            ROWS[Req.CPU_CORES].hint,
            "In a VM, raise its vCPU count on the hypervisor; SMT disabled in the firmware "
            "halves the logical cores.",
        ),
        cases=(
            Case(
                requirement_series(
                    Req.CPU_CORES,
                    "cores",
                    4,
                    {"minimum": 16, "recommended": 16},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.CPU_CORES,
                        "cores",
                        Level.MINIMUM,
                        "node-1:19100: the number of logical cores is 4; the minimum of its "
                        "profile is 16.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.CPU_CORES,
                    "cores",
                    12,
                    {"minimum": 8, "recommended": 16},
                    {"minimum": 1, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.CPU_CORES,
                        "cores",
                        Level.RECOMMENDED,
                        "node-1:19100: the number of logical cores is 12; the recommendation "
                        "of its profile is 16.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.CPU_CORES,
                    "cores",
                    32,
                    {"minimum": 16, "recommended": 16},
                    {"minimum": 1, "recommended": 1},
                ),
                "5m",
            ),
            Case(
                # node-1 in two clusters: in a (testing) it has enough, in b (production) it
                # has not. One alert, for b, with b's own threshold.
                requirement_series(
                    Req.CPU_CORES,
                    "cores",
                    32,
                    {"minimum": 8, "recommended": 16},
                    {"minimum": 1, "recommended": 1},
                    cluster="a",
                )
                | requirement_series(
                    Req.CPU_CORES,
                    "cores",
                    8,
                    {"minimum": 16, "recommended": 16},
                    {"minimum": 0, "recommended": 0},
                    cluster="b",
                ),
                "5m",
                (
                    fired(
                        Req.CPU_CORES,
                        "cores",
                        Level.MINIMUM,
                        "node-1:19100: the number of logical cores is 8; the minimum of its "
                        "profile is 16.",
                        cluster="b",
                    ),
                ),
            ),
        ),
    ),
    Alert(
        name="KubevMemoryInsufficient",
        rules=requirement_rules(
            Req.MEMORY, "Too little memory for the profile", "MemTotal", " | humanize1024"
        ),
        meaning="The node's MemTotal is below its profile's threshold "
        f"({thresholds_text(Req.MEMORY)}), allowing {MEMORY_SLACK:.0%} for what firmware and "
        "kernel reserve.",
        impact="Nothing stops by itself: fewer or smaller VMs fit (pods whose memory requests "
        "exceed what is left stay Pending: `Insufficient memory`), and under memory pressure "
        "kubelet evicts pods, the platform's own included. A fact of the machine: a ticket, "
        "and a verdict of the `check` command before install.",
        diagnosis=(
            "`kubev_memory_total_bytes`, `kubev_memory_headroom_bytes` for the instance; "
            "`grep MemTotal /proc/meminfo` and `dmidecode -t memory` on the node.",
            "Is memory held back at boot (crashkernel=, mem=)? `cat /proc/cmdline`.",
        ),
        mitigation=(
            ROWS[Req.MEMORY].hint,
            "In a VM, raise its memory on the hypervisor; a large crashkernel= reservation "
            "lowers MemTotal too.",
        ),
        cases=(
            Case(
                requirement_series(
                    Req.MEMORY,
                    "bytes",
                    4 * GIB,
                    {"minimum": 8 * GIB, "recommended": 16 * GIB},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.MEMORY,
                        "bytes",
                        Level.MINIMUM,
                        "node-1:19100: MemTotal is 4Gi; the minimum of its profile is 8Gi.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.MEMORY,
                    "bytes",
                    24 * GIB,
                    {"minimum": 16 * GIB, "recommended": 32 * GIB},
                    {"minimum": 1, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.MEMORY,
                        "bytes",
                        Level.RECOMMENDED,
                        "node-1:19100: MemTotal is 24Gi; the recommendation of its profile is "
                        "32Gi.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.MEMORY,
                    "bytes",
                    24 * GIB,
                    {"minimum": 16 * GIB, "recommended": 32 * GIB},
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
                expr=f"kubev_memory_available_bytes{{{SELECTOR}}} / "
                f"kubev_memory_total_bytes{{{SELECTOR}}} < {MEMORY_AVAILABLE_MIN_RATIO:g}",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="Little memory left available on the node",
                description="{{ $labels.instance }}: only {{ $value | humanizePercentage }} of "
                f"memory is available (warning below {MEMORY_AVAILABLE_MIN_RATIO:.0%}).",
            ),
        ),
        meaning="MemAvailable has stayed below "
        f"{MEMORY_AVAILABLE_MIN_RATIO:.0%} of MemTotal for 15 minutes.",
        impact="The kernel reclaims page cache hard and may OOM-kill processes, a VM's QEMU "
        "included; kubelet evicts pods once memory.available falls below its eviction "
        "threshold. Nothing has stopped yet.",
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
                        "instance": INSTANCE,
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
    _CPU_BASELINE,
)
