"""Disk types from sysfs: hypervisors' disks are `virtual` whatever rotational says, the
stacked devices (dm, md) follow their members, and a real spinning disk still fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.checks.blockdev import BlockDevices
from exporter.config import Config
from exporter.settings import NameFilter
from exporter.spec import Req
from tests.checkrun import make, observed, run, values
from tests.helpers import make_node_tree


def disk(sysfs: Path, name: str, rotational: str = "1", **device: str) -> Path:
    """A whole disk as a copied sysfs holds it (files only); device/ keys as given."""
    base = sysfs / "block" / name
    (base / "queue").mkdir(parents=True)
    (base / "queue" / "rotational").write_text(rotational + "\n")
    (base / "device").mkdir()
    for key, text in device.items():
        (base / "device" / key).write_text(text + "\n")
    return base


@pytest.mark.parametrize(
    ("name", "device", "evidence"),
    [
        ("vdb", {"uevent": "DRIVER=virtio_blk"}, "driver virtio_blk, virtio-blk"),
        ("xvda", {"uevent": "DRIVER=vbd"}, "driver vbd, Xen blkfront"),
        ("xvdb", {}, "Xen blkfront name xvd*"),
        ("vdc", {}, "virtio-blk name vd*"),
        ("sdb", {"vendor": "VMware  ", "model": "Virtual disk"}, "vendor VMware"),
        ("sdc", {"vendor": "Msft    ", "model": "Virtual Disk"}, "vendor Msft, Hyper-V"),
        ("sdd", {"vendor": "QEMU    ", "model": "QEMU HARDDISK"}, "vendor QEMU"),
        ("sde", {"vendor": "ATA     ", "model": "QEMU HARDDISK"}, "model QEMU HARDDISK, QEMU"),
        (
            "sdf",
            {"vendor": "ATA     ", "model": "VBOX HARDDISK"},
            "model VBOX HARDDISK, VirtualBox",
        ),
        (
            "sdg",
            {"vendor": "Google  ", "model": "PersistentDisk"},
            "vendor Google, Google Compute Engine",
        ),
        (
            "nvme1n1",
            {"model": "Amazon Elastic Block Store"},
            "model Amazon Elastic Block Store, Amazon EBS",
        ),
        ("nvme2n1", {"model": "QEMU NVMe Ctrl"}, "model QEMU NVMe Ctrl, QEMU"),
    ],
)
def test_hypervisor_disks_are_virtual(
    tmp_path: Path, name: str, device: dict[str, str], evidence: str
) -> None:
    disk(tmp_path, name, **device)
    found = BlockDevices(tmp_path).classify(name)
    assert (found.kind, found.rotational, found.evidence) == ("virtual", True, evidence)


@pytest.mark.parametrize(
    ("name", "rotational", "device", "kind"),
    [
        ("sda", "1", {"vendor": "ATA     ", "model": "ST1000DM003-1CH162"}, "hdd"),
        ("sdb", "0", {"vendor": "ATA     ", "model": "INTEL SSDSC2KB960G8"}, "ssd"),
        ("sdc", "1", {"vendor": "SEAGATE ", "uevent": "DEVTYPE=scsi_device\nDRIVER=sd"}, "hdd"),
        ("nvme0n1", "0", {"model": "Samsung SSD 980 PRO 1TB"}, "nvme"),
        ("vdisk0", "1", {}, "hdd"),  # only vd + letters is virtio's naming
    ],
)
def test_real_disks_keep_their_kind(
    tmp_path: Path, name: str, rotational: str, device: dict[str, str], kind: str
) -> None:
    disk(tmp_path, name, rotational, **device)
    assert BlockDevices(tmp_path).classify(name).kind == kind


def test_the_bus_in_a_live_sysfs_path_shows_a_virtio_scsi_disk(tmp_path: Path) -> None:
    """On a live sysfs block/sdb is a symlink into devices/: a virtio-scsi disk with an
    unremarkable vendor still hangs from a virtioN device, as lsblk's SUBSYSTEMS shows."""
    sysfs = tmp_path / "sys"
    real = sysfs / "devices/pci0000:00/0000:00:04.0/virtio2/host0/target0:0:0/0:0:0:0/block/sdb"
    (real / "queue").mkdir(parents=True)
    (real / "queue" / "rotational").write_text("1\n")
    (sysfs / "block").mkdir()
    os.symlink(os.path.relpath(real, sysfs / "block"), sysfs / "block" / "sdb")
    found = BlockDevices(sysfs).classify("sdb")
    assert (found.kind, found.evidence) == ("virtual", "on the virtio bus")


