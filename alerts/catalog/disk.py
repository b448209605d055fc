"""Alerts of the disk check (exporter/checks/disk.py): solid-state storage, the fsync probe,
I/O latency and filesystems filling up."""

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
    requirement_rules,
    requirement_series,
    thresholds_text,
)
from exporter.checks import ROWS
from exporter.spec import (
    DISK_IO_LATENCY_WARNING_SECONDS,
    FILESYSTEM_FILL_CRITICAL,
    FILESYSTEM_FILL_WARNING,
    FSYNC_CRITICAL_SECONDS,
    FSYNC_RECOMMENDED_SECONDS,
    Level,
    Req,
)

#: how far back predict_linear looks to extrapolate a filesystem's fill rate (the
#: node_exporter mixin's choice): a property of the rule, not a requirement of the spec
FILL_LOOKBACK_HOURS = 6


def _io_latency_rule(op: str) -> Rule:
    """Mean time per read or write over 5 minutes, from /proc/diskstats' counters."""
    return Rule(
        expr=f"rate(kubev_disk_{op}_time_seconds_total{{{SELECTOR}}}[5m]) / "
        f"rate(kubev_disk_{op}s_completed_total{{{SELECTOR}}}[5m]) "
        f"> {DISK_IO_LATENCY_WARNING_SECONDS:g}",
        impact=Impact.DEGRADES,
        for_="15m",
        summary=f"Disk {op} latency is high",
        description=f"{{{{ $labels.instance }}}}: {op}s on {{{{ $labels.device }}}} take "
        "{{ $value | humanizeDuration }} on average (warning above "
        f"{DISK_IO_LATENCY_WARNING_SECONDS * 1000:g}ms).",
        labels=(("direction", op),),
    )


