"""The disk check: device types, diskstats latency, the fsync probe, filesystem sizes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.checks.disk import (
    FSYNC_BUCKETS,
    FSYNC_P99,
    DiskCheck,
    DiskSettings,
    PathProbe,
    nearest_rank,
    parse_diskstats,
)
from exporter.config import Config, from_mapping
from exporter.exposition import Exposition, Identity
from exporter.model import CheckError, CheckOutput, Sample
from exporter.runtime import Runtime
from exporter.settings import ConfigError, NameFilter
from exporter.spec import (
    FSYNC_CRITICAL_SECONDS,
    FSYNC_MINIMUM_SECONDS,
    FSYNC_RECOMMENDED_SECONDS,
    Profile,
    Req,
    Role,
)
from exporter.verdicts import Outcome
from tests.checkrun import histograms, make, observed, run, values
from tests.helpers import NodeTree, make_node_tree, samples


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
    kubelet = tree / "root" / "var" / "lib" / "kubelet"
    before = sorted(os.listdir(kubelet))
    check = make("disk", tree)
    for _ in range(2):
        out = run(check)
    h = histograms(out)[("kubev_storage_fsync_latency_seconds", ("/var/lib/kubelet",))]
    settings = Config().settings(DiskSettings)
    # the first run fills the window to its minimum, the second adds the usual few
    count = settings.fsync_window_min + settings.fsync_samples
    assert h.count == count
    assert h.buckets[-1] == (float("inf"), count)
    assert [b for b, _ in h.buckets[:-1]] == list(FSYNC_BUCKETS)
    assert {FSYNC_RECOMMENDED_SECONDS, FSYNC_MINIMUM_SECONDS, FSYNC_CRITICAL_SECONDS} <= set(
        FSYNC_BUCKETS
    )
    assert sorted(os.listdir(kubelet)) == before  # the probe leaves nothing behind
    v = values(out)
    st = os.statvfs(tree / "root" / "var" / "lib" / "kubelet")
    assert v[("kubev_filesystem_size_bytes", ("/var/lib/kubelet",))] == st.f_blocks * st.f_frsize
    assert v[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    latency = observed(out)["disk_latency"]
    assert latency is not None and 0 < latency < h.total
    assert v[("kubev_storage_fsync_p99_seconds", ("/var/lib/kubelet",))] == latency


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


def test_fsync_verdict_is_the_p99_of_a_rolling_window() -> None:
    """Nearest rank: of 100 samples the 99th smallest. One outlier in 100 is below the
    p99, two are not; as fast samples push them out of the window the p99 recovers."""
    cfg = Config().with_check("disk", fsync_window=100, fsync_window_min=20)
    check = make("disk", config=cfg)
    assert isinstance(check, DiskCheck)
    fast, slow = 0.001, 0.050

    def feed(latencies: list[float]) -> float | None:
        out = check.output()
        return check._report_path(out, "/var/lib/kubelet", PathProbe(latencies, 1, 1, None))

    assert feed([fast] * 99 + [slow]) == fast
    assert feed([slow]) == slow  # the window keeps the latest 100: two outliers now
    assert feed([fast] * 98) == slow  # the window's oldest were fast ones: both still in
    assert feed([fast]) == fast  # the first outlier leaves the window
    assert nearest_rank([3.0, 1.0, 2.0], 0.99) == 3.0
    assert nearest_rank([0.5], 0.99) == 0.5


def test_too_few_samples_leave_the_verdict_unknown_with_a_note() -> None:
    check = make("disk")
    assert isinstance(check, DiskCheck)
    out = check.output()
    assert check._report_path(out, "/var/lib/kubelet", PathProbe([0.002] * 7, 1, 1, None)) is None
    built = out.build()
    assert built.notes_about(Req.DISK_LATENCY) == [
        "storage path /var/lib/kubelet: 7 of 20 fsync samples: the p99 is judged once the "
        "window holds enough (a slow disk gives fewer per run)"
    ]
    assert ("kubev_storage_fsync_p99_seconds", ("/var/lib/kubelet",)) not in values(built)
    # the next run tops the window up to its minimum, however few fsync_samples asks for
    assert Config().settings(DiskSettings).fsync_samples < 20 - 7


def test_one_run_judges_the_latency(tmp_path: Path) -> None:
    """The check command runs each check once: its one run must reach a verdict."""
    cfg = Config().with_check("disk", fsync_samples=1, fsync_window_min=10, fsync_window=50)
    out = run(make("disk", make_node_tree("compliant", tmp_path, kvm_device=False), cfg))
    h = histograms(out)[("kubev_storage_fsync_latency_seconds", ("/var/lib/kubelet",))]
    assert h.count == 10
    assert (
        observed(out)["disk_latency"]
        == values(out)[("kubev_storage_fsync_p99_seconds", ("/var/lib/kubelet",))]
    )


def test_window_minimum_beyond_the_window_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"checks\.disk\.fsync_window_min: must not exceed "
        r"fsync_window \(10\), got 20",
    ):
        from_mapping({"checks": {"disk": {"fsync_window": 10}}})


@pytest.mark.parametrize("role", [Role.SINGLE_NODE, Role.CONTROL_PLANE])
def test_etcd_data_dir_is_probed_where_etcd_runs(tmp_path: Path, role: Role) -> None:
    tree = make_node_tree("realistic", tmp_path, kvm_device=False)
    etcd = tree / "root" / "var" / "lib" / "etcd"
    before = sorted(os.listdir(etcd))
    out = run(make("disk", tree, replace(Config(), role=role)))
    v = values(out)
    assert v[("kubev_storage_probe_success", ("/var/lib/etcd",))] == 1
    assert v[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    assert observed(out)["disk_latency"] == max(
        v[("kubev_storage_fsync_p99_seconds", (p,))] for p in ("/var/lib/etcd", "/var/lib/kubelet")
    )
    # kubeadm's preflight refuses a data dir that is not empty; etcd warns of strays
    assert sorted(os.listdir(etcd)) == before == ["member"]


def test_etcd_data_dir_is_not_probed_on_workers(tmp_path: Path) -> None:
    out = run(
        make(
            "disk",
            make_node_tree("realistic", tmp_path, kvm_device=False),
            replace(Config(), role=Role.WORKER),
        )
    )
    assert ("kubev_storage_probe_success", ("/var/lib/etcd",)) not in values(out)
    assert not [n for n in out.notes if "etcd" in n.text]


def test_missing_etcd_data_dir_is_a_note_not_a_failure(tmp_path: Path) -> None:
    cfg = replace(Config(), role=Role.CONTROL_PLANE)
    out = run(make("disk", make_node_tree("compliant", tmp_path, kvm_device=False), cfg))
    assert ("kubev_storage_probe_success", ("/var/lib/etcd",)) not in values(out)
    assert (
        "etcd data directory /var/lib/etcd is not on this node (under --path.rootfs): not probed"
        in [n.text for n in out.notes]
    )
    assert observed(out)["disk_latency"] is not None  # judged on the kubelet's path
    assert not out.errors


def test_etcd_data_dir_setting(tmp_path: Path) -> None:
    tree = make_node_tree("realistic", tmp_path, kvm_device=False)
    off = Config().with_check("disk", etcd_data_dir=None)
    assert ("kubev_storage_probe_success", ("/var/lib/etcd",)) not in values(
        run(make("disk", tree, off))
    )
    listed = Config().with_check("disk", storage_paths=("/var/lib/etcd/",))
    out = run(make("disk", tree, listed))  # listed by the admin: probed once, as listed
    paths = {k[1][0] for k in values(out) if k[0] == "kubev_storage_probe_success"}
    assert paths == {"/var/lib/etcd/"}
    assert (
        from_mapping({"checks": {"disk": {"etcd_data_dir": None}}})
        .settings(DiskSettings)
        .etcd_data_dir
        is None
    )
    with pytest.raises(ConfigError, match=r"checks\.disk\.etcd_data_dir: must be an absolute"):
        from_mapping({"checks": {"disk": {"etcd_data_dir": "var/lib/etcd"}}})


def test_a_disk_name_that_is_not_utf8_costs_nothing_else(tmp_path: Path) -> None:
    """The kernel takes any bytes in a name; the label escapes the odd byte, the counters of
    /proc/diskstats still find the device, and the exposition stays valid."""
    tree = make_node_tree("realistic", tmp_path, kvm_device=False)
    odd = os.fsdecode(b"kv\xffd")
    base = tree / "sys" / "block" / odd
    (base / "queue").mkdir(parents=True)
    (base / "queue" / "rotational").write_text("0\n")
    with (tree / "proc" / "diskstats").open("ab") as stats:
        stats.write(b" 252       0 kv\xffd 42 0 336 7 9 0 72 5 0 12 12 0 0 0 0 0 0\n")
    cfg = Config()
    check = make("disk", tree, cfg)
    out = run(check)
    v = values(out)
    assert v[("kubev_disk_info", ("kv\\xffd", "ssd", ""))] == 1
    assert v[("kubev_disk_reads_completed_total", ("kv\\xffd",))] == 42
    assert v[("kubev_disk_info", ("nvme0n1", "nvme", "SAMSUNG MZQL23T8HCLS-00A07"))] == 1
    assert (
        "block device kv\\xffd: the name is not UTF-8; its label writes each byte that is "
        "not as \\xNN"
    ) in [n.text for n in out.notes]
    runtime = Runtime(cfg, [check])
    asyncio.run(runtime.run_once(check))
    body, _ = Exposition(Identity("n", Role.WORKER, Profile.TESTING)).render(
        runtime.snapshot, "", gzipped=False
    )
    assert (
        samples(body.decode())[
            ("kubev_disk_info", (("device", "kv\\xffd"), ("model", ""), ("type", "ssd")))
        ]
        == 1
    )
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.root
def test_an_etcd_data_dir_the_probe_cannot_write_says_what_to_do(tmp_path: Path) -> None:
    """The DaemonSet mounts the host's / read-only: etcd's data directory is there but takes
    no probe until it is mounted writable. The verdict waits for it, and says why."""
    tree = make_node_tree("realistic", tmp_path, kvm_device=False)
    etcd = tree / "root" / "var" / "lib" / "etcd"
    subprocess.run(["mount", "--bind", "-o", "ro", str(etcd), str(etcd)], check=True)
    try:
        out = run(make("disk", tree, replace(Config(), role=Role.CONTROL_PLANE)))
    finally:
        subprocess.run(["umount", str(etcd)], check=True)
    v = values(out)
    assert v[("kubev_storage_probe_success", ("/var/lib/etcd",))] == 0
    assert v[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    assert observed(out)["disk_latency"] is None
    assert out.notes_about(Req.DISK_LATENCY) == [
        "storage path /var/lib/etcd: fsync probe failed: cannot create .kubev-node-exporter: "
        "Read-only file system",
        "etcd data directory /var/lib/etcd: the probe needs it writable (mounted as the "
        "storage paths are), or set checks.disk.etcd_data_dir: null",
    ]


def test_latency_detail_names_the_slowest_path() -> None:
    output = CheckOutput(
        samples=(
            Sample(FSYNC_P99, ("/var/lib/kubelet",), 0.004),
            Sample(FSYNC_P99, ("/var/lib/etcd",), 0.0425),
        )
    )
    assert DiskCheck.detail(Req.DISK_LATENCY, output, Outcome.WARN) == (
        "fsync p99 42.5 ms in /var/lib/etcd"
    )
    assert DiskCheck.detail(Req.DISK_LATENCY, output, Outcome.PASS) == ""
