"""Kernel modules: which are loaded, built in, or installed for the running kernel.

Three sources, each re-rooted (--path.procfs, --path.sysfs, --path.rootfs):
- /proc/modules: the loadable modules loaded now. A kernel built without module support
  (CONFIG_MODULES=n) has no such file: then every driver is built in;
- /sys/module/<name>: loaded modules, and built-in ones that have parameters or a version.
  Not every built-in module appears there, so a device that exists outranks a missing entry
  (the checks judge kvm, tun and vhost_net by their devices);
- /lib/modules/<release>/modules.builtin and modules.dep (the release from
  /proc/sys/kernel/osrelease): every module built in, and every module installed that the
  kernel can load on demand (Open vSwitch's datapath loads openvswitch and geneve itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.fsread import read_optional, read_text
from exporter.model import CheckError
from exporter.paths import Paths

#: modules that provide /dev/kvm on top of kvm: Intel VT-x, AMD-V, PVM (a paravirtual
#: backend outside the mainline kernel that runs KVM without VT-x/AMD-V, as on some cloud VMs;
#: the machine this exporter is developed on runs it), and PowerPC's two
KVM_BACKENDS = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr")

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: more entries than this under /sys/module is not a kernel
MAX_SYSFS_MODULES = 20_000


def module_name(name: str) -> str:
    """The kernel treats - and _ in module names alike; /proc/modules shows _."""
    return name.replace("-", "_")


def parse_proc_modules(text: str, where: str) -> frozenset[str]:
    """/proc/modules: "<name> <size> <refcount> <deps> <state> <address> [taints]"."""
    names = set()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 6 or not _NAME.match(fields[0]) or not fields[1].isdigit():
            raise CheckError(f"{where}: line {number} is not a module entry")
        names.add(module_name(fields[0]))
    return frozenset(names)


def _file_module(path: str) -> str:
    """kernel/net/openvswitch/openvswitch.ko.zst -> openvswitch"""
    base = path.rsplit("/", 1)[-1]
    return module_name(base.split(".ko", 1)[0])


def parse_modules_list(text: str) -> frozenset[str]:
    """modules.builtin ("path.ko" per line) or modules.dep ("path.ko[.xz]: deps")."""
    names = set()
    for line in text.splitlines():
        path = line.split(":", 1)[0].strip()
        if ".ko" in path:
            names.add(_file_module(path))
    return frozenset(names)


@dataclass(frozen=True)
class Modules:
    """What the node's kernel says about its modules. None: that source could not be read."""

    #: /proc/modules (empty on a kernel without loadable modules)
    loaded: frozenset[str]
    #: names under /sys/module
    sysfs: frozenset[str] | None
    #: the running kernel's modules.builtin and modules.dep
    builtin: frozenset[str] | None
    installed: frozenset[str] | None
    #: where the module lists were looked for, when they were not found
    release: str | None = None

    def is_loaded(self, name: str) -> bool:
        """Loaded now, or built into the kernel."""
        name = module_name(name)
        return name in self.loaded or name in (self.sysfs or ()) or name in (self.builtin or ())

    def is_available(self, name: str) -> bool:
        """Loaded, built in, or installed for the running kernel (loadable on demand)."""
        return self.is_loaded(name) or module_name(name) in (self.installed or ())


def read_loaded(paths: Paths) -> frozenset[str]:
    path = paths.proc("modules")
    if not path.exists():
        return frozenset()  # CONFIG_MODULES=n: nothing is loadable, everything built in
    return parse_proc_modules(read_text(path), str(path))


def in_sysfs(paths: Paths, name: str) -> bool:
    return paths.sys("module", module_name(name)).is_dir()


def read_sysfs(paths: Paths) -> frozenset[str] | None:
    try:
        entries = []
        for entry in paths.sys("module").iterdir():
            entries.append(entry.name)
            if len(entries) > MAX_SYSFS_MODULES:
                return None
    except OSError:
        return None
    return frozenset(module_name(e) for e in entries)


def read_modules(paths: Paths) -> tuple[Modules, list[str]]:
    """Every source; the notes say which could not be read (the rest still count)."""
    notes: list[str] = []
    loaded = read_loaded(paths)
    sysfs = read_sysfs(paths)
    if sysfs is None:
        notes.append(f"{paths.sys('module')} cannot be listed: built-in modules unknown")
    release = read_optional(paths.proc("sys", "kernel", "osrelease"))
    builtin = installed = None
    if release and "/" not in release and release not in (".", ".."):
        for base in ("lib/modules", "usr/lib/modules"):
            directory = paths.root(f"/{base}/{release}")
            builtin_text = read_optional(directory / "modules.builtin", 4 * 1024 * 1024)
            dep_text = read_optional(directory / "modules.dep", 4 * 1024 * 1024)
            if builtin_text is not None or dep_text is not None:
                builtin = parse_modules_list(builtin_text or "")
                installed = parse_modules_list(dep_text or "")
                break
        else:
            notes.append(
                f"no modules.dep for kernel {release} under {paths.root('/lib/modules')}: "
                "modules installed but not loaded are not seen"
            )
    else:
        notes.append("the kernel release is unknown: installed modules are not seen")
    return Modules(loaded, sysfs, builtin, installed, release), notes


def kvm_backends(paths: Paths, loaded: frozenset[str]) -> list[str]:
    """The KVM backend modules loaded or built in (usually one)."""
    return [m for m in KVM_BACKENDS if m in loaded or in_sysfs(paths, m)]
