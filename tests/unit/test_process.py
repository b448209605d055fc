"""The standard process metrics, held against psutil (an independent reader of /proc)."""

from __future__ import annotations

import resource
from pathlib import Path

import psutil
import pytest

from exporter import process


def by_name() -> dict[str, float]:
    return {s.metric.name: s.value for s in process.samples()}


def test_process_metrics_match_psutil() -> None:
    me = psutil.Process()
    got = by_name()
    assert got["process_start_time_seconds"] == pytest.approx(me.create_time(), abs=1.0)
    assert got["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # these move between two reads: the same order of magnitude is what a user checks
    assert got["process_resident_memory_bytes"] == pytest.approx(me.memory_info().rss, rel=0.2)
    assert got["process_virtual_memory_bytes"] == pytest.approx(me.memory_info().vms, rel=0.2)
    assert abs(got["process_open_fds"] - me.num_fds()) <= 2
    cpu = me.cpu_times()
    assert 0 < got["process_cpu_seconds_total"] <= cpu.user + cpu.system + 0.1


def test_an_unreadable_proc_costs_its_metrics_only(tmp_path: Path) -> None:
    names = {s.metric.name for s in process.samples(str(tmp_path))}
    assert names <= {"process_max_fds"}
