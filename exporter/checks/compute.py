"""Compute: CPU cores and memory against the profile, and how idle the CPUs are."""

from __future__ import annotations

from dataclasses import dataclass

from exporter import metrics
from exporter.checks.base import BlockingCheck
from exporter.checks.cpuinfo import parse_cpuinfo
from exporter.config import Config
from exporter.fsread import read_optional, read_text
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.paths import Paths
from exporter.spec import requirements


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
    """Fields of /proc/meminfo in bytes."""
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
    for key in ("MemTotal", "MemAvailable"):
        if key not in values:
            raise CheckError(f"{where}: no {key} line")
    return values


class ComputeCheck(BlockingCheck):
    name = "compute"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._previous: CpuTimes | None = None

    def collect(self) -> CheckOutput:
        out = OutputBuilder()
        reqs = requirements(self.config.profile)
        cpuinfo_path = self.paths.proc("cpuinfo")
        cpu = parse_cpuinfo(read_text(cpuinfo_path), str(cpuinfo_path))
        out.add(metrics.CPU_LOGICAL, cpu.logical)
        physical = cpu.physical or self._physical_from_sysfs()
        if physical:
            out.add(metrics.CPU_PHYSICAL, physical)
        cores = reqs["cpu_cores"]
        for level in cores.thresholds:
            out.add(metrics.CPU_HEADROOM, cores.headroom(level, cpu.logical), level=level.value)
        out.observe("cpu_cores", cpu.logical)

        stat_path = self.paths.proc("stat")
        times = parse_stat_cpu(read_text(stat_path), str(stat_path))
        out.add(metrics.CPU_IDLE, self._idle_cores(times, cpu.logical))

        meminfo_path = self.paths.proc("meminfo")
        mem = parse_meminfo(read_text(meminfo_path), str(meminfo_path))
        out.add(metrics.MEMORY_TOTAL, mem["MemTotal"])
        out.add(metrics.MEMORY_AVAILABLE, mem["MemAvailable"])
        memory = reqs["memory"]
        for level in memory.thresholds:
            out.add(
                metrics.MEMORY_HEADROOM, memory.headroom(level, mem["MemTotal"]), level=level.value
            )
        out.observe("memory", mem["MemTotal"])
        return out.build()

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
