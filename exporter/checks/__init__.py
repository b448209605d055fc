"""The checks, one module each; this table is the one place they are registered."""

from __future__ import annotations

from exporter.checks.base import Check
from exporter.checks.compute import ComputeCheck
from exporter.checks.disk import DiskCheck
from exporter.checks.kvm import KvmCheck
from exporter.checks.network import NetworkCheck

CHECKS: dict[str, type[Check]] = {
    KvmCheck.name: KvmCheck,
    ComputeCheck.name: ComputeCheck,
    DiskCheck.name: DiskCheck,
    NetworkCheck.name: NetworkCheck,
}

__all__ = ["CHECKS", "Check"]
