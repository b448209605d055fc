"""KVM: is /dev/kvm there, does it work, and what does the CPU say about virtualization.

A usable /dev/kvm and the vmx/svm CPU flag are separate facts: a VM host can offer
paravirtual KVM without exposing the flag (the kvm_pvm backend), and a flag can be set while
the module is not loaded. Both are reported as they are, with the backend module that gives
/dev/kvm its other half (kvm_intel, kvm_amd, kvm_pvm...).

A /dev/kvm that is the KVM device but refuses this process for permission only (EACCES,
EPERM: a pod without KubeVirt's device resource, or a user outside the kvm group) is told
apart from a missing or broken one, as the devices check does for tun and vhost-net, and
noted the same way. The KVM requirement then reads unknown rather than met: it asks for a
device that creates a VM, and that was not tried.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

from exporter.checks.base import BlockingCheck, RequirementRow, samples_of
from exporter.checks.chardev import KVM_MINOR, MISC_MAJOR, PERMISSION_ERRNOS, node_problem
from exporter.checks.cpuinfo import parse_cpuinfo
from exporter.checks.devices import RESOURCE_PREFIX
from exporter.checks.kmod import KVM_BACKENDS, kvm_backends, read_loaded
from exporter.fsread import read_optional, read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.settings import CheckSettings
from exporter.spec import Req
from exporter.verdicts import Outcome

# ioctl numbers from <linux/kvm.h>: _IO(KVMIO=0xAE, nr)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_NR_VCPUS = 9
KVM_CAP_MAX_VCPUS = 66
EXPECTED_API_VERSION = 12

METRICS = MetricGroup("kvm")
KVM_DEVICE_PRESENT = METRICS.gauge(
    "kubev_kvm_device_present",
    "1 if /dev/kvm exists and is the KVM character device (10:232).",
)
KVM_USABLE = METRICS.gauge(
    "kubev_kvm_usable",
    "1 if /dev/kvm opened, reported API version 12 and KVM_CREATE_VM succeeded.",
)
KVM_API_VERSION = METRICS.gauge(
    "kubev_kvm_api_version",
    "KVM_GET_API_VERSION of /dev/kvm (12 on every supported kernel).",
)
KVM_MAX_VCPUS = METRICS.gauge(
    "kubev_kvm_max_vcpus",
    "Maximum vCPUs per VM the kernel allows (KVM_CAP_MAX_VCPUS).",
)
CPU_VIRT_EXTENSIONS = METRICS.gauge(
    "kubev_cpu_virtualization_extensions_present",
    "1 if /proc/cpuinfo shows the vmx (Intel VT-x) or svm (AMD-V) flag.",
)
KVM_NESTED = METRICS.gauge(
    "kubev_kvm_nested_enabled",
    "1 if the kvm_intel or kvm_amd module has nested virtualization enabled.",
)
HOST_IS_VM = METRICS.gauge(
    "kubev_host_is_virtual_machine",
    "1 if /proc/cpuinfo shows the hypervisor flag: this host is itself a VM.",
)
KVM_BACKEND = METRICS.gauge(
    "kubev_kvm_backend_info",
    "Always 1; a KVM backend module loaded or built in (" + ", ".join(KVM_BACKENDS) + "; "
    "/proc/modules or /sys/module). kvm_pvm is a paravirtual backend that gives a working "
    "/dev/kvm without the vmx/svm flag.",
    ("module",),
)


@dataclass(frozen=True, kw_only=True)
class KvmSettings(CheckSettings):
    pass


class KvmCheck(BlockingCheck[KvmSettings]):
    name = "kvm"
    area = ("kvm", "KVM")
    settings_type = KvmSettings
    defaults = KvmSettings(interval=60.0, timeout=5.0)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.VIRTUALIZATION_EXTENSIONS,
            "KubevVirtualizationExtensionsMissing",
            "Enable Intel VT-x / AMD-V (SVM) in the firmware setup; in a VM, use a hypervisor "
            "or instance type with nested virtualization.",
        ),
        RequirementRow(
            Req.KVM,
            "KubevKVMUnusable",
            "Enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd; in a VM, "
            "enable nested virtualization; give the exporter access to /dev/kvm.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        hidden = requirement is Req.VIRTUALIZATION_EXTENSIONS and outcome is not Outcome.PASS
        if hidden and any(s.value == 1 for s in samples_of(output, HOST_IS_VM)):
            return "this host is itself a VM (hypervisor flag): its hypervisor hides VT-x/AMD-V"
        return super().detail(requirement, output, outcome)

    def collect(self) -> CheckOutput:
        out = self.output()
        cpuinfo_path = self.paths.proc("cpuinfo")
        cpu = parse_cpuinfo(read_text(cpuinfo_path), str(cpuinfo_path))
        if cpu.flags is None:
            out.note(
                f"{cpuinfo_path} has no flags line: virtualization extensions unknown",
                Req.VIRTUALIZATION_EXTENSIONS,
            )
            out.observe(Req.VIRTUALIZATION_EXTENSIONS, None)
        else:
            extensions = bool({"vmx", "svm"} & cpu.flags)
            out.add(CPU_VIRT_EXTENSIONS, extensions)
            out.add(HOST_IS_VM, "hypervisor" in cpu.flags)
            out.observe(Req.VIRTUALIZATION_EXTENSIONS, extensions)

        self._backend(out)
        nested = self._nested()
        if nested is None:
            out.note("neither kvm_intel nor kvm_amd is loaded: nested virtualization unknown")
        else:
            out.add(KVM_NESTED, nested)

        device = self.paths.dev / "kvm"
        absent = "load kvm_intel or kvm_amd, enable VT-x/AMD-V"
        note = node_problem(str(device), MISC_MAJOR, KVM_MINOR, "KVM", absent)
        present = note is None
        out.add(KVM_DEVICE_PRESENT, present)
        usable: bool | None = False
        if present:
            probe = probe_kvm(str(device))
            usable = probe.usable
            note = probe.reason
            if probe.api_version is not None:
                out.add(KVM_API_VERSION, probe.api_version)
            if probe.max_vcpus is not None:
                out.add(KVM_MAX_VCPUS, probe.max_vcpus)
            if probe.not_permitted:
                # as the devices check does: the device is there, only this process may
                # not open it (a pod without the device resource, whose device cgroup or
                # the file mode refuses it). Whether it creates a VM is unknown, not failed.
                usable = None
                note = (
                    f"{device} is present; this process may not open it "
                    f"({probe.open_error}): expected in a pod without {RESOURCE_PREFIX}kvm; "
                    "whether it creates a VM is unknown (root or the kvm group probe it fully)"
                )
        if note:
            out.note(note, Req.KVM)
        out.add(KVM_USABLE, bool(usable))
        out.observe(Req.KVM, usable)
        return out.build()

    def _backend(self, out: OutputBuilder) -> None:
        """Which module gives /dev/kvm its hardware (or paravirtual) side. Reported beside the
        virtualization_extensions verdict, which stays the CPU flag the spec asks for."""
        try:
            loaded = read_loaded(self.paths)
        except CheckError as e:
            out.fail(str(e))
            return
        backends = kvm_backends(self.paths, loaded)
        for module in backends:
            out.add(KVM_BACKEND, 1, module=module)
        if not backends:
            out.note(f"no KVM backend module loaded ({', '.join(KVM_BACKENDS)})")

    def _nested(self) -> bool | None:
        for module in ("kvm_intel", "kvm_amd"):
            value = read_optional(self.paths.sys("module", module, "parameters", "nested"))
            if value is not None:
                return value.upper() in ("Y", "1")
        return None


@dataclass
class KvmProbe:
    usable: bool = False
    api_version: int | None = None
    max_vcpus: int | None = None
    reason: str | None = None
    #: the open failed for permission only (EACCES/EPERM): the device is not judged
    not_permitted: bool = False
    #: why the open failed (strerror), when it did
    open_error: str | None = None


def probe_kvm(path: str) -> KvmProbe:
    """Open /dev/kvm, ask its API version and vCPU limit, create and drop a VM."""
    probe = KvmProbe()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        probe.open_error = e.strerror or str(e)
        probe.not_permitted = e.errno in PERMISSION_ERRNOS
        probe.reason = f"cannot open {path}: {probe.open_error}" + (
            " (the exporter needs read-write access: root, the kvm group, or KubeVirt's "
            f"{RESOURCE_PREFIX}kvm resource)"
            if probe.not_permitted
            else ""
        )
        return probe
    try:
        probe.api_version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if probe.api_version != EXPECTED_API_VERSION:
            probe.reason = (
                f"{path}: API version {probe.api_version}, expected {EXPECTED_API_VERSION}"
            )
            return probe
        max_vcpus = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS)
        if max_vcpus <= 0:  # kernels before 2.6.33 only know the recommended number
            max_vcpus = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS)
        probe.max_vcpus = max_vcpus
        vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm_fd)
        probe.usable = True
    except OSError as e:
        probe.reason = f"{path}: KVM ioctl failed: {e.strerror}"
    finally:
        os.close(fd)
    return probe