def test_the_path_outside_the_sysfs_root_does_not_count(tmp_path: Path) -> None:
    """Only the part of the path under the sysfs root is read: a tree that happens to sit
    in a directory named like a bus is no evidence."""
    sysfs = tmp_path / "virtio1" / "sys"
    disk(sysfs, "sda", vendor="ATA     ")
    assert BlockDevices(sysfs).classify("sda").kind == "hdd"


def test_this_machines_disks() -> None:
    """This machine's own sysfs: every disk lsblk would call virtio is virtual here."""
    sysfs = Path("/sys")
    for entry in sorted((sysfs / "block").iterdir()):
        resolved = entry.resolve()
        if any(part.startswith("virtio") for part in resolved.parts):
            found = BlockDevices(sysfs).classify(entry.name)
            assert found.kind == "virtual", (entry.name, found)


def test_a_cloud_vm_leaves_the_medium_unknown(tmp_path: Path) -> None:
    out = run(make("disk", make_node_tree("cloudvm", tmp_path)))
    v = values(out)
    assert {k[1] for k in v if k[0] == "kubev_disk_info"} == {
        ("vda", "virtual", ""),
        ("sda", "virtual", "QEMU HARDDISK"),
        ("dm-0", "virtual", ""),  # LVM on vda2
    }  # sr0 excluded by default; vda1 and vda2 are partitions, not whole disks
    assert v[("kubev_disk_rotational", ("vda",))] == 1  # what the kernel says, still shown
    assert observed(out)["storage_solid_state"] is None
    notes = out.notes_about(Req.STORAGE_SOLID_STATE)
    assert notes[0].startswith("dm-0 is a virtual disk (on virtual disk vda)")
    assert all("judge by the hypervisor's storage" in n for n in notes)
    assert v[("kubev_disk_reads_completed_total", ("dm-0",))] == 90400


def test_a_spinning_disk_fails_beside_a_virtual_one(tmp_path: Path) -> None:
    tree = make_node_tree("undersized", tmp_path)
    disk(tree / "sys", "vda", uevent="DRIVER=virtio_blk")
    out = run(make("disk", tree))
    v = values(out)
    assert v[("kubev_disk_info", ("vda", "virtual", ""))] == 1
    assert v[("kubev_disk_info", ("sda", "hdd", "ST1000DM003-1CH162"))] == 1
    assert observed(out)["storage_solid_state"] == 0


def test_narrowing_to_the_real_disks_judges_them(tmp_path: Path) -> None:
    """The note's advice works: with the virtual disks left out the verdict is judged."""
    tree = make_node_tree("compliant", tmp_path, kvm_device=False)
    disk(tree / "sys", "vdb", uevent="DRIVER=virtio_blk")
    assert observed(run(make("disk", tree)))["storage_solid_state"] is None
    narrowed = Config().with_check("disk", devices=NameFilter(include="^(nvme|sd)"))
    assert observed(run(make("disk", tree, narrowed)))["storage_solid_state"] == 1


def test_stacked_devices_and_namespaces_of_a_real_node(tmp_path: Path) -> None:
    out = run(make("disk", make_node_tree("realistic", tmp_path, kvm_device=False)))
    v = values(out)
    assert {k[1] for k in v if k[0] == "kubev_disk_info"} == {
        ("nvme0n1", "nvme", "SAMSUNG MZQL23T8HCLS-00A07"),
        ("nvme0n2", "nvme", "SAMSUNG MZQL23T8HCLS-00A07"),
        ("sda", "ssd", "INTEL SSDSC2KB960G8"),
        ("sdb", "ssd", "INTEL SSDSC2KB960G8"),
        ("md0", "ssd", ""),  # RAID1 of the two SSDs
        ("dm-0", "ssd", ""),  # LVM on md0
    }  # partitions nvme0n1p1/p2 have counters in diskstats but are not whole disks
    assert ("kubev_disk_reads_completed_total", ("nvme0n1p1",)) not in v
    assert v[("kubev_disk_writes_completed_total", ("md0",))] == 218000
    assert observed(out)["storage_solid_state"] == 1


def test_a_stacking_loop_ends(tmp_path: Path) -> None:
    """A garbled tree where two devices hold each other: the walk stops, nothing hangs."""
    for name, other in (("dm-0", "dm-1"), ("dm-1", "dm-0")):
        base = disk(tmp_path, name, "1")
        (base / "slaves" / other).mkdir(parents=True)
    assert BlockDevices(tmp_path).classify("dm-0").kind == "hdd"
