"""Alerts of the devices check (exporter/checks/devices.py): /dev/net/tun and /dev/vhost-net,
the devices KubeVirt's device plugins hand to VM pods beside /dev/kvm."""

from __future__ import annotations

from alerts.catalog.common import Alert, minimum_alert
from exporter.spec import Req

_DIAGNOSIS = (
    "Which device: `kubev_vm_device_present`, `kubev_vm_device_driver_registered` and "
    "`kubev_vm_device_opened` for the instance; the exporter's log says why.",
    "On the node: `ls -l /dev/net/tun /dev/vhost-net` (expect character devices 10, 200 and "
    "10, 238), `grep -E 'tun|vhost' /proc/misc`, `lsmod | grep -E 'tun|vhost'`.",
    "In Kubernetes: the node's allocatable `devices.kubevirt.io/tun` and "
    "`devices.kubevirt.io/vhost-net` "
    "(`kubectl get node NODE -o jsonpath='{.status.allocatable}'`), and FailedScheduling "
    "events of virt-launcher pods.",
)
_PERSIST = (
    "No restart is needed: KubeVirt's device plugin watches the path and reports the device "
    "healthy once it appears (kubevirt/kubevirt pkg/virt-handler/device-manager/"
    "generic_device.go), and Pending VMs are scheduled.",
)

ALERTS: tuple[Alert, ...] = (
    minimum_alert(
        "KubevTunDeviceMissing",
        Req.TUN,
        summary="/dev/net/tun is missing on the node",
        description="/dev/net/tun is missing or has no driver: VMs with a network interface "
        "cannot start here.",
        meaning="/dev/net/tun is not the tun character device (10:200), or no tun driver is "
        "registered behind it.",
        impact="KubeVirt's tun device plugin reports devices.kubevirt.io/tun unhealthy, so the "
        "node's allocatable drops to 0: every VM with a network interface stays Pending with "
        "`Insufficient devices.kubevirt.io/tun` (kube-scheduler's message; kubevirt/kubevirt "
        "pkg/network/vmispec/devices.go RequiresTunDevice).",
        diagnosis=_DIAGNOSIS,
        mitigation=_PERSIST,
    ),
    minimum_alert(
        "KubevVhostNetDeviceMissing",
        Req.VHOST_NET,
        summary="/dev/vhost-net is missing on the node",
        description="/dev/vhost-net is missing or has no driver: VMs with a virtio NIC (the "
        "default model) cannot start here.",
        meaning="/dev/vhost-net is not the vhost-net character device (10:238), or the "
        "vhost_net module is not loaded.",
        impact="KubeVirt's vhost-net device plugin reports devices.kubevirt.io/vhost-net "
        "unhealthy: a VM with a virtio NIC requests it unless software emulation is on "
        "(kubevirt/kubevirt pkg/network/vmispec/devices.go RequiresVirtioNetDevice), so such "
        "VMs stay Pending with `Insufficient devices.kubevirt.io/vhost-net`.",
        diagnosis=_DIAGNOSIS,
        mitigation=_PERSIST,
    ),
)
