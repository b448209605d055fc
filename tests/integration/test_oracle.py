"""Independent oracle: Debian's prometheus-node-exporter on the same fixture trees and on
this machine. Cores, MemTotal, link state, MTU, speeds and disk counters must agree with
ours, except where node_exporter is wrong, which the comparison names.

node_exporter 1.5 exports no rotational flag, so `lsblk` (util-linux) is the oracle for it,
and for which disks hang from a hypervisor's bus (its SUBSYSTEMS column).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    NodeTree,
    answers,
    fixture_args,
    free_port,
    http_get,
    running,
    samples,
    value,
    wait_until,
)

HOST_CHECKS = ("kvm", "compute", "disk", "network")
#: one run of each host check, with room for a busy machine: the checks' threads run at
#: nice 10, and the disk check's fsync probe waits behind everyone else's writes
ONE_RUN = "checks:\n" + "".join(f"  {c}: {{interval: 1h, timeout: 1m}}\n" for c in HOST_CHECKS)


@contextlib.contextmanager
def node_exporter(*args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.diskstats",
            "--collector.netclass",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: answers(url), "node_exporter serving")
        yield url
    finally:
        proc.terminate()
        proc.wait()


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples(text).items() if n == name}


def first_runs_succeeded(ours: str) -> None:
    """What is compared below is there: each host check's first run, successful."""
    for check in HOST_CHECKS:
        runs = value(ours, "kubev_check_runs_total", check=check, result="success")
        assert runs == 1, f"{check}: {runs} successful runs"


def compare(ours: str, theirs: str) -> None:
    cpus = {dict(labels)["cpu"] for (n, labels) in samples(theirs) if n == "node_cpu_seconds_total"}
    assert value(ours, "kubev_cpu_logical_cores") == len(cpus)
    assert value(ours, "kubev_memory_total_bytes") == value(theirs, "node_memory_MemTotal_bytes")

    our_links = by_label(ours, "kubev_network_up", "interface")
    assert our_links
    assert our_links == {
        link: up
        for link, up in by_label(theirs, "node_network_up", "device").items()
        if link in our_links
    }
    our_mtu = by_label(ours, "kubev_network_mtu_bytes", "interface")
    their_mtu = by_label(theirs, "node_network_mtu_bytes", "device")
    assert our_mtu == {link: their_mtu[link] for link in our_links}

    their_speeds = by_label(theirs, "node_network_speed_bytes", "device")
    our_speeds = by_label(ours, "kubev_network_speed_bytes", "interface")
    for link, speed in our_speeds.items():
        assert their_speeds[link] == speed, link
    for link in our_links:
        # node_exporter is wrong here: a speed of -1 becomes -125000 bytes/s, an empty speed
        # file (a down link) 0. The link has no speed: we export none.
        if their_speeds.get(link, -1) <= 0:
            assert link not in our_speeds, link
    # the bonding driver's control file is no link (node_exporter 1.5 skips it too)
    assert "bonding_masters" not in set(our_links) | set(their_speeds)


def compare_disks(ours: str, theirs: str) -> None:
    for ours_name, theirs_name in (
        ("kubev_disk_reads_completed_total", "node_disk_reads_completed_total"),
        ("kubev_disk_writes_completed_total", "node_disk_writes_completed_total"),
        ("kubev_disk_read_time_seconds_total", "node_disk_read_time_seconds_total"),
        ("kubev_disk_write_time_seconds_total", "node_disk_write_time_seconds_total"),
    ):
        our_disks = by_label(ours, ours_name, "device")
        assert our_disks, ours_name
        assert our_disks == {
            d: v for d, v in by_label(theirs, theirs_name, "device").items() if d in our_disks
        }


@pytest.mark.root
@pytest.mark.parametrize("shape", ["compliant", "undersized", "realistic", "cloudvm"])
def test_fixture_trees_agree(shape: str, node_tree: NodeTree, tmp_path: Path) -> None:
    tree = node_tree(shape)
    config = tmp_path / "c.yaml"
    config.write_text(ONE_RUN)
    with running(fixture_args(tree, config)) as exporter:
        ours = exporter.metrics()  # ready: every check's first result is served
    first_runs_succeeded(ours)
    with node_exporter(
        f"--path.procfs={tree / 'proc'}",
        f"--path.sysfs={tree / 'sys'}",
        f"--path.rootfs={tree / 'root'}",
    ) as url:
        theirs = http_get(url).text
    compare(ours, theirs)
    compare_disks(ours, theirs)
    # node_exporter counts whole disks as we do: partitions are left out of both
    their_disks = set(by_label(theirs, "node_disk_reads_completed_total", "device"))
    our_disks = set(by_label(ours, "kubev_disk_reads_completed_total", "device"))
    assert our_disks == their_disks - {"loop0", "sr0"}  # excluded by our default filter


def test_this_machine_agrees(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(ONE_RUN.replace("  disk: {", f"  disk: {{storage_paths: [{tmp_path}], "))
    with node_exporter() as url:
        before = http_get(url).text
        with running([f"--config.file={config}"]) as exporter:
            ours = exporter.metrics()
        after = http_get(url).text
    first_runs_succeeded(ours)
    compare(ours, after)
    # our single disk run happened between the two node_exporter scrapes
    for ours_name, theirs_name in (
        ("kubev_disk_reads_completed_total", "node_disk_reads_completed_total"),
        ("kubev_disk_writes_completed_total", "node_disk_writes_completed_total"),
    ):
        low, high = by_label(before, theirs_name, "device"), by_label(after, theirs_name, "device")
        for disk, count in by_label(ours, ours_name, "device").items():
            assert low[disk] <= count <= high[disk], (ours_name, disk)

    lsblk = subprocess.run(
        ["lsblk", "-d", "-n", "-o", "NAME,ROTA,SUBSYSTEMS"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {name: (rota, buses) for name, rota, buses in (ln.split() for ln in lsblk.splitlines())}
    ours_rota = by_label(ours, "kubev_disk_rotational", "device")
    assert ours_rota
    for disk, flag in ours_rota.items():
        assert flag == float(rows[disk][0]), disk
    # a disk on a hypervisor's bus is virtual (this machine: vda, block:virtio:pci), not hdd
    types = {
        dict(labels)["device"]: dict(labels)["type"]
        for (n, labels) in samples(ours)
        if n == "kubev_disk_info"
    }
    for disk, (_, buses) in rows.items():
        if disk in types and {"virtio", "xen", "vmbus"} & set(buses.split(":")):
            assert types[disk] == "virtual", (disk, buses)
    if "vda" in rows:
        assert types["vda"] == "virtual"
