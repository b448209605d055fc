"""The standard process metrics every Prometheus client library serves (process_cpu_seconds
_total, process_resident_memory_bytes, process_open_fds, process_start_time_seconds, ...),
read from /proc/self like client_golang's and prometheus_client's process collectors.

They are read when an exposition is encoded (each time a check publishes a result, so at
most the shortest check interval old), never in the scrape path.
"""

from __future__ import annotations

import contextlib
import os
import resource

from exporter import metrics
from exporter.model import Sample

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time(stat: str) -> float | None:
    for line in stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def samples(proc: str = "/proc") -> list[Sample]:
    """This process's CPU, memory, descriptors and start time; an unreadable file costs
    its metrics only (the exposition never fails for them)."""
    out: list[Sample] = []
    try:
        with open(f"{proc}/self/stat", "rb") as f:
            raw = f.read(4096).decode("ascii", "replace")
        # the command name is in parentheses and may hold spaces: split after its end
        fields = raw[raw.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        start_ticks, vsize, rss = int(fields[19]), int(fields[20]), int(fields[21])
        out.append(Sample(metrics.PROCESS_CPU, (), (utime + stime) / _TICKS))
        out.append(Sample(metrics.PROCESS_VIRTUAL, (), float(vsize)))
        out.append(Sample(metrics.PROCESS_RESIDENT, (), float(rss * _PAGE)))
        with open(f"{proc}/stat", "rb") as f:
            boot = _boot_time(f.read(1 << 20).decode("ascii", "replace"))
        if boot is not None:
            out.append(Sample(metrics.PROCESS_START, (), boot + start_ticks / _TICKS))
    except (OSError, ValueError, IndexError):
        pass
    with contextlib.suppress(OSError):
        fds = len(os.listdir(f"{proc}/self/fd"))
        out.append(Sample(metrics.PROCESS_OPEN_FDS, (), float(fds)))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out.append(Sample(metrics.PROCESS_MAX_FDS, (), float(soft)))
    return out
