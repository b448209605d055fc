"""Disks and storage: device type, I/O latency from /proc/diskstats, an active fsync probe.

The diskstats counters say how the kernel's I/O has gone; the probe says how long a small
synchronous write takes right now in the paths VMs, the kubelet and etcd use, which is
what etcd and VM disks feel. Its verdict takes the p99 of a rolling window of samples per
path, as etcd's own guidance is stated (WAL fsync p99 under 10 ms).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from exporter import names
from exporter.blocking import BlockingGate
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.checks.blockdev import BlockDevices
from exporter.checks.fsyncprobe import PROBE_DIR, ProbeRefused, fsync_probe
from exporter.fsread import read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, Histogram, OutputBuilder
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    ConfigError,
    NameFilter,
    key_of,
    parse_abs_paths,
    parse_optional_abs_path,
    parse_positive_int,
    section,
    setting,
)
from exporter.spec import (
    FSYNC_CRITICAL_SECONDS,
    FSYNC_MINIMUM_SECONDS,
    FSYNC_RECOMMENDED_SECONDS,
    Req,
    Role,
)
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

#: Bucket bounds include the spec's latency thresholds so alerts can use them exactly.
FSYNC_BUCKETS: tuple[float, ...] = tuple(
    sorted(
        {0.0005, 0.001, 0.0025, 0.005, 0.025, 0.05, 0.25, 0.5, 1.0, 2.5}
        | {FSYNC_RECOMMENDED_SECONDS, FSYNC_MINIMUM_SECONDS, FSYNC_CRITICAL_SECONDS}
    )
)
#: the quantile the latency verdict judges
FSYNC_QUANTILE = 0.99
#: kubeadm's etcd data directory (kubernetes/kubernetes
#: cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go: DefaultEtcdDataDir = "/var/lib/etcd")
ETCD_DATA_DIR = "/var/lib/etcd"
#: roles whose nodes run etcd (kubeadm's stacked etcd runs on every control-plane node)
ETCD_ROLES = frozenset({Role.SINGLE_NODE, Role.CONTROL_PLANE})


METRICS = MetricGroup("disk")
DISK_INFO = METRICS.gauge(
    "kubev_disk_info",
    "Always 1 per whole block device. type is nvme, ssd, hdd, virtual (a hypervisor's disk: "
    "virtio, Xen, VMware, Hyper-V, QEMU, or a device-mapper or md device on one; it says "
    "rotational whatever backs it, so its medium is unknown), or unknown when sysfs does not "
    "say. In every disk metric, the device label writes a byte of the name that is not UTF-8 "
    "as \\xNN.",
    ("device", "type", "model"),
)
DISK_ROTATIONAL = METRICS.gauge(
    "kubev_disk_rotational",
    "1 if the kernel reports the device as rotational (spinning disk). A virtual disk "
    "(kubev_disk_info type virtual) reports 1 whatever backs it.",
    ("device",),
)
DISK_READ_LATENCY = METRICS.gauge(
    "kubev_disk_read_latency_seconds",
    "Mean time per read completed over the last interval (since boot on the first run; kept "
    "while no read completes).",
    ("device",),
)
DISK_WRITE_LATENCY = METRICS.gauge(
    "kubev_disk_write_latency_seconds",
    "Mean time per write completed over the last interval (since boot on the first run; kept "
    "while no write completes).",
    ("device",),
)
DISK_READS = METRICS.counter(
    "kubev_disk_reads_completed_total",
    "Reads completed, from /proc/diskstats.",
    ("device",),
)
DISK_WRITES = METRICS.counter(
    "kubev_disk_writes_completed_total",
    "Writes completed, from /proc/diskstats.",
    ("device",),
)
DISK_READ_TIME = METRICS.counter(
    "kubev_disk_read_time_seconds_total",
    "Time spent on reads, from /proc/diskstats.",
    ("device",),
)
DISK_WRITE_TIME = METRICS.counter(
    "kubev_disk_write_time_seconds_total",
    "Time spent on writes, from /proc/diskstats.",
    ("device",),
)
FSYNC_LATENCY = METRICS.histogram(
    "kubev_storage_fsync_latency_seconds",
    "Latency of the active probe: write 4 KiB to a file in a directory of the exporter's own "
    f"in the storage path ({PROBE_DIR}, removed after each probe) and fsync it.",
    ("path",),
)
FSYNC_P99 = METRICS.gauge(
    "kubev_storage_fsync_p99_seconds",
    "99th percentile (nearest rank) of the path's latest fsync probe latencies "
    "(checks.disk.fsync_window of them); absent until the window holds "
    "checks.disk.fsync_window_min, and after a run whose probe failed. The disk_latency "
    "verdict judges the slowest path's.",
    ("path",),
)
STORAGE_PROBE_SUCCESS = METRICS.gauge(
    "kubev_storage_probe_success",
    "1 if the last fsync probe and statfs of the storage path succeeded (storage_paths, and "
    "etcd's data directory where the node runs etcd).",
    ("path",),
)
FS_AVAIL = METRICS.gauge(
    "kubev_filesystem_avail_bytes",
    "Bytes available to unprivileged users on the storage path's filesystem.",
    ("path",),
)
FS_SIZE = METRICS.gauge(
    "kubev_filesystem_size_bytes",
    "Size of the storage path's filesystem.",
    ("path",),
)


@dataclass(frozen=True, kw_only=True)
class DiskSettings(CheckSettings):
    devices: NameFilter = section(
        NameFilter,
        "whole block devices to report",
        NameFilter(exclude="^(loop|ram|zram|fd|sr)"),
    )
    storage_paths: tuple[str, ...] = setting(
        ("/var/lib/kubelet",),
        parse=parse_abs_paths,
        doc="fsync probe + filesystem size, under --path.rootfs",
    )
    etcd_data_dir: str | None = setting(
        ETCD_DATA_DIR,
        parse=parse_optional_abs_path,
        doc="probed beside storage_paths on single-node and control-plane roles, where it "
        "exists under --path.rootfs; null: never",
    )
    fsync_samples: int = setting(
        3,
        parse=parse_positive_int,
        doc="fsyncs per path per run (more while the window holds fewer than fsync_window_min)",
    )
    fsync_window: int = setting(
        100,
        parse=parse_positive_int,
        doc="latest fsync latencies kept per path; the verdict takes their p99",
    )
    fsync_window_min: int = setting(
        20,
        parse=parse_positive_int,
        doc="samples a window needs before its p99 is judged; a path's first run takes as many, "
        "so one run (the check command) judges",
    )

    def settle(self, given: set[str], where: str) -> CheckSettings:
        settled = super().settle(given, where)
        assert isinstance(settled, DiskSettings)
        if settled.fsync_window_min > settled.fsync_window:
            raise ConfigError(
                f"{key_of(where, 'fsync_window_min')}: must not exceed fsync_window "
                f"({settled.fsync_window}), got {settled.fsync_window_min}"
            )
        return settled


@dataclass(frozen=True)
class DiskCounters:
    reads: int
    read_ms: int
    writes: int
    write_ms: int


def parse_diskstats(text: str, where: str) -> tuple[dict[str, DiskCounters], list[str]]:
    """Counters per device, and a note for every line that does not parse."""
    devices: dict[str, DiskCounters] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) < 14:
                raise ValueError
            name = fields[2]
            devices[name] = DiskCounters(
                reads=int(fields[3]),
                read_ms=int(fields[6]),
                writes=int(fields[7]),
                write_ms=int(fields[10]),
            )
        except ValueError:
            problems.append(f"{where}: line {number} does not parse, skipped")
    if not devices and problems:
        raise CheckError(f"{where}: no line parses")
    return devices, problems


@dataclass(frozen=True)
class PathProbe:
    latencies: list[float] | None
    total_bytes: int | None
    avail_bytes: int | None
    problem: str | None
    #: an optional path (etcd's data directory) that this node does not have
    absent: bool = False


def probe_path(directory: str, samples: int, deadline: float, optional: bool = False) -> PathProbe:
    """fsync probe and statfs of one storage path; each may fail on its own (blocking)."""
    if optional and not os.path.isdir(directory):
        return PathProbe(None, None, None, None, absent=True)
    latencies = total = avail = None
    problems = []
    try:
        latencies = fsync_probe(directory, samples, deadline)
    except ProbeRefused as e:
        problems.append(f"fsync probe failed: {e}")
    except OSError as e:
        problems.append(f"fsync probe failed: {e.strerror or e}")
    try:
        usage = psutil.disk_usage(directory)
        total, avail = usage.total, usage.free
    except OSError as e:
        problems.append(f"statfs failed: {e.strerror or e}")
    return PathProbe(latencies, total, avail, "; ".join(problems) or None)


def nearest_rank(values: Iterable[float], quantile: float) -> float:
    """The smallest sample at or above the quantile (always a value that was measured)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def solid_state(kinds: Iterable[str]) -> bool | None:
    """Any spinning disk fails; a virtual or unknown one leaves the medium unknown."""
    found = set(kinds)
    if not found:
        return None
    if "hdd" in found:
        return False
    if found & {"virtual", "unknown"}:
        return None
    return True


