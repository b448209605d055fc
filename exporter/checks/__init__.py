"""The checks, one module each; this table is the one place they are registered.

Everything else about the checks is derived from it: the config file's `checks:` sections
(exporter/config.py), the metric catalog (CATALOG), the report's areas and rows
(exporter/report/model.py), and the hints the alert runbooks open with (alerts/).
Adding a check: its module (see CONTRIBUTING.md), one line here, its tests, `make generate`.
"""

from __future__ import annotations

from typing import Any

from exporter.checks.base import Check, RequirementRow
from exporter.checks.compute import ComputeCheck
from exporter.checks.devices import DevicesCheck
from exporter.checks.disk import DiskCheck
from exporter.checks.dns import DnsCheck
from exporter.checks.kernel import KernelCheck
from exporter.checks.kvm import KvmCheck
from exporter.checks.network import NetworkCheck
from exporter.checks.ovn import OvnCheck
from exporter.checks.peers import PeersCheck
from exporter.checks.ports import PortsCheck
from exporter.metrics import EXPORTER, MetricDef
from exporter.spec import Req

CHECKS: dict[str, type[Check[Any]]] = {
    c.name: c
    for c in (
        KvmCheck,
        DevicesCheck,
        KernelCheck,
        ComputeCheck,
        DiskCheck,
        NetworkCheck,
        PortsCheck,
        OvnCheck,
        DnsCheck,
        PeersCheck,
    )
}

#: every metric the exporter serves: its own, then each check's, in registry order
CATALOG: tuple[MetricDef, ...] = (
    *EXPORTER.defs,
    *(metric for check in CHECKS.values() for metric in check.metrics.defs),
)

#: requirement -> the check that observes it, and how its report row reads
OBSERVED_BY: dict[Req, type[Check[Any]]] = {
    row.requirement: check for check in CHECKS.values() for row in check.rows
}
ROWS: dict[Req, RequirementRow] = {
    row.requirement: row for check in CHECKS.values() for row in check.rows
}


def _validate() -> None:
    """The registry's promises, checked at import: a broken declaration stops the exporter
    (and every test) with a message, rather than dropping a verdict or a metric."""
    claimed = [row.requirement for check in CHECKS.values() for row in check.rows]
    twice = {r for r in claimed if claimed.count(r) > 1}
    if twice:
        raise ImportError(f"requirements observed by two checks: {sorted(twice)}")
    unobserved = set(Req) - set(claimed)
    if unobserved:
        raise ImportError(f"requirements no check observes: {sorted(unobserved)}")
    names = [m.name for m in CATALOG]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ImportError(f"metrics declared twice: {sorted(dupes)}")
    for check in CHECKS.values():
        if check.metrics.source != check.name:
            raise ImportError(f"{check.__name__}: its metric group is {check.metrics.source!r}")
        if not isinstance(check.defaults, check.settings_type):
            raise ImportError(f"{check.__name__}: defaults are not {check.settings_type.__name__}")


_validate()

__all__ = ["CATALOG", "CHECKS", "OBSERVED_BY", "ROWS", "Check"]
