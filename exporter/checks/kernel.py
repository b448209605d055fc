"""Kernel: the modules, cgroup controllers and IOMMU the VM and network stack rely on.

- Modules: kvm and its backend, tun, vhost_net, openvswitch and geneve are reported (loaded or
  built in; available, i.e. also installed for the running kernel). The kernel_modules
  requirement judges the ones no device judges: openvswitch (Kube-OVN's datapath) always,
  geneve where Geneve is used. kvm, tun and vhost_net are judged by their devices (the kvm
  and devices checks): a built-in driver need not show in /sys/module, and a missing module
  should fail one row, not two. openvswitch and geneve have network devices that likewise
  prove them: ovs-system (OVS's datapath) and genev_sys_6081.
  "Geneve is used" here, kept simple: the genev_sys_6081 device exists (OVS made a tunnel) or
  the role is multi-node (Kube-OVN's default tunnel type). The ports check settles the tunnel
  in more detail (exporter/checks/ports.py situation()); a multi-node cluster on vxlan still
  counts as using Geneve here, which costs only a module that is installed on every
  mainstream kernel.
- cgroup controllers as `virt-host-validate qemu` checks them (libvirt
  tools/virt-host-validate-qemu.c: memory, cpu, cpuacct, cpuset, devices, blkio). On cgroup
  v2 (/sys/fs/cgroup/cgroup.controllers exists) the names map as libvirt's vircgroupv2.c maps
  them: io is blkio, cpuacct comes with cpu (cpu.stat), and devices is an eBPF program rather
  than a listed controller, so it counts as present (kubernetes/system-validators
  cgroup_validator_linux.go getCgroupV2Subsystems assumes the same). On v1 (and hybrid) a
  controller counts when /proc/cgroups has it enabled and mounted (hierarchy > 0).
- IOMMU, informational (device passthrough needs it): the groups under /sys/kernel/iommu_groups
  (none: disabled or absent) and the ACPI tables virt-host-validate looks for, DMAR (Intel
  VT-d) and IVRS (AMD-Vi).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.checks.base import BlockingCheck, RequirementRow
from exporter.checks.chardev import KVM_MINOR, TUN_MINOR, VHOST_NET_MINOR, read_misc
from exporter.checks.kmod import kvm_backends, read_modules
from exporter.checks.ports import TUNNEL_DEVICES
from exporter.fsread import read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.settings import CheckSettings
from exporter.spec import (
    CGROUP_CONTROLLERS_REQUIRED,
    KERNEL_MODULES_FOR_GENEVE,
    KERNEL_MODULES_REQUIRED,
    Req,
    Role,
)

#: the controllers virt-host-validate qemu checks, by their v1 names
VALIDATED_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio")
#: reported beside the judged ones (these three are judged by their devices elsewhere), with
#: the misc driver each registers: a built-in driver need not appear in /sys/module, but it
#: always appears in /proc/misc
DEVICE_MODULES = {
    "kvm": (KVM_MINOR, "kvm"),
    "tun": (TUN_MINOR, "tun"),
    "vhost_net": (VHOST_NET_MINOR, "vhost-net"),
}
#: network devices that exist only while the module works, so they judge it like a device
#: node does (a built-in module need not be in /sys/module): OVS's kernel datapath device
#: (libvirt src/util/virnetdevtap.c: "IFLA_MASTER for a tap on an OVS switch is always
#: ovs-system") and the Geneve tunnel OVS makes
MODULE_NET_DEVICES = {"openvswitch": "ovs-system", "geneve": TUNNEL_DEVICES["geneve"]}
IOMMU_TABLES = ("DMAR", "IVRS")
#: /proc/cgroups has one short line per controller
CGROUPS_LIMIT = 64 * 1024
#: far more IOMMU groups than any machine has
MAX_IOMMU_GROUPS = 100_000

METRICS = MetricGroup("kernel")
MODULE_LOADED = METRICS.gauge(
    "kubev_kernel_module_loaded",
    "1 if the kernel module is loaded or built in (/proc/modules, /sys/module, "
    "modules.builtin; or what only a working module makes: the kvm, tun and vhost-net "
    "drivers in /proc/misc, the ovs-system and genev_sys_6081 devices), 0 if not.",
    ("module",),
)
MODULE_AVAILABLE = METRICS.gauge(
    "kubev_kernel_module_available",
    "1 if the kernel module is loaded, built in, or installed for the running kernel "
    "(modules.dep under --path.rootfs: loadable on demand), 0 if none of these.",
    ("module",),
)
CGROUP_VERSION = METRICS.gauge(
    "kubev_cgroup_version",
    "The cgroup hierarchy the node runs: 2 (unified) or 1 (legacy or hybrid).",
)
CGROUP_CONTROLLER = METRICS.gauge(
    "kubev_cgroup_controller_available",
    "1 if the cgroup controller (v1 name) is available, as virt-host-validate qemu checks it; "
    "on cgroup v2 io counts as blkio, cpu brings cpuacct, and devices is eBPF (present).",
    ("controller",),
)
IOMMU_GROUPS = METRICS.gauge(
    "kubev_iommu_groups",
    "IOMMU groups the kernel made (/sys/kernel/iommu_groups); 0: the IOMMU is disabled or "
    "absent, so no device passthrough. Informational.",
)
IOMMU_TABLE = METRICS.gauge(
    "kubev_iommu_firmware_table_present",
    "1 if the firmware's ACPI table for an IOMMU exists (DMAR: Intel VT-d, IVRS: AMD-Vi).",
    ("table",),
)


@dataclass(frozen=True, kw_only=True)
class KernelSettings(CheckSettings):
    pass


@dataclass(frozen=True)
class Cgroups:
    version: int
    available: frozenset[str]


def parse_proc_cgroups(text: str, where: str) -> frozenset[str]:
    """/proc/cgroups: the v1 controllers enabled and mounted on a hierarchy."""
    available = set()
    lines = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]):
            raise CheckError(f"{where}: line {number} is not '<name> <hierarchy> <cgroups> <on>'")
        lines += 1
        name, hierarchy, _, enabled = fields
        if enabled == "1" and int(hierarchy) > 0:
            available.add(name)
    if not lines:
        raise CheckError(f"{where}: no controller lines")
    return frozenset(available)


def v2_controllers(listed: str) -> frozenset[str]:
    """cgroup.controllers in v1 names (libvirt src/util/vircgroupv2.c)."""
    names = set(listed.split())
    if "io" in names:
        names.add("blkio")
    if "cpu" in names:
        names.add("cpuacct")  # "In cgroup v2 there is no cpuacct controller": cpu.stat has it
    names.add("devices")  # eBPF (kernel 4.15+), never listed
    return frozenset(names)


class KernelCheck(BlockingCheck[KernelSettings]):
    name = "kernel"
    area = ("kernel", "Kernel")
    settings_type = KernelSettings
    defaults = KernelSettings(interval=60.0, timeout=5.0)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.KERNEL_MODULES,
            "KubevKernelModuleMissing",
            "Install the kernel's extra modules package (linux-modules-extra, kernel-modules) "
            "and modprobe openvswitch (and geneve); load them at boot (/etc/modules-load.d/).",
        ),
        RequirementRow(
            Req.CGROUP_CONTROLLERS,
            "KubevCgroupControllerMissing",
            "Enable the missing controllers: on cgroup v2 in the parent's "
            "cgroup.subtree_control (systemd does it for its slices), on v1 mount them; a "
            "kernel without them needs a rebuild (CONFIG_CGROUP_*, CONFIG_MEMCG, CONFIG_CPUSETS).",
        ),
    )

    def collect(self) -> CheckOutput:
        out = self.output()
        self._modules(out)
        self._cgroups(out)
        self._iommu(out)
        return out.build()

    # --- modules ----------------------------------------------------------------------

    def _modules(self, out: OutputBuilder) -> None:
        try:
            modules, notes = read_modules(self.paths)
        except CheckError as e:
            out.fail(str(e), Req.KERNEL_MODULES)
            return
        out.notes(notes)
        try:
            misc = read_misc(self.paths.proc("misc"))
        except CheckError as e:
            out.note(str(e))
            misc = {}
        backends = kvm_backends(self.paths, modules.loaded)
        reported = ("kvm", *backends, "tun", "vhost_net", *KERNEL_MODULES_REQUIRED)
        for name in (*reported, *KERNEL_MODULES_FOR_GENEVE):
            minor, driver = DEVICE_MODULES.get(name, (None, None))
            registered = minor is not None and misc.get(minor) == driver
            loaded = modules.is_loaded(name) or registered or self._net_device_of(name)
            out.add(MODULE_LOADED, loaded, module=name)
            out.add(MODULE_AVAILABLE, loaded or modules.is_available(name), module=name)
        judged = list(KERNEL_MODULES_REQUIRED)
        if self._geneve_used():
            judged += KERNEL_MODULES_FOR_GENEVE
        if modules.sysfs is None:
            out.observe(Req.KERNEL_MODULES, None)
            return
        missing = [
            name
            for name in judged
            if not modules.is_available(name) and not self._net_device_of(name)
        ]
        if missing:
            where = f"kernel {modules.release}" if modules.release else "the running kernel"
            out.note(
                f"not loaded, built in or installed for {where}: {', '.join(missing)} "
                f"(modprobe {missing[0]})",
                Req.KERNEL_MODULES,
            )
        out.observe(Req.KERNEL_MODULES, not missing)

    def _net_device_of(self, module: str) -> bool:
        device = MODULE_NET_DEVICES.get(module)
        return device is not None and self.paths.sys("class", "net", device).exists()

    def _geneve_used(self) -> bool:
        return self._net_device_of("geneve") or self.config.role is not Role.SINGLE_NODE

    # --- cgroups ----------------------------------------------------------------------

    def _cgroups(self, out: OutputBuilder) -> None:
        try:
            cgroups = self._read_cgroups()
        except CheckError as e:
            out.fail(str(e), Req.CGROUP_CONTROLLERS)
            return
        out.add(CGROUP_VERSION, cgroups.version)
        for controller in VALIDATED_CONTROLLERS:
            out.add(CGROUP_CONTROLLER, controller in cgroups.available, controller=controller)
        missing = [c for c in CGROUP_CONTROLLERS_REQUIRED if c not in cgroups.available]
        if missing:
            out.note(
                f"cgroup v{cgroups.version} lacks the {', '.join(missing)} controller"
                + ("s" if len(missing) > 1 else ""),
                Req.CGROUP_CONTROLLERS,
            )
        out.observe(Req.CGROUP_CONTROLLERS, not missing)

    def _read_cgroups(self) -> Cgroups:
        unified = self.paths.sys("fs", "cgroup", "cgroup.controllers")
        if unified.exists():
            return Cgroups(2, v2_controllers(read_text(unified, CGROUPS_LIMIT)))
        path = self.paths.proc("cgroups")
        return Cgroups(1, parse_proc_cgroups(read_text(path, CGROUPS_LIMIT), str(path)))

    # --- IOMMU ------------------------------------------------------------------------

    def _iommu(self, out: OutputBuilder) -> None:
        groups = 0
        try:
            for _ in self.paths.sys("kernel", "iommu_groups").iterdir():
                groups += 1
                if groups >= MAX_IOMMU_GROUPS:
                    break
        except OSError:
            groups = 0  # no IOMMU support in the kernel at all
        out.add(IOMMU_GROUPS, groups)
        for table in IOMMU_TABLES:
            present = self.paths.sys("firmware", "acpi", "tables", table).exists()
            out.add(IOMMU_TABLE, present, table=table)
