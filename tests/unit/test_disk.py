"""The disk check: device types, diskstats latency, the fsync probe, filesystem sizes."""

from __future__ import annotations

import os
import shutil

import pytest

from exporter.checks.disk import FSYNC_BUCKETS, PROBE_FILE, DiskSettings, parse_diskstats
from exporter.config import Config
from exporter.model import CheckError
from exporter.settings import NameFilter
from exporter.spec import FSYNC_MINIMUM_SECONDS, FSYNC_RECOMMENDED_SECONDS
from tests.checkrun import histograms, make, observed, run, values
from tests.helpers import NodeTree


def test_types_models_and_default_exclusions(node_tree: NodeTree) -> None:
    out = run(make("disk", node_tree("compliant", kvm_device=False)))
    v = values(out)
    info = {k[1] for k in v if k[0] == "kubev_disk_info"}
    assert info == {
        ("nvme0n1", "nvme", "Samsung SSD 980 PRO 1TB"),
        ("sda", "ssd", "INTEL SSDSC2KB960G8"),
    }  # loop0 excluded by default; the partition nvme0n1p1 is not a whole device
    assert v[("kubev_disk_rotational", ("sda",))] == 0
    assert v[("kubev_disk_reads_completed_total", ("nvme0n1",))] == 120000
    assert v[("kubev_disk_write_time_seconds_total", ("nvme0n1",))] == 192.0
    assert observed(out)["storage_solid_state"] == 1


def test_a_spinning_disk_fails_solid_state(node_tree: NodeTree) -> None:
    out = run(make("disk", node_tree("undersized")))
    assert values(out)[("kubev_disk_info", ("sda", "hdd", "ST1000DM003-1CH162"))] == 1
    assert observed(out)["storage_solid_state"] == 0


def test_include_pattern(node_tree: NodeTree) -> None:
    cfg = Config().with_check("disk", devices=NameFilter(include="^loop"))
    v = values(run(make("disk", node_tree("compliant", kvm_device=False), cfg)))
    assert {k[1][0] for k in v if k[0] == "kubev_disk_info"} == {"loop0"}


def test_latency_over_the_interval(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    stats = tree / "proc" / "diskstats"
    check = make("disk", tree)
    v = values(run(check))
    # since boot: 90000 ms over 9000 reads, 60000 ms over 3000 writes
    assert v[("kubev_disk_read_latency_seconds", ("sda",))] == pytest.approx(0.010)
    assert v[("kubev_disk_write_latency_seconds", ("sda",))] == pytest.approx(0.020)
    # 1000 more reads taking 5000 ms: 5 ms each; no write completes
    stats.write_text(
        "   8       0 sda 10000 10 80000 95000 3000 20 24000 60000 0 0 0 0 0 0 0 0 0\n"
    )
    v = values(run(check))
    assert v[("kubev_disk_read_latency_seconds", ("sda",))] == pytest.approx(0.005)
    assert v[("kubev_disk_write_latency_seconds", ("sda",))] == pytest.approx(0.020)  # kept


def test_garbled_diskstats_line_is_skipped_with_a_note() -> None:
    devices, notes = parse_diskstats(
        " 8 0 sda 1 0 0 2 3 0 0 4 0 0 0 0 0 0 0 0 0\n 8 1 sdb x y\n\n", "/proc/diskstats"
    )
    assert set(devices) == {"sda"}
    assert notes == ["/proc/diskstats: line 2 does not parse, skipped"]
    with pytest.raises(CheckError, match="no line parses"):
        parse_diskstats("garbage garbage\n", "/proc/diskstats")


def test_fsync_probe_and_filesystem(node_tree: NodeTree) -> None:
    tree = node_tree("compliant", kvm_device=False)
    check = make("disk", tree)
    for _ in range(2):
        out = run(check)
    h = histograms(out)[("kubev_storage_fsync_latency_seconds", ("/var/lib/kubelet",))]
    samples = Config().settings(DiskSettings).fsync_samples
    assert h.count == 2 * samples
    assert h.buckets[-1] == (float("inf"), 2 * samples)
    assert [b for b, _ in h.buckets[:-1]] == list(FSYNC_BUCKETS)
    assert {FSYNC_RECOMMENDED_SECONDS, FSYNC_MINIMUM_SECONDS} <= set(FSYNC_BUCKETS)
    assert not (tree / "root" / "var" / "lib" / "kubelet" / PROBE_FILE).exists()
    v = values(out)
    st = os.statvfs(tree / "root" / "var" / "lib" / "kubelet")
    assert v[("kubev_filesystem_size_bytes", ("/var/lib/kubelet",))] == st.f_blocks * st.f_frsize
    assert v[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    latency = observed(out)["disk_latency"]
    assert latency is not None and 0 < latency < h.total


def test_missing_storage_path_fails_the_probe_not_the_check(node_tree: NodeTree) -> None:
    tree = node_tree("compliant", kvm_device=False)
    shutil.rmtree(tree / "root" / "var")
    out = run(make("disk", tree))
    assert values(out)[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 0
    assert observed(out)["disk_latency"] is None
    assert (
        "storage path /var/lib/kubelet: fsync probe failed: No such file or directory; "
        "statfs failed: No such file or directory" in [n.text for n in out.notes]
    )


def test_read_only_path_keeps_its_filesystem_size() -> None:
    """/sys takes no new file, as a read-only host mount would not: statfs still answers."""
    cfg = Config().with_check("disk", storage_paths=("/sys",))
    out = run(make("disk", config=cfg))
    v = values(out)
    assert v[("kubev_storage_probe_success", ("/sys",))] == 0
    assert v[("kubev_filesystem_size_bytes", ("/sys",))] == 0  # sysfs has no blocks
    assert observed(out)["disk_latency"] is None


def test_one_unmeasured_path_leaves_the_latency_verdict_unknown(node_tree: NodeTree) -> None:
    tree = node_tree("compliant", kvm_device=False)
    cfg = Config().with_check("disk", storage_paths=("/var/lib/kubelet", "/var/lib/absent"))
    out = run(make("disk", tree, cfg))
    assert values(out)[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    assert observed(out)["disk_latency"] is None


def test_unknown_disk_type_leaves_solid_state_unknown(node_tree: NodeTree) -> None:
    out = run(make("disk", node_tree("broken")))
    assert values(out)[("kubev_disk_info", ("vda", "unknown", ""))] == 1
    assert observed(out)["storage_solid_state"] is None


def test_time_counter_wraparound(node_tree: NodeTree) -> None:
    """The kernel prints diskstats times as 32-bit milliseconds; they wrap after ~49.7 days."""
    tree = node_tree("undersized")
    stats = tree / "proc" / "diskstats"
    stats.write_text("   8 0 sda 1000 0 0 4294967000 10 0 0 100 0 0 0 0 0 0 0 0 0\n")
    check = make("disk", tree)
    run(check)
    stats.write_text(
        "   8 0 sda 1100 0 0 200 10 0 0 100 0 0 0 0 0 0 0 0 0\n"
    )  # +100 reads, +496 ms
    v = values(run(check))
    assert v[("kubev_disk_read_latency_seconds", ("sda",))] == pytest.approx(0.00496)


def test_device_that_vanishes_between_runs(node_tree: NodeTree) -> None:
    tree = node_tree("compliant", kvm_device=False)
    check = make("disk", tree)
    run(check)
    shutil.rmtree(tree / "sys" / "block" / "sda")
    v = values(run(check))
    assert not [k for k in v if k[1][:1] == ("sda",)]
    assert v[("kubev_disk_reads_completed_total", ("nvme0n1",))] == 120000
