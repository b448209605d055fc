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
    FSYNC_RECOMMENDED_SECONDS,
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
        severity="warning",
        for_="15m",
        summary=f"Disk {op} latency is high",
        description=f"{{{{ $labels.instance }}}}: {op}s on {{{{ $labels.device }}}} take "
        "{{ $value | humanizeDuration }} on average (warning above "
        f"{DISK_IO_LATENCY_WARNING_SECONDS * 1000:g}ms).",
        labels=(("direction", op),),
    )


def _filling_rule(fill: tuple[int, float], severity: str, for_: str) -> Rule:
    """Little space left (below the ratio) and, at the recent rate, none within the hours."""
    hours, ratio = fill
    avail = f"kubev_filesystem_avail_bytes{{{SELECTOR}}}"
    return Rule(
        expr=f"{avail} / kubev_filesystem_size_bytes{{{SELECTOR}}} < {ratio:g} "
        f"and predict_linear({avail}[{FILL_LOOKBACK_HOURS}h], {hours} * 3600) < 0",
        severity=severity,
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
                requirement_series(
                    Req.STORAGE_SOLID_STATE, "bool", 0, {"recommended": 1}, {"recommended": 0}
                ),
                "5m",
                (
                    fired(
                        Req.STORAGE_SOLID_STATE,
                        "bool",
                        "warning",
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
        rules=requirement_rules(
            Req.DISK_LATENCY,
            "Storage fsync latency is high",
            "the median fsync latency of the storage probe",
            " | humanizeDuration",
            for_="10m",
        ),
        meaning="Writing and fsyncing a small file in a storage path (the exporter's probe) "
        f"takes longer than the profile allows ({thresholds_text(Req.DISK_LATENCY)}).",
        impact=f"etcd becomes unstable above ~{FSYNC_RECOMMENDED_SECONDS * 1000:g} ms fsync "
        "(leader elections); VM disks stall.",
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
                requirement_series(
                    Req.DISK_LATENCY,
                    "seconds",
                    0.25,
                    {"minimum": 0.1, "recommended": 0.01},
                    {"minimum": 0, "recommended": 0},
                ),
                "15m",
                (
                    fired(
                        Req.DISK_LATENCY,
                        "seconds",
                        "critical",
                        "node-1:19100: the median fsync latency of the storage probe is 250ms; "
                        "the minimum of its profile is 100ms.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.DISK_LATENCY,
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
            _filling_rule(FILESYSTEM_FILL_WARNING, "warning", "1h"),
            _filling_rule(FILESYSTEM_FILL_CRITICAL, "critical", "30m"),
        ),
        meaning="A storage path's filesystem (VM images, kubelet) is filling and, at the rate "
        f"of the last {FILL_LOOKBACK_HOURS} hours, will be full soon (node_exporter mixin's "
        "linear prediction).",
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
                {
                    f'kubev_filesystem_avail_bytes{{{NODE1},path="/var/lib/kubelet"}}': "9000x480",
                    f'kubev_filesystem_size_bytes{{{NODE1},path="/var/lib/kubelet"}}': "10000x480",
                },
                "7h",
            ),
        ),
    ),
)
