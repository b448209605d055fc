"""Compute: CPU cores and memory against the profile, how idle the CPUs are, and whether the
CPU runs the platform's software at all (the x86-64-v2 baseline of KubeVirt's images)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.checks.base import BlockingCheck, RequirementRow
from exporter.checks.cpuinfo import CpuInfo, parse_cpuinfo
from exporter.fsread import read_optional, read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.paths import Paths
from exporter.settings import CheckSettings
from exporter.spec import X86_64_V2_FLAGS, Req, requirements

if TYPE_CHECKING:
    from exporter.config import Config

METRICS = MetricGroup("compute")
CPU_LOGICAL = METRICS.gauge(
    "kubev_cpu_logical_cores",
    "Online logical CPUs (hardware threads) in /proc/cpuinfo.",
)
CPU_PHYSICAL = METRICS.gauge(
    "kubev_cpu_physical_cores",
    "Physical cores: distinct (package, core) pairs.",
)
CPU_HEADROOM = METRICS.gauge(
    "kubev_cpu_headroom_cores",
    "Logical cores above the profile's threshold at this level (negative: short).",
    ("level",),
)
CPU_IDLE = METRICS.gauge(
    "kubev_cpu_idle_cores",
    "Cores' worth of idle time (idle + iowait) over the last interval (since boot on the first "
    "run).",
)
MEMORY_TOTAL = METRICS.gauge(
    "kubev_memory_total_bytes",
    "MemTotal of /proc/meminfo.",
)
MEMORY_AVAILABLE = METRICS.gauge(
    "kubev_memory_available_bytes",
    "MemAvailable of /proc/meminfo (estimated as the kernel does where it is missing; "
    "absent when it cannot be).",
)
MEMORY_HEADROOM = METRICS.gauge(
    "kubev_memory_headroom_bytes",
    "MemTotal above the profile's threshold at this level (negative: short).",
    ("level",),
)
CPU_X86_64_LEVEL = METRICS.gauge(
    "kubev_cpu_x86_64_level",
    "The x86-64 micro-architecture level the CPU flags meet, as glibc judges it (1 baseline, "
    "2 to 4: x86-64-v2 to v4). KubeVirt's CentOS Stream 9 based images need 2.",
)

#: the x86-64 levels above the baseline, cumulative, as /proc/cpuinfo names the features:
#: glibc sysdeps/x86/get-isa-level.h get_isa_level (and elf.h GNU_PROPERTY_X86_ISA_1_V2..V4).
#: cpuinfo calls LZCNT "abm" and SSE3 "pni".
X86_64_LEVELS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (2, X86_64_V2_FLAGS),
    (3, ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    (4, ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
)


def x86_64_level(flags: frozenset[str]) -> int:
    """The highest level whose features (and every lower level's) the flags have."""
    level = 1
    for candidate, needed in X86_64_LEVELS:
        if not flags.issuperset(needed):
            break
        level = candidate
    return level


@dataclass(frozen=True)
class CpuTimes:
    idle: int  # idle + iowait, in ticks
    total: int


def parse_stat_cpu(text: str, where: str) -> CpuTimes:
    """The aggregate "cpu" line of /proc/stat."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                # user nice system idle iowait irq softirq steal; guest is inside user
                ticks = [int(v) for v in fields[1:9]]
            except ValueError:
                raise CheckError(f"{where}: the cpu line has a non-numeric field") from None
            if len(ticks) < 4:
                raise CheckError(f"{where}: the cpu line has {len(ticks)} fields, expected 8")
            iowait = ticks[4] if len(ticks) > 4 else 0
            return CpuTimes(idle=ticks[3] + iowait, total=sum(ticks))
    raise CheckError(f"{where}: no aggregate cpu line")


def parse_meminfo(text: str, where: str) -> dict[str, int]:
    """Fields of /proc/meminfo in bytes; MemTotal must be there (the rest may not be)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        try:
            number = int(parts[0])
        except ValueError:
            continue
        values[key.strip()] = number * 1024 if parts[1:] == ["kB"] else number
    if "MemTotal" not in values:
        raise CheckError(f"{where}: no MemTotal line")
    return values


def low_watermark_pages(zoneinfo: str) -> int | None:
    """The sum of every zone's low watermark (pages) in /proc/zoneinfo; None if absent."""
    total, found = 0, False
    for line in zoneinfo.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "low" and fields[1].isdigit():
            total += int(fields[1])
            found = True
    return total if found else None


def estimate_available(mem: dict[str, int], low_watermark: int) -> int | None:
    """MemAvailable for kernels that do not report it (before 3.14, some containers), the
    way the kernel computes it (si_mem_available) and procps' free(1) estimates it: free
    memory less the low watermarks, plus the file LRU and reclaimable slab that can be
    reclaimed without going below them. None when a field it needs is missing."""
    needed = ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable")
    if any(key not in mem for key in needed):
        return None
    pagecache = mem["Active(file)"] + mem["Inactive(file)"]
    slab = mem["SReclaimable"]
    available = (
        mem["MemFree"]
        - low_watermark
        + pagecache
        - min(pagecache // 2, low_watermark)
        + slab
        - min(slab // 2, low_watermark)
    )
    return max(0, available)


@dataclass(frozen=True, kw_only=True)
class ComputeSettings(CheckSettings):
    pass


class ComputeCheck(BlockingCheck[ComputeSettings]):
    name = "compute"
    area = ("compute", "Compute")
    settings_type = ComputeSettings
    defaults = ComputeSettings(interval=15.0, timeout=5.0)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.CPU_CORES,
            "KubevCPUCoresInsufficient",
            "Use a machine with more cores (or bring offline CPUs online), or judge "
            "a test node by the testing profile.",
        ),
        RequirementRow(
            Req.MEMORY,
            "KubevMemoryInsufficient",
            "Add RAM, or judge a test node by the testing profile.",
        ),
        RequirementRow(
            Req.CPU_BASELINE,
            "KubevCPUBaselineMissing",
            "Use a CPU with x86-64-v2; in a VM, give it a CPU model that passes the host's "
            "flags through (host-passthrough, host-model, or x86-64-v2-AES) instead of "
            "qemu64/kvm64.",
        ),
    )

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._previous: CpuTimes | None = None

    def collect(self) -> CheckOutput:
        """CPU and memory are read apart: a broken file costs the facts it holds, not the
        others (a /proc/meminfo without MemAvailable still gives MemTotal and the cores)."""
        out = self.output()
        logical = self._cpu(out)
        self._idle(out, logical)
        self._memory(out)
        return out.build()

    def _cpu(self, out: OutputBuilder) -> int | None:
        reqs = requirements(self.config.profile)
        cpuinfo_path = self.paths.proc("cpuinfo")
        try:
            cpu = parse_cpuinfo(read_text(cpuinfo_path), str(cpuinfo_path))
        except CheckError as e:
            out.fail(str(e), Req.CPU_CORES)
            # one error per broken file: the baseline reads unknown, naming the same file
            out.note(str(e), Req.CPU_BASELINE)
            out.observe(Req.CPU_BASELINE, None)
            return None
        self._baseline(out, cpu, str(cpuinfo_path))
        out.add(CPU_LOGICAL, cpu.logical)
        physical = cpu.physical or self._physical_from_sysfs()
        if physical:
            out.add(CPU_PHYSICAL, physical)
        cores = reqs[Req.CPU_CORES]
        for level in cores.thresholds:
            out.add(CPU_HEADROOM, cores.headroom(level, cpu.logical), level=level.value)
        out.observe(Req.CPU_CORES, cpu.logical)
        return cpu.logical

    def _baseline(self, out: OutputBuilder, cpu: CpuInfo, where: str) -> None:
        """x86-64-v2: glibc in KubeVirt's images aborts below it (exporter/spec.py)."""
        if cpu.flags is None:
            out.note(
                f"{where} has no flags line (not an x86 CPU, or a truncated file): "
                "the x86-64-v2 baseline is unknown",
                Req.CPU_BASELINE,
            )
            out.observe(Req.CPU_BASELINE, None)
            return
        out.add(CPU_X86_64_LEVEL, x86_64_level(cpu.flags))
        missing = [flag for flag in X86_64_V2_FLAGS if flag not in cpu.flags]
        if missing:
            text = f"missing x86-64-v2 flags: {' '.join(missing)}"
            if "hypervisor" in cpu.flags:
                text += " (this host is a VM: its CPU model hides them)"
            out.note(text, Req.CPU_BASELINE)
        out.observe(Req.CPU_BASELINE, not missing)

    def _idle(self, out: OutputBuilder, logical: int | None) -> None:
        stat_path = self.paths.proc("stat")
        try:
            times = parse_stat_cpu(read_text(stat_path), str(stat_path))
        except CheckError as e:
            out.fail(str(e))
            return
        if logical is not None:
            out.add(CPU_IDLE, self._idle_cores(times, logical))

    def _memory(self, out: OutputBuilder) -> None:
        reqs = requirements(self.config.profile)
        meminfo_path = self.paths.proc("meminfo")
        try:
            mem = parse_meminfo(read_text(meminfo_path), str(meminfo_path))
        except CheckError as e:
            out.fail(str(e), Req.MEMORY)
            return
        out.add(MEMORY_TOTAL, mem["MemTotal"])
        available = mem.get("MemAvailable")
        if available is None:
            available = self._estimated_available(out, mem)
        if available is not None:
            out.add(MEMORY_AVAILABLE, available)
        memory = reqs[Req.MEMORY]
        for level in memory.thresholds:
            out.add(MEMORY_HEADROOM, memory.headroom(level, mem["MemTotal"]), level=level.value)
        out.observe(Req.MEMORY, mem["MemTotal"])

    def _estimated_available(self, out: OutputBuilder, mem: dict[str, int]) -> int | None:
        zoneinfo = read_optional(self.paths.proc("zoneinfo"), 1024 * 1024)
        low = low_watermark_pages(zoneinfo) if zoneinfo is not None else None
        estimate = None
        if low is not None:
            estimate = estimate_available(mem, low * os.sysconf("SC_PAGE_SIZE"))
        if estimate is None:
            out.note("/proc/meminfo has no MemAvailable and it cannot be estimated: unknown")
        else:
            out.note(
                "/proc/meminfo has no MemAvailable: estimated from MemFree, the file LRU, "
                "reclaimable slab and the zones' low watermarks"
            )
        return estimate

    def _idle_cores(self, now: CpuTimes, logical: int) -> float:
        """Idle share since the previous run (since boot on the first, or if nothing moved)."""
        previous, self._previous = self._previous, now
        idle, total = now.idle, now.total
        if previous is not None and now.total > previous.total:
            idle, total = now.idle - previous.idle, now.total - previous.total
        if total <= 0:
            return 0.0
        return logical * max(0.0, min(1.0, idle / total))

    def _physical_from_sysfs(self) -> int | None:
        base = self.paths.sys("devices", "system", "cpu")
        cores: set[tuple[str, str]] = set()
        try:
            cpus = [p for p in base.iterdir() if p.name[3:].isdigit() and p.name.startswith("cpu")]
        except OSError:
            return None
        for cpu in cpus:
            package = read_optional(cpu / "topology" / "physical_package_id")
            core = read_optional(cpu / "topology" / "core_id")
            if package is not None and core is not None:
                cores.add((package, core))
        return len(cores) or None
