"""The compute check on fixture trees and on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from exporter.config import Config
from exporter.spec import GIB, Profile
from tests.checkrun import make, observed, run, values
from tests.helpers import NodeTree, make_node_tree


def test_compliant_node(node_tree: NodeTree) -> None:
    out = run(make("compute", node_tree("compliant", kvm_device=False)))
    v = values(out)
    assert v[("kubev_cpu_logical_cores", ())] == 32
    assert v[("kubev_cpu_physical_cores", ())] == 16
    assert v[("kubev_memory_total_bytes", ())] == 65_536_000 * 1024
    assert v[("kubev_memory_available_bytes", ())] == 60_000_000 * 1024
    # production: 16 cores minimum and recommended
    assert v[("kubev_cpu_headroom_cores", ("minimum",))] == 16
    assert v[("kubev_memory_headroom_bytes", ("recommended",))] == pytest.approx(
        65_536_000 * 1024 - 32 * GIB * 0.95
    )
    assert observed(out) == {"cpu_cores": 32, "memory": 65_536_000 * 1024, "cpu_baseline": 1}


def test_headroom_follows_the_profile(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    testing = values(run(make("compute", tree, Config(profile=Profile.TESTING))))
    production = values(run(make("compute", tree, Config(profile=Profile.PRODUCTION))))
    assert testing[("kubev_cpu_headroom_cores", ("minimum",))] == 4 - 8
    assert production[("kubev_cpu_headroom_cores", ("minimum",))] == 4 - 16


def test_idle_cores_over_the_interval(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    check = make("compute", tree)
    stat = tree / "proc" / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    first = values(run(check))[("kubev_cpu_idle_cores", ())]
    assert first == pytest.approx(4 * 0.8)  # since boot
    stat.write_text("cpu  150 0 150 900 0 0 0 0 0 0\n")  # +50 +50 +100 idle: half idle
    second = values(run(check))[("kubev_cpu_idle_cores", ())]
    assert second == pytest.approx(4 * 0.5)


def test_physical_cores_from_sysfs_topology(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    (tree / "proc" / "cpuinfo").write_text("processor : 0\n\nprocessor : 1\n\nprocessor : 2\n")
    for cpu, core in ((0, 0), (1, 0), (2, 1)):
        topo = tree / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert values(run(make("compute", tree)))[("kubev_cpu_physical_cores", ())] == 2


@pytest.mark.parametrize(
    ("file", "content", "message", "lost", "kept"),
    [
        (
            "meminfo",
            "MemTotal: lots\n",
            "proc/meminfo: no MemTotal line",
            "kubev_memory_total_bytes",
            "kubev_cpu_logical_cores",
        ),
        (
            "meminfo",
            None,
            "proc/meminfo: file not found",
            "kubev_memory_total_bytes",
            "kubev_cpu_logical_cores",
        ),
        (
            "stat",
            "cpu  1 2 x 4\n",
            "proc/stat: the cpu line has a non-numeric field",
            "kubev_cpu_idle_cores",
            "kubev_memory_total_bytes",
        ),
        (
            "stat",
            "intr 0\n",
            "proc/stat: no aggregate cpu line",
            "kubev_cpu_idle_cores",
            "kubev_cpu_logical_cores",
        ),
        (
            "cpuinfo",
            "",
            "proc/cpuinfo: no processor entries",
            "kubev_cpu_logical_cores",
            "kubev_memory_total_bytes",
        ),
    ],
)
def test_a_broken_file_costs_its_facts_only(
    node_tree: NodeTree, file: str, content: str | None, message: str, lost: str, kept: str
) -> None:
    """The error names the file; the facts from the other files stand."""
    tree = node_tree("undersized")
    target = tree / "proc" / file
    if content is None:
        target.unlink()
    else:
        target.write_text(content)
    out = run(make("compute", tree))
    assert [e.text for e in out.errors] == [f"{tree}/{message}"]
    names = {name for name, _ in values(out)}
    assert kept in names and lost not in names


def test_meminfo_without_memavailable_is_estimated(tmp_path: Path) -> None:
    """Kernels before 3.14 (and some containers) have no MemAvailable: estimate it as the
    kernel does from MemFree, the file LRU, reclaimable slab and the low watermarks."""
    tree = make_node_tree("undersized", tmp_path)
    (tree / "proc" / "meminfo").write_text(
        "MemTotal:        4000000 kB\nMemFree:          500000 kB\n"
        "Active(file):     300000 kB\nInactive(file):   100000 kB\n"
        "SReclaimable:      40000 kB\n"
    )
    (tree / "proc" / "zoneinfo").write_text(
        "Node 0, zone      DMA\n  pages free     3968\n        min      32\n"
        "        low      40\n        high     48\n"
        "Node 0, zone   Normal\n  pages free     100000\n        min      10000\n"
        "        low      12460\n        high     14000\n"
    )
    out = run(make("compute", tree))
    low = (40 + 12460) * os.sysconf("SC_PAGE_SIZE")
    free, cache, slab = 500000 * 1024, 400000 * 1024, 40000 * 1024
    expected = free - low + cache - min(cache // 2, low) + slab - min(slab // 2, low)
    v = values(out)
    assert v[("kubev_memory_available_bytes", ())] == max(0, expected)
    assert v[("kubev_memory_total_bytes", ())] == 4000000 * 1024
    assert observed(out)["memory"] == 4000000 * 1024 and not out.errors


def test_meminfo_without_memavailable_or_zoneinfo(tmp_path: Path) -> None:
    """Nothing to estimate from: available memory is unknown, not made up; the rest stands."""
    tree = make_node_tree("undersized", tmp_path)
    (tree / "proc" / "meminfo").write_text("MemTotal: 4000000 kB\nMemFree: 500000 kB\n")
    out = run(make("compute", tree))
    v = values(out)
    assert ("kubev_memory_available_bytes", ()) not in v
    assert v[("kubev_memory_total_bytes", ())] == 4000000 * 1024
    assert v[("kubev_cpu_logical_cores", ())] == 4
    assert any("cannot be estimated" in n.text for n in out.notes) and not out.errors


def test_this_machine() -> None:
    v = values(run(make("compute")))
    assert v[("kubev_cpu_logical_cores", ())] == os.cpu_count()
    assert v[("kubev_memory_total_bytes", ())] == psutil.virtual_memory().total
    cpus = os.cpu_count()
    assert cpus is not None
    assert 0 <= v[("kubev_cpu_idle_cores", ())] <= cpus
