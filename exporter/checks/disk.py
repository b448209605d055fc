"""Disks and storage: device type, I/O latency from /proc/diskstats, an active fsync probe.

The diskstats counters say how the kernel's I/O has gone; the probe says how long a small
synchronous write takes right now in the paths VMs and the kubelet use, which is what etcd
and VM disks feel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from exporter.blocking import BlockingGate
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.fsread import read_optional, read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, Histogram, OutputBuilder
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    NameFilter,
    parse_abs_paths,
    parse_positive_int,
    section,
    setting,
)
from exporter.spec import FSYNC_MINIMUM_SECONDS, FSYNC_RECOMMENDED_SECONDS, Req
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

PROBE_FILE = ".kubev-node-exporter-fsync-probe"
PROBE_BYTES = 4096
#: Bucket bounds include the spec's latency thresholds so alerts can use them exactly.
FSYNC_BUCKETS: tuple[float, ...] = tuple(
    sorted(
        {0.0005, 0.001, 0.0025, 0.005, 0.025, 0.05, 0.25, 0.5, 1.0, 2.5}
        | {FSYNC_RECOMMENDED_SECONDS, FSYNC_MINIMUM_SECONDS}
    )
)


METRICS = MetricGroup("disk")
DISK_INFO = METRICS.gauge(
    "kubev_disk_info",
    "Always 1 per whole block device; type is nvme, ssd, hdd, or unknown when sysfs does not say.",
    ("device", "type", "model"),
)
DISK_ROTATIONAL = METRICS.gauge(
    "kubev_disk_rotational",
    "1 if the kernel reports the device as rotational (spinning disk).",
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
    "Latency of the active probe: write a small file in the storage path and fsync it.",
    ("path",),
)
STORAGE_PROBE_SUCCESS = METRICS.gauge(
    "kubev_storage_probe_success",
    "1 if the last fsync probe and statfs of the storage path succeeded.",
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
    fsync_samples: int = setting(
        3,
        parse=parse_positive_int,
        doc="fsyncs per path per run; the verdict takes the median",
    )


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


def fsync_probe(directory: str, samples: int) -> list[float]:
    """Write and fsync a small file in the directory `samples` times; seconds per sample."""
    path = os.path.join(directory, PROBE_FILE)
    payload = b"\0" * PROBE_BYTES
    latencies = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(samples):
            start = time.perf_counter()
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            latencies.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return latencies


@dataclass(frozen=True)
class PathProbe:
    latencies: list[float] | None
    total_bytes: int | None
    avail_bytes: int | None
    problem: str | None


def probe_path(directory: str, samples: int) -> PathProbe:
    """fsync probe and statfs of one storage path; each may fail on its own (blocking)."""
    latencies = total = avail = None
    problems = []
    try:
        latencies = fsync_probe(directory, samples)
    except OSError as e:
        problems.append(f"fsync probe failed: {e.strerror or e}")
    try:
        usage = psutil.disk_usage(directory)
        total, avail = usage.total, usage.free
    except OSError as e:
        problems.append(f"statfs failed: {e.strerror or e}")
    return PathProbe(latencies, total, avail, "; ".join(problems) or None)


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
        return super().detail(requirement, output, outcome)

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._previous: dict[str, DiskCounters] = {}
        self._latency: dict[tuple[str, str], float] = {}
        self._histograms: dict[str, Histogram] = {}
        self._path_gates: dict[str, BlockingGate] = {}

    async def run(self) -> CheckOutput:
        out = self.output()
        devices = asyncio.ensure_future(self.gate.run(lambda: self._devices(out.child())))
        paths = self.settings.storage_paths
        try:
            probes = await asyncio.gather(*(self._probe(p) for p in paths))
        finally:
            out.merge(await devices)
        medians: list[float] = []
        for host_path, probe in zip(paths, probes, strict=True):
            self._report_path(out, host_path, probe, medians)
        # one path without a measurement leaves the verdict unknown, not judged on the rest
        out.observe(
            Req.DISK_LATENCY, max(medians) if len(medians) == len(paths) and paths else None
        )
        return out.build()

    async def _probe(self, host_path: str) -> PathProbe:
        local = str(self.paths.root(host_path))
        gate = self._path_gates.setdefault(host_path, BlockingGate(f"disk-{host_path}", timed=True))
        budget = self.settings.timeout * 0.8
        try:
            async with asyncio.timeout(budget):
                return await gate.run(lambda: probe_path(local, self.settings.fsync_samples))
        except TimeoutError:
            return PathProbe(None, None, None, f"no answer within {budget:.3g}s (hung mount?)")
        except CheckError as e:  # still blocked since an earlier run
            return PathProbe(None, None, None, str(e))

    def _report_path(
        self, out: OutputBuilder, host_path: str, probe: PathProbe, medians: list[float]
    ) -> None:
        histogram = self._histograms.setdefault(host_path, Histogram(FSYNC_BUCKETS))
        if probe.latencies:
            for seconds in probe.latencies:
                histogram.observe(seconds)
            medians.append(statistics.median(probe.latencies))
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

    def _devices(self, out: OutputBuilder) -> OutputBuilder:
        stats_path = self.paths.proc("diskstats")
        counters, problems = parse_diskstats(read_text(stats_path), str(stats_path))
        out.notes(problems)
        block = self.paths.sys("block")
        try:
            names = sorted(p.name for p in block.iterdir())
        except OSError as e:
            raise CheckError(f"{block}: {e.strerror}") from None
        kinds: list[str] = []
        seen = set()
        selected = [n for n in names if self.settings.devices.matches(n)]
        for name in out.cap(selected, self.settings.max_items, "disk", "devices"):
            seen.add(name)
            rotational_text = read_optional(block / name / "queue" / "rotational")
            model = (read_optional(block / name / "device" / "model") or "").strip()
            rotational = rotational_text == "1" if rotational_text in ("0", "1") else None
            if name.startswith("nvme"):
                kind = "nvme"
            elif rotational is None:
                kind = "unknown"
                out.note(
                    f"{block / name}/queue/rotational is unreadable: disk type unknown",
                    Req.STORAGE_SOLID_STATE,
                )
            else:
                kind = "hdd" if rotational else "ssd"
            kinds.append(kind)
            out.add(DISK_INFO, 1, device=name, type=kind, model=model)
            if rotational is not None:
                out.add(DISK_ROTATIONAL, rotational, device=name)
            if name in counters:
                self._counters(out, name, counters[name])
        self._previous = {n: c for n, c in counters.items() if n in seen}
        # forget the latency of devices that are gone: one that comes back starts afresh
        self._latency = {k: v for k, v in self._latency.items() if k[0] in self._previous}
        solid = None if not kinds or "unknown" in kinds else all(k != "hdd" for k in kinds)
        out.observe(Req.STORAGE_SOLID_STATE, solid)
        return out

    def _counters(self, out: OutputBuilder, name: str, now: DiskCounters) -> None:
        out.add(DISK_READS, now.reads, device=name)
        out.add(DISK_WRITES, now.writes, device=name)
        out.add(DISK_READ_TIME, now.read_ms / 1000, device=name)
        out.add(DISK_WRITE_TIME, now.write_ms / 1000, device=name)
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
                out.add(metric, self._latency[key], device=name)
