"""Alerts of the kvm check (exporter/checks/kvm.py): /dev/kvm and the CPU's VT-x / AMD-V.

Facts cited in the runbooks (kubevirt/kubevirt): the kvm device plugin stats /dev/kvm and
reports its devices Unhealthy when it is absent, so allocatable drops to 0
(pkg/virt-handler/device-manager/generic_device.go healthCheck); every virt-launcher pod
requests devices.kubevirt.io/kvm unless emulation is allowed
(pkg/virt-controller/services/renderresources.go getRequiredResources); kube-scheduler
reports "Insufficient %v" (kubernetes pkg/scheduler/framework/plugins/noderesources/fit.go);
useEmulation defaults to false (staging/src/kubevirt.io/api/core/v1/types.go
DeveloperConfiguration; pkg/virt-config/virt-config.go DefaultAllowEmulation).
"""

from __future__ import annotations

from alerts.catalog.common import (
    INSTANCE,
    JOB,
    NODE1,
    Alert,
    Case,
    Rule,
    lookup,
    requirement_impact,
    requirement_met,
)
from exporter.checks import ROWS
from exporter.checks.kmod import KVM_BACKENDS
from exporter.checks.kvm import EXPECTED_API_VERSION
from exporter.spec import PROFILES, Level, Req

VIRT = Req.VIRTUALIZATION_EXTENSIONS

#: the node's KVM backend modules, comma-separated, or "none loaded"
BACKENDS = (
    f'{{{{ with {lookup("kubev_kvm_backend_info")} | sortByLabel "module" }}}}'
    "{{ range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s.Labels.module }}{{ end }}"
    "{{ else }}none loaded{{ end }}"
)


def _who_asks_for(requirement: Req) -> str:
    """'production profiles require them; testing profiles recommend them'"""
    required = [p for p, reqs in PROFILES.items() if Level.MINIMUM in reqs[requirement].thresholds]
    recommended = [p for p in PROFILES if p not in required]
    parts = []
    if required:
        parts.append(f"{' and '.join(required)} profiles require them")
    if recommended:
        parts.append(f"{' and '.join(recommended)} profiles recommend them")
    return "; ".join(parts)


