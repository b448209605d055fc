"""The checks, one module each; this table is the one place they are registered."""

from __future__ import annotations

from exporter.checks.base import Check
from exporter.checks.compute import ComputeCheck
from exporter.checks.disk import DiskCheck
from exporter.checks.dns import DnsCheck
from exporter.checks.kvm import KvmCheck
from exporter.checks.network import NetworkCheck
from exporter.checks.ovn import OvnCheck
from exporter.checks.ports import PortsCheck

CHECKS: dict[str, type[Check]] = {
    KvmCheck.name: KvmCheck,
    ComputeCheck.name: ComputeCheck,
    DiskCheck.name: DiskCheck,
    NetworkCheck.name: NetworkCheck,
    PortsCheck.name: PortsCheck,
    OvnCheck.name: OvnCheck,
    DnsCheck.name: DnsCheck,
}

__all__ = ["CHECKS", "Check"]
