"""The compute check on fixture trees and on this machine."""

from __future__ import annotations

import os

import psutil
import pytest

from exporter.config import Config
from exporter.model import CheckError
from exporter.spec import GIB, Profile
from tests.checkrun import make, observed, run, values
from tests.helpers import NodeTree


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
    assert observed(out) == {"cpu_cores": 32, "memory": 65_536_000 * 1024}


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
    ("file", "content", "message"),
    [
        ("meminfo", "MemTotal: lots\n", "proc/meminfo: no MemTotal line"),
        ("meminfo", None, "proc/meminfo: file not found"),
        ("stat", "cpu  1 2 x 4\n", "proc/stat: the cpu line has a non-numeric field"),
        ("stat", "intr 0\n", "proc/stat: no aggregate cpu line"),
        ("cpuinfo", "", "proc/cpuinfo: no processor entries"),
    ],
)
def test_broken_files_fail_the_check_naming_the_file(
    node_tree: NodeTree, file: str, content: str | None, message: str
) -> None:
    tree = node_tree("undersized")
    target = tree / "proc" / file
    if content is None:
        target.unlink()
    else:
        target.write_text(content)
    with pytest.raises(CheckError) as info:
        run(make("compute", tree))
    assert str(info.value) == f"{tree}/{message}"


def test_this_machine() -> None:
    v = values(run(make("compute")))
    assert v[("kubev_cpu_logical_cores", ())] == os.cpu_count()
    assert v[("kubev_memory_total_bytes", ())] == psutil.virtual_memory().total
    cpus = os.cpu_count()
    assert cpus is not None
    assert 0 <= v[("kubev_cpu_idle_cores", ())] <= cpus
