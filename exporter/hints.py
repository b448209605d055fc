"""What to do when a requirement is not met: one line per requirement, and the alert whose
runbook says more. The alert catalog (alerts/catalog.py) opens each runbook's Mitigation
with the same line, so the report and the runbooks never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_RUNBOOK_URL = (
    "https://github.com/kubev/kubev-node-exporter/blob/main/docs/runbooks/{alert}.md"
)


@dataclass(frozen=True)
class Hint:
    alert: str
    text: str

    @property
    def runbook_url(self) -> str:
        template = os.environ.get("RUNBOOK_URL_TEMPLATE", DEFAULT_RUNBOOK_URL)
        return template.format(alert=self.alert)


HINTS: dict[str, Hint] = {
    "kvm": Hint(
        "KubevKVMUnusable",
        "Enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd; in a VM, "
        "enable nested virtualization; give the exporter access to /dev/kvm.",
    ),
    "virtualization_extensions": Hint(
        "KubevVirtualizationExtensionsMissing",
        "Enable Intel VT-x / AMD-V (SVM) in the firmware setup; in a VM, use a hypervisor or "
        "instance type with nested virtualization.",
    ),
    "cpu_cores": Hint(
        "KubevCPUCoresInsufficient",
        "Use a machine with more cores (or bring offline CPUs online), or judge "
        "a test node by the testing profile.",
    ),
    "memory": Hint(
        "KubevMemoryInsufficient", "Add RAM, or judge a test node by the testing profile."
    ),
    "storage_solid_state": Hint(
        "KubevStorageNotSolidState",
        "Put VM storage on SSD or NVMe, or narrow "
        "checks.disk.devices.include to the VM storage disks.",
    ),
    "disk_latency": Hint(
        "KubevStorageFsyncSlow",
        "Move the storage path to faster media and look for I/O-heavy neighbours (iostat -x 5).",
    ),
    "nic_speed": Hint(
        "KubevNICSpeedInsufficient",
        "Check cabling, switch port and auto-negotiation (ethtool IFACE); use a "
        "10 Gb/s NIC for VM traffic.",
    ),
    "ports": Hint(
        "KubevPortDown",
        "Start or fix the component behind each closed port and open it in the "
        "firewalls; set --role if this node does not carry that role.",
    ),
    "ovn_endpoints": Hint(
        "KubevOVNEndpointDown",
        "Restart the failing Kube-OVN pod; with secure serving, configure "
        "checks.ovn bearer_token_file and tls.",
    ),
    "dns": Hint(
        "KubevDNSResolutionFailing",
        "Fix /etc/resolv.conf or the DNS server so the names resolve (getent hosts NAME).",
    ),
}
