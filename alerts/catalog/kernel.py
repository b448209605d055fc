"""Alerts of the kernel check (exporter/checks/kernel.py): the modules Kube-OVN needs and the
cgroup controllers kubelet and libvirt need."""

from __future__ import annotations

from alerts.catalog.common import Alert, minimum_alert
from exporter.spec import Req

ALERTS: tuple[Alert, ...] = (
    minimum_alert(
        "KubevKernelModuleMissing",
        Req.KERNEL_MODULES,
        summary="A kernel module Kube-OVN needs is missing",
        description="openvswitch (or geneve, where Geneve tunnels are used) is neither loaded, "
        "built in nor installed.",
        meaning="The openvswitch module, or the geneve module on a node that needs Geneve "
        "tunnels, is not loaded, not built into the kernel and not installed for the running "
        "kernel.",
        impact="Kube-OVN's ovs-ovn cannot create its datapath without openvswitch: the node's "
        "pods and VMs get no network. Without geneve, traffic to other nodes fails.",
        diagnosis=(
            "`kubev_kernel_module_loaded` and `kubev_kernel_module_available` for the instance.",
            "On the node: `lsmod | grep -E 'openvswitch|geneve'`, `modinfo openvswitch`, "
            "`ls /lib/modules/$(uname -r)/kernel/net/openvswitch`.",
        ),
        mitigation=(
            "ovs-ovn crash-loops until the module loads, then starts on its own; deleting the "
            "node's ovs-ovn pod restarts it at once.",
        ),
    ),
    minimum_alert(
        "KubevCgroupControllerMissing",
        Req.CGROUP_CONTROLLERS,
        summary="A cgroup controller kubelet and libvirt need is missing",
        description="one of the cgroup controllers cpu, cpuset, memory, devices is not available.",
        meaning="The cpu, cpuset, memory or devices cgroup controller is unavailable (cgroup "
        "v2: not in cgroup.controllers; v1: not enabled in /proc/cgroups).",
        impact="kubeadm's preflight refuses to install or join the node (SystemVerification: "
        "missing required cgroups), and kubelet and libvirt cannot confine pods' and VMs' CPU, "
        "memory and devices.",
        diagnosis=(
            "`kubev_cgroup_controller_available` and `kubev_cgroup_version` for the instance.",
            "On the node: `cat /sys/fs/cgroup/cgroup.controllers` (v2) or `cat /proc/cgroups` "
            "(v1); `virt-host-validate qemu` checks the same controllers.",
        ),
        mitigation=(),
    ),
)