#: /proc/diskstats prints the time fields as 32-bit milliseconds: they wrap after ~49.7 days
MS_WRAP = 2**32


class DiskCheck(Check[DiskSettings]):
    """Devices (diskstats, sysfs) and each storage path run in threads of their own, so a
    hung fsync on one mount costs that path its probe, not the device"""

    name = "disk"
    area = ("storage", "Storage")
    settings_type = DiskSettings
    defaults = DiskSettings(interval=15.0, timeout=10.0, max_items=256)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.STORAGE_SOLID_STATE,
            "KubevStorageNotSolidState",
            "Put VM storage on SSD or NVMe, or narrow "
            "checks.disk.devices.include to the VM storage disks.",
        ),
        RequirementRow(
            Req.DISK_LATENCY,
            "KubevStorageFsyncSlow",
            "Move the storage path to faster media and look for I/O-heavy neighbours "
            "(iostat -x 5).",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        if requirement is Req.STORAGE_SOLID_STATE:
            hdd = [s.labels[0] for s in samples_of(output, DISK_INFO) if s.labels[1] == "hdd"]
            if hdd:
                return f"rotational: {', '.join(hdd)}"
            kinds = {s.labels[1] for s in samples_of(output, DISK_INFO)}
            virtual = [
                s.labels[0] for s in samples_of(output, DISK_INFO) if s.labels[1] == "virtual"
            ]
            if outcome is Outcome.UNKNOWN and virtual and "unknown" not in kinds:
                return (
                    f"virtual disks, medium unknown (they report rotational whatever backs "
                    f"them): {', '.join(virtual)}; judge by the hypervisor's storage, or narrow "
                    "checks.disk.devices.include to disks that are not virtual"
                )
        if requirement is Req.DISK_LATENCY and outcome in (Outcome.FAIL, Outcome.WARN):
            slowest = max(samples_of(output, FSYNC_P99), key=lambda s: s.value, default=None)
            if slowest is not None:
                return f"fsync p99 {slowest.value * 1000:.3g} ms in {slowest.labels[0]}"
        return super().detail(requirement, output, outcome)

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._previous: dict[str, DiskCounters] = {}
        self._latency: dict[tuple[str, str], float] = {}
        self._histograms: dict[str, Histogram] = {}
        self._windows: dict[str, deque[float]] = {}
        self._path_gates: dict[str, BlockingGate] = {}

    def targets(self) -> list[tuple[str, bool]]:
        """The paths to probe, each with whether it may be absent: the storage paths, and
        etcd's data directory on the roles that run etcd."""
        settings = self.settings
        targets = [(path, False) for path in settings.storage_paths]
        etcd = settings.etcd_data_dir
        listed = {os.path.normpath(p) for p in settings.storage_paths}
        if etcd and self.config.role in ETCD_ROLES and os.path.normpath(etcd) not in listed:
            targets.append((etcd, True))
        return targets

    async def run(self) -> CheckOutput:
        out = self.output()
        devices = asyncio.ensure_future(self.gate.run(lambda: self._devices(out.child())))
        targets = self.targets()
        try:
            probes = await asyncio.gather(*(self._probe(p, optional) for p, optional in targets))
        finally:
            out.merge(await devices)
        p99s: list[float | None] = []
        for (host_path, etcd), probe in zip(targets, probes, strict=True):
            if probe.absent:
                out.note(
                    f"etcd data directory {host_path} is not on this node (under "
                    "--path.rootfs): not probed"
                )
                continue
            p99s.append(self._report_path(out, host_path, probe))
            if etcd and probe.latencies is None:
                out.note(
                    f"etcd data directory {host_path}: the probe needs it writable (mounted as "
                    "the storage paths are), or set checks.disk.etcd_data_dir: null",
                    Req.DISK_LATENCY,
                )
        # one path without a judged p99 leaves the verdict unknown, not judged on the rest
        known = [p for p in p99s if p is not None]
        out.observe(Req.DISK_LATENCY, max(known) if known and len(known) == len(p99s) else None)
        return out.build()

    async def _probe(self, host_path: str, optional: bool) -> PathProbe:
        local = str(self.paths.root(host_path))
        gate = self._path_gates.setdefault(host_path, BlockingGate(f"disk-{host_path}", timed=True))
        settings = self.settings
        held = len(self._windows.get(host_path, ()))
        # a path's first runs fill the window to its minimum: one run is enough to judge
        samples = max(settings.fsync_samples, settings.fsync_window_min - held)
        budget = settings.timeout * 0.8
        # no sample starts after half the budget: a slow disk yields fewer samples, not none
        deadline = time.monotonic() + budget / 2
        try:
            async with asyncio.timeout(budget):
                return await gate.run(lambda: probe_path(local, samples, deadline, optional))
        except TimeoutError:
            return PathProbe(None, None, None, f"no answer within {budget:.3g}s (hung mount?)")
        except CheckError as e:  # still blocked since an earlier run
            return PathProbe(None, None, None, str(e))

    def _report_path(self, out: OutputBuilder, host_path: str, probe: PathProbe) -> float | None:
        """The path's samples and sizes; its p99 when this run measured it and the window
        holds enough samples, else None."""
        settings = self.settings
        histogram = self._histograms.setdefault(host_path, Histogram(FSYNC_BUCKETS))
        window = self._windows.setdefault(host_path, deque(maxlen=settings.fsync_window))
        for seconds in probe.latencies or ():
            histogram.observe(seconds)
            window.append(seconds)
        if probe.problem:
            out.note(f"storage path {host_path}: {probe.problem}", Req.DISK_LATENCY)
        out.add(STORAGE_PROBE_SUCCESS, probe.problem is None, path=host_path)
        if probe.total_bytes is not None and probe.avail_bytes is not None:
            out.add(FS_SIZE, probe.total_bytes, path=host_path)
            out.add(FS_AVAIL, probe.avail_bytes, path=host_path)
        if histogram.count:
            out.add_histogram(
                FSYNC_LATENCY,
                histogram.cumulative(),
                histogram.total,
                histogram.count,
                path=host_path,
            )
        if not probe.latencies:
            return None
        if len(window) < settings.fsync_window_min:
            out.note(
                f"storage path {host_path}: {len(window)} of {settings.fsync_window_min} fsync "
                "samples: the p99 is judged once the window holds enough (a slow disk gives "
                "fewer per run)",
                Req.DISK_LATENCY,
            )
            return None
        p99 = nearest_rank(window, FSYNC_QUANTILE)
        out.add(FSYNC_P99, p99, path=host_path)
        return p99

    def _devices(self, out: OutputBuilder) -> OutputBuilder:
        stats_path = self.paths.proc("diskstats")
        # device names as os.listdir spells them (surrogate escapes), to match sysfs
        text = read_text(stats_path, errors="surrogateescape")
        counters, problems = parse_diskstats(text, names.label(str(stats_path)))
        out.notes(problems)
        block = self.paths.sys("block")
        try:
            entries = sorted(p.name for p in block.iterdir())
        except OSError as e:
            raise CheckError(f"{block}: {e.strerror}") from None
        labels: set[str] = set()
        selected = []
        for name in entries:
            label = names.label(name)
            if not names.is_utf8(name):
                out.note(names.odd_name_note("block device", name))
            if label in labels:
                out.note(f"block device {label}: another device has this label: left out")
                continue
            labels.add(label)
            if self.settings.devices.matches(label):
                selected.append(name)
        devices = BlockDevices(self.paths.sysfs)
        kinds: list[str] = []
        seen = set()
        for name in out.cap(selected, self.settings.max_items, "disk", "devices"):
            seen.add(name)
            label = names.label(name)
            disk = devices.classify(name)
            if disk.kind == "unknown":
                out.note(
                    f"{names.label(str(block / name))}/queue/rotational is unreadable: "
                    "disk type unknown",
                    Req.STORAGE_SOLID_STATE,
                )
            elif disk.kind == "virtual":
                out.note(
                    f"{label} is a virtual disk ({disk.evidence}): it reports rotational="
                    f"{int(bool(disk.rotational))} whatever backs it, so its medium is unknown; "
                    "judge by the hypervisor's storage, or narrow checks.disk.devices.include "
                    "to disks that are not virtual",
                    Req.STORAGE_SOLID_STATE,
                )
            kinds.append(disk.kind)
            out.add(DISK_INFO, 1, device=label, type=disk.kind, model=disk.model)
            if disk.rotational is not None:
                out.add(DISK_ROTATIONAL, disk.rotational, device=label)
            if name in counters:
                self._counters(out, name, counters[name])
        self._previous = {n: c for n, c in counters.items() if n in seen}
        # forget the latency of devices that are gone: one that comes back starts afresh
        self._latency = {k: v for k, v in self._latency.items() if k[0] in self._previous}
        out.observe(Req.STORAGE_SOLID_STATE, solid_state(kinds))
        return out

    def _counters(self, out: OutputBuilder, name: str, now: DiskCounters) -> None:
        label = names.label(name)
        out.add(DISK_READS, now.reads, device=label)
        out.add(DISK_WRITES, now.writes, device=label)
        out.add(DISK_READ_TIME, now.read_ms / 1000, device=label)
        out.add(DISK_WRITE_TIME, now.write_ms / 1000, device=label)
        before = self._previous.get(name)
        if before is None or now.reads < before.reads or now.writes < before.writes:
            before = DiskCounters(0, 0, 0, 0)  # first sight, or the device re-appeared
            for direction in ("read", "write"):
                self._latency.pop((name, direction), None)
        for direction, ops, ops0, ms, ms0, metric in (
            (
                "read",
                now.reads,
                before.reads,
                now.read_ms,
                before.read_ms,
                DISK_READ_LATENCY,
            ),
            (
                "write",
                now.writes,
                before.writes,
                now.write_ms,
                before.write_ms,
                DISK_WRITE_LATENCY,
            ),
        ):
            key = (name, direction)
            if ops > ops0:
                self._latency[key] = ((ms - ms0) % MS_WRAP) / 1000 / (ops - ops0)
            if key in self._latency:
                out.add(metric, self._latency[key], device=label)
