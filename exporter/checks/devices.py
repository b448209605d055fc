"""VM devices: /dev/net/tun and /dev/vhost-net, which KubeVirt hands to every VM's pod, and
KubeVirt's device plugins that serve them (with /dev/kvm) to the scheduler.

Its own check rather than part of the kvm check: that one asks whether the node can run a
hypervisor (CPU flag, /dev/kvm's KVM API); this one asks whether a VM's pod can be scheduled
and given its network devices. Different facts, different fixes (a module to load against
firmware settings), one module each.

KubeVirt runs three permanent device plugins: kvm (/dev/kvm), tun (/dev/net/tun) and
vhost-net (/dev/vhost-net) (kubevirt pkg/virt-handler/device-manager/device_controller.go
PermanentHostDevicePlugins), as the resources devices.kubevirt.io/<name>. Every VM with a
network interface requests tun; a virtio NIC (the default model) requests vhost-net unless
software emulation is on (pkg/network/vmispec/devices.go RequiresTunDevice,
RequiresVirtioNetDevice). A plugin whose device is missing registers but reports its devices
Unhealthy (generic_device.go healthCheck), the node's allocatable for it is 0, and the VM's
pod stays Pending with kube-scheduler's "Insufficient devices.kubevirt.io/vhost-net".

A device counts when its node is the right character device (tun 10:200, vhost-net 10:238)
and either opens read-write or refuses this process only for permission (EACCES/EPERM: a pod
without the devices.kubevirt.io resource; expected, and said in the note). A missing node
is the failure. A node whose open fails otherwise (ENODEV, ENXIO: no driver behind it)
counts only if /proc/misc lists its driver. See exporter/checks/chardev.py for the three
facts.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from exporter.checks.base import BlockingCheck, RequirementRow
from exporter.checks.chardev import (
    MISC_MAJOR,
    TUN_MINOR,
    VHOST_NET_MINOR,
    node_problem,
    open_rw,
    read_misc,
)
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.settings import CheckSettings, parse_optional_abs_path, setting
from exporter.spec import Req
from exporter.verdicts import Outcome

#: kubevirt pkg/virt-handler/device-manager/generic_device.go: DeviceNamespace
RESOURCE_PREFIX = "devices.kubevirt.io/"


@dataclass(frozen=True)
class VmDevice:
    #: KubeVirt's device name: the resource is devices.kubevirt.io/<name>
    name: str
    #: the node under /dev (--path.dev)
    path: str
    minor: int
    #: the misc driver's name in /proc/misc
    driver: str
    requirement: Req
    #: what to do when the node is missing (libvirt virt-host-validate-qemu.c says the same:
    #: "Load the 'tun' module to enable networking for QEMU guests", "Load the 'vhost_net'
    #: module to improve performance of virtio networking")
    load: str


TUN = VmDevice("tun", "net/tun", TUN_MINOR, "tun", Req.TUN, "modprobe tun")
VHOST_NET = VmDevice(
    "vhost-net", "vhost-net", VHOST_NET_MINOR, "vhost-net", Req.VHOST_NET, "modprobe vhost_net"
)
DEVICES = (TUN, VHOST_NET)

#: KubeVirt's permanent device plugins, by the name in their socket and resource
#: (device-manager/common.go SocketPath: "kubevirt-<name>.sock" in kubelet's
#: deviceplugin/v1beta1 DevicePluginPath /var/lib/kubelet/device-plugins/)
PLUGINS = ("kvm", TUN.name, VHOST_NET.name)

METRICS = MetricGroup("devices")
DEVICE_PRESENT = METRICS.gauge(
    "kubev_vm_device_present",
    "1 if the device KubeVirt hands to VM pods exists as its character device (tun: "
    "/dev/net/tun 10:200, vhost-net: /dev/vhost-net 10:238), as KubeVirt's device plugin "
    "sees it; 0 if it is missing or another kind of file.",
    ("device",),
)
DEVICE_OPENED = METRICS.gauge(
    "kubev_vm_device_opened",
    "1 if the exporter opened the device read-write; 0 if the open failed (the log says why: "
    "not permitted is expected in a pod without the devices.kubevirt.io resource). Absent "
    "when the device is not present.",
    ("device",),
)
DRIVER_REGISTERED = METRICS.gauge(
    "kubev_vm_device_driver_registered",
    "1 if /proc/misc lists the device's driver (loaded or built in), 0 if not. A device "
    "node can exist before its module is loaded: the first open loads it on demand.",
    ("device",),
)
PLUGIN_SOCKET = METRICS.gauge(
    "kubev_kubevirt_device_plugin_socket_present",
    "1 if KubeVirt's device plugin for the resource has its socket (kubevirt-<name>.sock in "
    "kubelet's device-plugins directory): virt-handler serves the resource. Informational: "
    "0 on a node where virt-handler has not started (yet) is not a failure by itself.",
    ("resource",),
)


@dataclass(frozen=True, kw_only=True)
class DevicesSettings(CheckSettings):
    device_plugin_dir: str | None = setting(
        "/var/lib/kubelet/device-plugins",
        parse=parse_optional_abs_path,
        doc="kubelet's device-plugin sockets, under --path.rootfs (null: not reported)",
    )


class DevicesCheck(BlockingCheck[DevicesSettings]):
    name = "devices"
    area = ("devices", "VM devices")
    settings_type = DevicesSettings
    defaults = DevicesSettings(interval=60.0, timeout=5.0)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.TUN,
            "KubevTunDeviceMissing",
            "Load the tun module (modprobe tun) and load it at boot (/etc/modules-load.d/): "
            "every VM with a network interface needs devices.kubevirt.io/tun.",
        ),
        RequirementRow(
            Req.VHOST_NET,
            "KubevVhostNetDeviceMissing",
            "Load the vhost_net module (modprobe vhost_net) and load it at boot "
            "(/etc/modules-load.d/): VMs with a virtio NIC need devices.kubevirt.io/vhost-net.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        """Also on a PASS: a device this process may not open is worth saying (in a pod it
        is expected; from the host it means the exporter lacks a permission)."""
        related = output.notes_about(requirement)
        return related[0] if related else ""

    def collect(self) -> CheckOutput:
        out = self.output()
        misc = self._misc(out)
        for device in DEVICES:
            self._device(out, device, misc)
        self._plugins(out)
        return out.build()

    def _misc(self, out: OutputBuilder) -> dict[int, str] | None:
        path = self.paths.proc("misc")
        try:
            return read_misc(path)
        except CheckError as e:
            out.note(f"{e}: whether the drivers are registered is unknown")
            return None

    def _device(self, out: OutputBuilder, device: VmDevice, misc: dict[int, str] | None) -> None:
        registered = None if misc is None else misc.get(device.minor) == device.driver
        if registered is not None:
            out.add(DRIVER_REGISTERED, registered, device=device.name)
        path = str(self.paths.dev / device.path)
        absent = f"{device.load} (the kernel then creates it)"
        problem = node_problem(path, MISC_MAJOR, device.minor, device.name, absent)
        out.add(DEVICE_PRESENT, problem is None, device=device.name)
        if problem is not None:
            out.note(problem, device.requirement)
            out.observe(device.requirement, False)
            return
        opened = open_rw(path)
        out.add(DEVICE_OPENED, opened.opened, device=device.name)
        counts = True
        if opened.not_permitted:
            out.note(
                f"{path} is present; this process may not open it ({opened.strerror}): "
                f"expected in a pod without {RESOURCE_PREFIX}{device.name}",
                device.requirement,
            )
        elif not opened.opened:
            # ENODEV/ENXIO and the like: /proc/misc says whether a driver is there at all
            counts = bool(registered)
            if counts:
                out.note(
                    f"{path} does not open ({opened.strerror}) although /proc/misc lists "
                    f"{device.driver}"
                )
            else:
                out.note(
                    f"{path} leads to no driver ({opened.strerror}): {device.load}",
                    device.requirement,
                )
        out.observe(device.requirement, counts)

    def _plugins(self, out: OutputBuilder) -> None:
        directory = self.settings.device_plugin_dir
        if directory is None:
            return
        base = self.paths.root(directory)
        if not base.is_dir():
            out.note(f"{base} does not exist: kubelet has not run here (yet)")
        for name in PLUGINS:
            present = _is_socket(base / f"kubevirt-{name}.sock")
            out.add(PLUGIN_SOCKET, present, resource=RESOURCE_PREFIX + name)


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False
