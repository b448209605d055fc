"""Character devices the VM stack opens: is the node there with the right numbers, may this
process open it, and does the kernel have a driver behind it.

Three facts, kept apart because they mean different things on a node:
- the node (stat): what KubeVirt's device plugins look at. A plugin stats its device path and
  reports its devices Unhealthy while it is missing (kubevirt pkg/virt-handler/
  device-manager/generic_device.go healthCheck), so VMs that need it stay Pending;
- the open (O_RDWR): what QEMU will do. EACCES/EPERM means only that this process may not
  open it (a pod without the devices.kubevirt.io resource, whose device cgroup denies it);
- /proc/misc: the misc drivers the kernel has registered (minor -> name), whatever the open
  says. A node whose open fails with ENODEV or ENXIO and whose minor /proc/misc does not
  list leads nowhere: the module is not loaded (and could not be loaded on demand).

Opening a device whose module is installed but not loaded loads it on demand (misc_open
requests "char-major-10-<minor>"), exactly as QEMU's own open would.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from exporter.fsread import read_text
from exporter.model import CheckError

#: misc character devices (major 10), include/linux/miscdevice.h; also Linux
#: Documentation/admin-guide/devices.txt ("200 = /dev/net/tun", "232 = /dev/kvm",
#: "238 = /dev/vhost-net")
MISC_MAJOR = 10
TUN_MINOR = 200
KVM_MINOR = 232
VHOST_NET_MINOR = 238

#: this process may not open it: file mode, or a device cgroup (a container)
PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM)


def node_problem(path: str, major: int, minor: int, name: str, absent: str) -> str | None:
    """None when `path` is the character device major:minor; else what is wrong with it
    (`absent` is the advice for a path that does not exist)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist: {absent}"
    except OSError as e:
        return f"{path}: {e.strerror}"
    if not stat.S_ISCHR(st.st_mode):
        return f"{path} exists but is not a character device"
    if (os.major(st.st_rdev), os.minor(st.st_rdev)) != (major, minor):
        found = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        return f"{path} is device {found}, not {name}'s {major}:{minor}"
    return None


@dataclass(frozen=True)
class OpenResult:
    """One read-write open of a device node (closed again at once)."""

    errno: int | None = None
    strerror: str = ""

    @property
    def opened(self) -> bool:
        return self.errno is None

    @property
    def not_permitted(self) -> bool:
        return self.errno in PERMISSION_ERRNOS


def open_rw(path: str) -> OpenResult:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        return OpenResult(e.errno, e.strerror or str(e))
    os.close(fd)
    return OpenResult()


#: /proc/misc is a few dozen short lines; more is garbage
MISC_LIMIT = 64 * 1024


def parse_misc(text: str, where: str) -> dict[int, str]:
    """/proc/misc: one "<minor> <name>" per registered misc device."""
    minors: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise CheckError(f"{where}: line {number} is not '<minor> <name>'")
        minors[int(fields[0])] = fields[1]
    return minors


def read_misc(path: Path) -> dict[int, str]:
    return parse_misc(read_text(path, MISC_LIMIT), str(path))