def _virtualization_rule(level: Level) -> Rule:
    # the recommendation alerts only where the minimum does not already
    expr = requirement_met(VIRT, level)
    if level is not Level.MINIMUM:
        expr += f" unless ignoring(level) {requirement_met(VIRT, Level.MINIMUM)}"
    return Rule(
        expr=expr,
        impact=requirement_impact(VIRT, level),
        for_="1m",
        summary="The CPU shows no VT-x / AMD-V flag",
        description="{{ $labels.instance }}: /proc/cpuinfo has no vmx or svm flag."
        f"{{{{ with {lookup('kubev_host_is_virtual_machine')} }}}}"
        "{{ if eq (. | first | value) 1.0 }} The host is itself a virtual machine whose "
        "hypervisor hides VT-x/AMD-V.{{ end }}{{ end }}"
        f"{{{{ with {lookup('kubev_kvm_usable')} }}}}{{{{ if eq (. | first | value) 1.0 }}}} "
        f"/dev/kvm works all the same (KVM backend: {BACKENDS}): VMs run; the flag the spec "
        "asks for is what is missing.{{ end }}{{ end }}",
        labels=(("level", level.value),),
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevKVMUnusable",
        rules=(
            Rule(
                expr=requirement_met(Req.KVM, Level.MINIMUM),
                impact=requirement_impact(Req.KVM, Level.MINIMUM),
                for_="1m",
                summary="KVM is not usable on the node",
                description="{{ $labels.instance }}: /dev/kvm is missing or cannot create a VM "
                f"(device present: {{{{ with {lookup('kubev_kvm_device_present')} }}}}"
                f"{{{{ . | first | value }}}}{{{{ end }}}}; KVM backend: {BACKENDS}). VMs "
                "cannot start here unless the cluster allows software emulation.",
                labels=(("level", Level.MINIMUM.value),),
            ),
        ),
        meaning="/dev/kvm is missing or not the KVM device (10:232), does not open, or did not "
        f"answer KVM's API (version {EXPECTED_API_VERSION}) or refused KVM_CREATE_VM. An open "
        "refused only for permission (a pod without devices.kubevirt.io/kvm) leaves the "
        "requirement unknown and does not fire this alert.",
        impact="Where /dev/kvm is absent, "
        "KubeVirt's kvm device plugin reports devices.kubevirt.io/kvm unhealthy and the "
        "node's allocatable drops to 0 (capacity stays 1k). Every virt-launcher pod requests "
        "one, so no VM and no live-migration target is scheduled here: with no other node "
        "to go to, VMs stay Pending with `Insufficient devices.kubevirt.io/kvm` "
        "(kube-scheduler's FailedScheduling message). Where /dev/kvm is there but broken, the "
        "plugin still counts it healthy: VMs are scheduled here and fail to start. Software "
        "emulation is no automatic fallback: it is a cluster-wide opt-in (the KubeVirt CR's "
        "spec.configuration.developerConfiguration.useEmulation, false by default); without "
        'it virt-launcher refuses to start a VM ("kvm not present and emulation is not '
        "allowed\"), with it VMs that land on a node without KVM run in QEMU's software "
        "emulation, many times slower. The "
        "node stays kubevirt.io/schedulable=true, so nothing else on it says why; KubeVirt's "
        "own LowKVMNodesCount warns once fewer than two nodes offer KVM (live migration needs "
        "two).",
        diagnosis=(
            "Which part failed: `kubev_kvm_device_present`, `kubev_kvm_usable`, "
            "`kubev_kvm_api_version` and the backend `kubev_kvm_backend_info` "
            f"({', '.join(KVM_BACKENDS)}) for the instance; the exporter's log says why "
            '(`msg="cannot open /dev/kvm: ..."`).',
            "On the node: `ls -l /dev/kvm` (expect `crw-rw---- 10, 232`), `lsmod | grep kvm`, "
            "`dmesg | grep -i kvm`.",
            "Is virtualization enabled in firmware? `grep -cwE 'vmx|svm' /proc/cpuinfo` (0 on a "
            "host with a paravirtual backend such as kvm_pvm, where /dev/kvm works anyway).",
            "In Kubernetes: `kubectl get node NODE -o jsonpath='{.status.allocatable}'` "
            "(`devices.kubevirt.io/kvm: 0` while capacity says 1k) and the FailedScheduling "
            "events of virt-launcher pods.",
        ),
        mitigation=(
            ROWS[Req.KVM].hint,
            "For the full probe where the exporter may not open /dev/kvm (KVM unknown): run "
            "`kubev-node-exporter check` on the node as root, or give the exporter the KubeVirt "
            "device plugin resource or the kvm group (docs/deploy.md).",
            "Software emulation (useEmulation: true) lets VMs run without KVM on every node of "
            "the cluster, many times slower: for testing only.",
        ),
        cases=(
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="kvm",level="minimum"}}': "0x10",
                    f"kubev_kvm_device_present{{{NODE1}}}": "0x10",
                },
                "5m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "requirement": "kvm",
                        "level": "minimum",
                        "severity": "critical",
                        "description": "node-1:19100: /dev/kvm is missing or cannot create a VM "
                        "(device present: 0; KVM backend: none loaded). VMs cannot start here "
                        "unless the cluster allows software emulation.",
                    },
                ),
            ),
            Case(
                {f'kubev_requirement_met{{{NODE1},requirement="kvm",level="minimum"}}': "1x10"},
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevVirtualizationExtensionsMissing",
        rules=(_virtualization_rule(Level.MINIMUM), _virtualization_rule(Level.RECOMMENDED)),
        meaning="The CPU flags in /proc/cpuinfo include neither vmx (Intel VT-x) nor svm "
        f"(AMD-V). {_who_asks_for(VIRT).capitalize()}.",
        impact="None by itself where /dev/kvm works (`kubev_kvm_usable` 1): a KVM backend "
        "without the flag (kvm_pvm, a paravirtual backend, on a host whose hypervisor hides "
        "VT-x/AMD-V) gives KubeVirt its /dev/kvm, and VMs run. The platform's requirement is "
        "not met as written, which is a fact of the machine: a ticket, and a verdict of the "
        "`check` command before install. Where /dev/kvm does not work either, "
        "KubevKVMUnusable pages with what stops.",
        diagnosis=(
            "`kubev_cpu_virtualization_extensions_present`, `kubev_host_is_virtual_machine`, "
            "`kubev_kvm_usable` and `kubev_kvm_backend_info` for the instance.",
            "On the node: `grep -cwE 'vmx|svm' /proc/cpuinfo`, `lscpu | grep -i virtualization`, "
            "`lsmod | grep kvm`.",
        ),
        mitigation=(
            ROWS[VIRT].hint,
            "On a KVM hypervisor: `kvm_intel nested=1` or `kvm_amd nested=1` on the host and a "
            "guest CPU model that passes vmx/svm (host-passthrough); for cloud instances, a "
            "nested-capable instance type.",
            "A test node whose /dev/kvm works without the flag can be judged by a profile that "
            "only recommends it.",
        ),
        cases=(
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="minimum"}': "0x10",
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "0x10",
                    f"kubev_host_is_virtual_machine{{{NODE1}}}": "1x10",
                    f"kubev_kvm_usable{{{NODE1}}}": "1x10",
                    f'kubev_kvm_backend_info{{{NODE1},module="kvm_pvm"}}': "1x10",
                },
                "5m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "requirement": "virtualization_extensions",
                        "level": "minimum",
                        "severity": "warning",
                        "description": "node-1:19100: /proc/cpuinfo has no vmx or svm flag. The "
                        "host is itself a virtual machine whose hypervisor hides VT-x/AMD-V. "
                        "/dev/kvm works all the same (KVM backend: kvm_pvm): VMs run; the flag "
                        "the spec asks for is what is missing.",
                    },
                ),
            ),
            Case(
                # a testing profile recommends the flag; bare metal with it hidden in firmware
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "0x10",
                    f"kubev_host_is_virtual_machine{{{NODE1}}}": "0x10",
                    f"kubev_kvm_usable{{{NODE1}}}": "0x10",
                },
                "5m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "requirement": "virtualization_extensions",
                        "level": "recommended",
                        "severity": "warning",
                        "description": "node-1:19100: /proc/cpuinfo has no vmx or svm flag.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "1x10"
                },
                "5m",
            ),
        ),
    ),
)
