"""What kind of disk a whole block device is, read from sysfs (re-rootable): nvme, ssd,
hdd, virtual, or unknown.

The kernel's queue/rotational flag is the device's own word. A hypervisor's disk (virtio,
Xen, VMware, Hyper-V, QEMU's emulated and virtio-scsi disks) says rotational=1 whatever
backs it (an SSD pool, a network volume), so it is `virtual`: its medium is unknown here.
A virtual disk gives itself away by its name, its driver, its vendor or model, or the bus
it hangs from; a stacked device (device-mapper, md RAID) on a virtual disk is virtual too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter import names
from exporter.fsread import read_optional

#: Names the kernel's paravirtual block drivers give their disks.
VIRTUAL_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    # drivers/block/virtio_blk.c: virtblk_name_format("vd", index, ...)
    (re.compile(r"^vd[a-z]+$"), "virtio-blk name vd*"),
    # drivers/block/xen-blkfront.c: DEV_NAME "xvd"
    (re.compile(r"^xvd[a-z]+$"), "Xen blkfront name xvd*"),
)
#: The driver bound to the disk's device (device/driver, or DRIVER= in device/uevent).
VIRTUAL_DRIVERS = {
    "virtio_blk": "virtio-blk",  # drivers/block/virtio_blk.c (KBUILD_MODNAME)
    "vbd": "Xen blkfront",  # drivers/block/xen-blkfront.c: the xenbus device type "vbd"
}
#: device/vendor: the SCSI INQUIRY vendor (space-padded), or a virtio device's PCI vendor.
VIRTUAL_VENDORS = {
    "qemu": "QEMU",  # qemu hw/scsi/scsi-disk.c: s->vendor = g_strdup("QEMU") (virtio-scsi too)
    "vmware": "VMware",  # VMware's virtual SCSI disks ("VMware  ", "Virtual disk")
    "msft": "Hyper-V",  # Hyper-V storvsc disks ("Msft    ", "Virtual Disk")
    "google": "Google Compute Engine",  # persistent disks ("Google  ", "PersistentDisk")
    "0x1af4": "virtio",  # the virtio PCI vendor id (Red Hat, Inc.)
}
#: device/model prefixes of emulated disks that report an ordinary vendor ("ATA") or none
VIRTUAL_MODELS = {
    "QEMU HARDDISK": "QEMU",  # qemu hw/ide/core.c and hw/scsi/scsi-disk.c
    "QEMU NVMe Ctrl": "QEMU",  # qemu hw/nvme/ctrl.c
    "VBOX HARDDISK": "VirtualBox",
    "Amazon Elastic Block Store": "Amazon EBS",
}
#: Components of a disk's sysfs device path that only a hypervisor's bus has (lsblk's
#: SUBSYSTEMS reads the same path: block:virtio:pci, block:scsi:virtio:pci).
VIRTUAL_BUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^virtio\d+$"), "on the virtio bus"),
    (re.compile(r"^vbd-\d+$"), "on the Xen bus"),
    (re.compile(r"^VMBUS:", re.IGNORECASE), "on Hyper-V's VMBus"),
)
#: how deep stacked devices may nest (dm on md on dm ...) before the walk stops
MAX_STACK_DEPTH = 8


@dataclass(frozen=True)
class DiskType:
    kind: str  # nvme, ssd, hdd, virtual, unknown
    rotational: bool | None  # the kernel's flag; None when unreadable
    model: str
    #: virtual: what gave it away ("driver virtio_blk", "on virtual disk vda")
    evidence: str = ""


class BlockDevices:
    """The whole block devices of one sysfs tree (block/), classified on demand. One
    instance per run: it remembers what it read for the devices stacked on others."""

    def __init__(self, sysfs: Path) -> None:
        self.sysfs = sysfs
        self.block = sysfs / "block"
        self._types: dict[str, DiskType] = {}
        self._partitions: dict[str, str] | None = None

    def classify(self, name: str) -> DiskType:
        return self._classify(name, 0)

    def _classify(self, name: str, depth: int) -> DiskType:
        known = self._types.get(name)
        if known is not None:
            return known
        disk = self.block / name
        flag = read_optional(disk / "queue" / "rotational")
        rotational = flag == "1" if flag in ("0", "1") else None
        model = (read_optional(disk / "device" / "model") or "").strip()
        evidence = virtual_evidence(disk, model, self.sysfs)
        if evidence is None and depth < MAX_STACK_DEPTH:
            evidence = self._on_virtual(name, depth)
        if rotational is None:
            kind = "unknown"  # sysfs is broken for this device: no other file is trusted
        elif evidence is not None:
            kind = "virtual"
        elif name.startswith("nvme"):
            kind = "nvme"
        else:
            kind = "hdd" if rotational else "ssd"
        result = DiskType(kind, rotational, model, evidence or "")
        self._types[name] = result
        return result

    def _on_virtual(self, name: str, depth: int) -> str | None:
        """A stacked device (dm-*, md*) whose members (slaves/) include a virtual disk."""
        try:
            members = sorted(p.name for p in (self.block / name / "slaves").iterdir())
        except OSError:
            return None
        for member in members:
            whole = self._whole_disk(member)
            if whole is None or whole == name:
                continue
            if self._classify(whole, depth + 1).kind == "virtual":
                return f"on virtual disk {names.label(whole)}"
        return None

    def _whole_disk(self, member: str) -> str | None:
        """The whole disk a member is, or holds it as a partition (vda2 -> vda)."""
        if (self.block / member).is_dir():
            return member
        if self._partitions is None:
            self._partitions = {}
            try:
                disks = list(self.block.iterdir())
            except OSError:
                disks = []
            for disk in disks:
                try:
                    children = list(disk.iterdir())
                except OSError:
                    continue
                for child in children:
                    if (child / "partition").is_file():
                        self._partitions[child.name] = disk.name
        return self._partitions.get(member)


def virtual_evidence(disk: Path, model: str, sysfs: Path) -> str | None:
    """What shows the disk is a hypervisor's, or None. The driver, vendor and model are the
    device's own word; the bus needs a live sysfs; the name is the last resort."""
    device = disk / "device"
    driver = _driver(device)
    if driver in VIRTUAL_DRIVERS:
        return f"driver {driver}, {VIRTUAL_DRIVERS[driver]}"
    vendor = (read_optional(device / "vendor") or "").strip()
    maker = VIRTUAL_VENDORS.get(vendor.lower())
    if maker is not None:
        return f"vendor {vendor}" + ("" if maker == vendor else f", {maker}")
    for prefix, maker in VIRTUAL_MODELS.items():
        if model.startswith(prefix):
            return f"model {model}, {maker}"
    bus = _virtual_bus(disk, sysfs)
    if bus is not None:
        return bus
    for pattern, what in VIRTUAL_NAMES:
        if pattern.match(disk.name):
            return what
    return None


def _driver(device: Path) -> str | None:
    """The bound driver's name: the device/driver symlink (a live sysfs), else DRIVER= in
    device/uevent (what a copied tree keeps)."""
    try:
        return os.path.basename(os.readlink(device / "driver"))
    except OSError:
        pass
    for line in (read_optional(device / "uevent") or "").splitlines():
        key, _, value = line.partition("=")
        if key == "DRIVER":
            return value.strip()
    return None


def _virtual_bus(disk: Path, sysfs: Path) -> str | None:
    """On a live sysfs block/<name> is a symlink into devices/, whose path names each bus
    the disk hangs from (devices/pci0000:00/0000:00:02.0/virtio1/block/vda)."""
    try:
        resolved = disk.resolve(strict=True).relative_to(sysfs.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):
        return None
    for part in resolved.parts:
        for pattern, what in VIRTUAL_BUSES:
            if pattern.match(part):
                return what
    return None