def _filling_rule(fill: tuple[int, float], impact: Impact, for_: str) -> Rule:
    """Little space left (below the ratio) and, at the recent rate, none within the hours."""
    hours, ratio = fill
    avail = f"kubev_filesystem_avail_bytes{{{SELECTOR}}}"
    return Rule(
        expr=f"{avail} / kubev_filesystem_size_bytes{{{SELECTOR}}} < {ratio:g} "
        f"and predict_linear({avail}[{FILL_LOOKBACK_HOURS}h], {hours} * 3600) < 0",
        impact=impact,
        for_=for_,
        summary=f"A storage filesystem will be full within {hours} hours",
        description="{{ $labels.instance }}: the filesystem of {{ $labels.path }} has "
        "{{ $value | humanizePercentage }} left and fills up within "
        f"{hours} hours at the current rate.",
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevStorageNotSolidState",
        rules=requirement_rules(
            Req.STORAGE_SOLID_STATE,
            "VM storage is on a spinning disk",
            "solid-state storage (1 yes, 0 no)",
        ),
        meaning="At least one disk the exporter watches reports itself as rotational (HDD). "
        "The spec highly recommends SSD or NVMe. A virtual disk (a hypervisor's: virtio, Xen, "
        "VMware, Hyper-V) says rotational whatever backs it, so its medium is unknown and it "
        "does not fire this.",
        impact="Nothing stops: VM disks and etcd on a spinning disk see high latency and few "
        "IOPS (KubevStorageFsyncSlow measures what etcd gets). A fact of the machine: a "
        "ticket, and a verdict of the `check` command before install.",
        diagnosis=(
            '`kubev_disk_info{type="hdd"}` and `kubev_disk_rotational` for the instance; '
            "`lsblk -d -o NAME,ROTA,MODEL` on the node.",
            '`kubev_disk_info{type="virtual"}` is judged unknown, not HDD: the report names '
            "such disks; judge them by the hypervisor's storage.",
        ),
        mitigation=(
            ROWS[Req.STORAGE_SOLID_STATE].hint,
            "Move etcd's data directory to solid-state first: it is the most latency-sensitive.",
        ),
        cases=(
            Case(
                requirement_series(
                    Req.STORAGE_SOLID_STATE, "bool", 0, {"recommended": 1}, {"recommended": 0}
                ),
                "5m",
                (
                    fired(
                        Req.STORAGE_SOLID_STATE,
                        "bool",
                        Level.RECOMMENDED,
                        "node-1:19100: solid-state storage (1 yes, 0 no) is 0; the "
                        "recommendation of its profile is 1.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.STORAGE_SOLID_STATE, "bool", 1, {"recommended": 1}, {"recommended": 1}
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevStorageFsyncSlow",
        rules=(
            *requirement_rules(
                Req.DISK_LATENCY,
                "Storage fsync latency is high",
                "the fsync p99 (slowest path)",
                " | humanizeDuration",
                for_="10m",
            ),
            Rule(
                expr=f"kubev_storage_fsync_p99_seconds{{{SELECTOR}}} >= {FSYNC_CRITICAL_SECONDS:g}",
                impact=Impact.STOPS,
                for_="10m",
                summary="Storage fsync stalls for as long as etcd's election timeout",
                description="{{ $labels.instance }}: the fsync p99 of {{ $labels.path }} is "
                "{{ $value | humanizeDuration }} (paging from "
                f"{FSYNC_CRITICAL_SECONDS * 1000:g}ms: an etcd leader stalled this long on its "
                "WAL loses its followers).",
            ),
        ),
        meaning="The exporter's probe writes and fsyncs a small file in each storage path "
        "(and etcd's data directory where the node runs etcd); the 99th percentile of its "
        "latest latencies, on the slowest path, exceeds what the profile allows "
        f"({thresholds_text(Req.DISK_LATENCY)}). The critical rule pages where a path's p99 "
        f"reaches {FSYNC_CRITICAL_SECONDS * 1000:g} ms.",
        impact="Past the profile's limits (warning): etcd commits and VM disk flushes slow "
        f"down; etcd asks for a WAL fsync p99 under {FSYNC_RECOMMENDED_SECONDS * 1000:g} ms. "
        f"At {FSYNC_CRITICAL_SECONDS * 1000:g} ms and more (critical): an etcd leader blocked "
        "that long on its WAL misses its heartbeats for etcd's default election timeout, so "
        "its followers elect another: leader changes, failed API writes (etcd logs each such "
        'fsync as "slow fdatasync"); VMs whose disks are on the path stall on every flush.',
        diagnosis=(
            "`kubev_storage_fsync_p99_seconds` per path (what the rules judge); "
            "`kubev:disk_write_latency_seconds:rate5m` per device.",
            "On the node: `iostat -x 5`, `fio --name=fsync --rw=write --bs=4k --fsync=1 "
            "--size=64m --directory=/var/lib/kubelet`; etcd's log: `slow fdatasync`.",
        ),
        mitigation=(
            ROWS[Req.DISK_LATENCY].hint,
            "Give etcd's data directory a disk of its own (etcd's hardware guidance).",
        ),
        cases=(
            Case(
                requirement_series(
                    Req.DISK_LATENCY,
                    "seconds",
                    0.25,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 0, "recommended": 0},
                ),
                "10m",
                (
                    fired(
                        Req.DISK_LATENCY,
                        "seconds",
                        Level.MINIMUM,
                        "node-1:19100: the fsync p99 (slowest path) is 250ms; the minimum of "
                        "its profile is at most 100ms.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.DISK_LATENCY,
                    "seconds",
                    0.05,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 1, "recommended": 0},
                ),
                "10m",
                (
                    fired(
                        Req.DISK_LATENCY,
                        "seconds",
                        Level.RECOMMENDED,
                        "node-1:19100: the fsync p99 (slowest path) is 50ms; the "
                        "recommendation of its profile is at most 10ms.",
                    ),
                ),
            ),
            Case(
                # far beyond the minimum: the page, beside the minimum's warning (which the
                # example Alertmanager inhibits)
                requirement_series(
                    Req.DISK_LATENCY,
                    "seconds",
                    1.5,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 0, "recommended": 0},
                )
                | {
                    f'kubev_storage_fsync_p99_seconds{{{NODE1},path="/var/lib/etcd"}}': "1.5x10",
                    f'kubev_storage_fsync_p99_seconds{{{NODE1},path="/var/lib/kubelet"}}': "0.004x10",
                },
                "10m",
                (
                    fired(
                        Req.DISK_LATENCY,
                        "seconds",
                        Level.MINIMUM,
                        "node-1:19100: the fsync p99 (slowest path) is 1.5s; the minimum of "
                        "its profile is at most 100ms.",
                    ),
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "path": "/var/lib/etcd",
                        "severity": "critical",
                        "description": "node-1:19100: the fsync p99 of /var/lib/etcd is 1.5s "
                        "(paging from 1000ms: an etcd leader stalled this long on its WAL "
                        "loses its followers).",
                    },
                ),
            ),
            Case(
                requirement_series(
                    Req.DISK_LATENCY,
                    "seconds",
                    0.002,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 1, "recommended": 1},
                )
                | {f'kubev_storage_fsync_p99_seconds{{{NODE1},path="/var/lib/etcd"}}': "0.002x10"},
                "10m",
            ),
        ),
    ),
    Alert(
        name="KubevDiskLatencyHigh",
        rules=(_io_latency_rule("read"), _io_latency_rule("write")),
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
                        "instance": INSTANCE,
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
                    f'kubev_disk_write_time_seconds_total{{{NODE1},device="vdb"}}': "0+18x30",
                    f'kubev_disk_writes_completed_total{{{NODE1},device="vdb"}}': "0+600x30",
                },
                "25m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "device": "vdb",
                        "direction": "write",
                        "severity": "warning",
                        "description": "node-1:19100: writes on vdb take 30ms on average (warning "
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
        rules=(
            _filling_rule(FILESYSTEM_FILL_WARNING, Impact.DEGRADES, "1h"),
            # full before a ticket is read: VMs on it pause
            _filling_rule(FILESYSTEM_FILL_CRITICAL, Impact.STOPS, "30m"),
        ),
        meaning="A storage path's filesystem (VM images, kubelet) is filling and, at the rate "
        f"of the last {FILL_LOOKBACK_HOURS} hours, will be full soon (node_exporter mixin's "
        "linear prediction).",
        impact="Once full, writes there fail: VMs whose disks live on it pause at the write that "
        "finds no space (QEMU's default werror=enospc), and where it holds kubelet's root or "
        "images kubelet evicts pods under disk pressure before that. The critical rule pages "
        f"while {FILESYSTEM_FILL_CRITICAL[0]} hours remain, the warning "
        f"{FILESYSTEM_FILL_WARNING[0]} hours ahead.",
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
                        "instance": INSTANCE,
                        "job": JOB,
                        "path": "/var/lib/kubelet",
                        "severity": "warning",
                        "description": "node-1:19100: the filesystem of /var/lib/kubelet has 5.8% "
                        "left and fills up within 24 hours at the current rate.",
                    },
                ),
            ),
            Case(
                # 10% left, losing 5% an hour: full in 2 hours. The page, and the warning
                # beside it (which the example Alertmanager inhibits)
                {
                    f'kubev_filesystem_avail_bytes{{{NODE1},path="/var/lib/kubelet"}}': "3100-5x480",
                    f'kubev_filesystem_size_bytes{{{NODE1},path="/var/lib/kubelet"}}': "10000x480",
                },
                "7h",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "path": "/var/lib/kubelet",
                        "severity": "warning",
                        "description": "node-1:19100: the filesystem of /var/lib/kubelet has 10% "
                        "left and fills up within 24 hours at the current rate.",
                    },
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "path": "/var/lib/kubelet",
                        "severity": "critical",
                        "description": "node-1:19100: the filesystem of /var/lib/kubelet has 10% "
                        "left and fills up within 4 hours at the current rate.",
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
)
