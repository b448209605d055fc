"""Alerts of the kvm check (exporter/checks/kvm.py): /dev/kvm and the CPU's VT-x / AMD-V."""

from __future__ import annotations

from alerts.catalog.common import INSTANCE, JOB, NODE1, SELECTOR, Alert, Case, Rule, requirement_met
from exporter.checks import ROWS
from exporter.checks.kvm import EXPECTED_API_VERSION
from exporter.spec import PROFILES, Level, Req

VIRT = Req.VIRTUALIZATION_EXTENSIONS


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


def _virtualization_rule(level: Level, severity: str) -> Rule:
    # the recommendation alerts only where the minimum does not already
    expr = requirement_met(VIRT, level)
    if level is not Level.MINIMUM:
        expr += f" unless on(instance, job) {requirement_met(VIRT, Level.MINIMUM)}"
    return Rule(
        expr=expr,
        severity=severity,
        for_="1m",
        summary="The CPU shows no VT-x / AMD-V flag",
        description="{{ $labels.instance }}: /proc/cpuinfo has no vmx or svm flag."
        f"{{{{ with printf `kubev_host_is_virtual_machine{{{SELECTOR},instance=%q}}` "
        "$labels.instance | query }}{{ if eq (. | first | value) 1.0 }} The host is itself a "
        "virtual machine: enable nested virtualization on its hypervisor, or rely on a working "
        "/dev/kvm (see KubevKVMUnusable).{{ end }}{{ end }}",
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevKVMUnusable",
        rules=(
            Rule(
                expr=requirement_met(Req.KVM, Level.MINIMUM),
                severity="critical",
                for_="1m",
                summary="KVM is not usable on the node",
                description="{{ $labels.instance }}: /dev/kvm is missing or cannot create a VM "
                f"(device present: {{{{ with printf `kubev_kvm_device_present{{{SELECTOR},"
                "instance=%q}` $labels.instance | query }}{{ . | first | value }}{{ end }}). "
                "KubeVirt cannot run VMs with hardware acceleration here.",
            ),
        ),
        meaning="/dev/kvm is missing or not the KVM device (10:232), does not open, or did not "
        f"answer KVM's API (version {EXPECTED_API_VERSION}) or refused KVM_CREATE_VM. An open "
        "refused only for permission (a pod without devices.kubevirt.io/kvm) leaves the "
        "requirement unknown and does not fire this alert.",
        impact="virt-handler marks the node unschedulable for VMs, or VMs fall back to software "
        "emulation (useEmulation) and run many times slower. Live migration to this node fails.",
        diagnosis=(
            "Which part failed: `kubev_kvm_device_present`, `kubev_kvm_usable`, "
            "`kubev_kvm_api_version` for the instance; the exporter's log says why "
            '(`msg="cannot open /dev/kvm: ..."`).',
            "On the node: `ls -l /dev/kvm` (expect `crw-rw---- 10, 232`), `lsmod | grep kvm`, "
            "`dmesg | grep -i kvm`.",
            "Is virtualization enabled in firmware? `grep -cwE 'vmx|svm' /proc/cpuinfo`.",
            "In Kubernetes: does the node offer `devices.kubevirt.io/kvm`? "
            "`kubectl get node NODE -o jsonpath='{.status.allocatable}'`.",
        ),
        mitigation=(
            ROWS[Req.KVM].hint,
            "Enable VT-x / AMD-V in the BIOS/UEFI, then `modprobe kvm_intel` or `modprobe kvm_amd`.",
            "If the node is itself a VM, enable nested virtualization on its hypervisor.",
            "For the full probe where the exporter may not open /dev/kvm (KVM unknown): run "
            "`kubev-node-exporter check` on the node as root, or give the exporter the KubeVirt "
            "device plugin resource or the kvm group (see the deployment docs).",
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
                        "(device present: 0). KubeVirt cannot run VMs with hardware acceleration "
                        "here.",
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
        rules=(
            _virtualization_rule(Level.MINIMUM, "critical"),
            _virtualization_rule(Level.RECOMMENDED, "warning"),
        ),
        meaning="The CPU flags in /proc/cpuinfo include neither vmx (Intel VT-x) nor svm "
        f"(AMD-V). {_who_asks_for(VIRT).capitalize()}.",
        impact="Without the extensions KubeVirt can only emulate, which is far slower and not "
        "fit for production. A VM host may still offer a working /dev/kvm without the flag "
        "(paravirtual or hidden nested KVM): then VMs run, but the platform's requirement is "
        "not met as written.",
        diagnosis=(
            "`kubev_cpu_virtualization_extensions_present`, `kubev_host_is_virtual_machine` and "
            "`kubev_kvm_usable` for the instance.",
            "On the node: `grep -cwE 'vmx|svm' /proc/cpuinfo`, `lscpu | grep -i virtualization`.",
        ),
        mitigation=(
            ROWS[VIRT].hint,
            "Bare metal: enable Intel VT-x / AMD-V (SVM) in the firmware setup and reboot.",
            "VM: enable nested virtualization (for KVM hosts `kvm_intel nested=1` or "
            "`kvm_amd nested=1`; for cloud instances, a nested-capable instance type).",
        ),
        cases=(
            Case(
                {
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="minimum"}': "0x10",
                    f'kubev_requirement_met{{{NODE1},requirement="virtualization_extensions",'
                    'level="recommended"}': "0x10",
                    f"kubev_host_is_virtual_machine{{{NODE1}}}": "1x10",
                },
                "5m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "requirement": "virtualization_extensions",
                        "level": "minimum",
                        "severity": "critical",
                        "description": "node-1:19100: /proc/cpuinfo has no vmx or svm flag. The "
                        "host is itself a virtual machine: enable nested virtualization on its "
                        "hypervisor, or rely on a working /dev/kvm (see KubevKVMUnusable).",
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
