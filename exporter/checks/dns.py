"""DNS: do the names the platform needs resolve through the node's resolver, and fast?

Lookups use the C library's resolver (getaddrinfo: /etc/hosts, resolv.conf, nsswitch),
as every component on the node does. Each lookup is bounded by lookup_timeout; a lookup
still hanging is not started again until it returns.

NodeLocal DNSCache (169.254.20.10 on an interface, or as a nameserver) is detected: when
the guest clusters in KubeVirt VMs run it with the same default address, their DNS breaks
unless the VMs' dnsConfig/dnsPolicy are adjusted (docs/dns.md).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.blocking import BlockingGate
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.fsread import read_optional
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    parse_duration,
    parse_hostnames,
    parse_optional_hostname,
    setting,
    show_duration,
)
from exporter.spec import Req
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

NODELOCAL_DNS_ADDRESS = "169.254.20.10"
_GAI_REASONS = {
    socket.EAI_NONAME: "the name does not exist (NXDOMAIN)",
    socket.EAI_AGAIN: "temporary failure: the resolver gave no answer",
    socket.EAI_FAIL: "the resolver failed (SERVFAIL)",
}


METRICS = MetricGroup("dns")
DNS_SUCCESS = METRICS.gauge(
    "kubev_dns_resolution_success",
    "1 if the name resolved through the node's resolver within the lookup timeout.",
    ("name",),
)
DNS_DURATION = METRICS.gauge(
    "kubev_dns_resolution_duration_seconds",
    "Time the last lookup took (to the answer, the error or the timeout).",
    ("name",),
)
DNS_NODELOCAL = METRICS.gauge(
    "kubev_dns_nodelocal_cache_detected",
    "1 if NodeLocal DNSCache (169.254.20.10) is on an interface or in resolv.conf.",
)


@dataclass(frozen=True, kw_only=True)
class DnsSettings(CheckSettings):
    names: tuple[str, ...] = setting(
        (), parse=parse_hostnames, doc="names to resolve; empty: the node's own name"
    )
    cluster_domain: str | None = setting(
        None,
        parse=parse_optional_hostname,
        doc="e.g. cluster.local: adds kubernetes.default.svc.<domain>",
    )
    lookup_timeout: float = setting(
        2.0, parse=parse_duration, show=show_duration, doc="each lookup"
    )


@dataclass(frozen=True)
class Lookup:
    name: str
    ok: bool
    seconds: float
    reason: str | None


def resolve_name(name: str) -> int:
    """Addresses found for the name (blocking)."""
    return len(socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP))


def nodelocal_cache(paths: Paths) -> bool:
    resolv = read_optional(paths.root("/etc/resolv.conf"), 64 * 1024) or ""
    for line in resolv.splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and fields[1:2] == [NODELOCAL_DNS_ADDRESS]:
            return True
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return any(
            a.get("IFA_ADDRESS") == NODELOCAL_DNS_ADDRESS
            for a in ipr.get_addr(family=socket.AF_INET)
        )


class DnsCheck(Check[DnsSettings]):
    name = "dns"
    area = ("dns", "DNS")
    settings_type = DnsSettings
    defaults = DnsSettings(interval=30.0, timeout=5.0, max_items=64)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.DNS,
            "KubevDNSResolutionFailing",
            "Fix /etc/resolv.conf or the DNS server so the names resolve (getent hosts NAME).",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        bad = [s.labels[0] for s in samples_of(output, DNS_SUCCESS) if s.value == 0]
        return f"not resolving: {', '.join(bad)}" if bad else ""

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._gates: dict[str, BlockingGate] = {}

    def names(self) -> list[str]:
        settings = self.settings
        names = list(settings.names) or [self.config.node()]
        if settings.cluster_domain:
            names.append(f"kubernetes.default.svc.{settings.cluster_domain.rstrip('.')}")
        return names

    async def _lookup(self, name: str) -> Lookup:
        limit = self.settings.lookup_timeout
        gate = self._gates.setdefault(name, BlockingGate(f"dns-{name}", timed=True))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                await gate.run(lambda: resolve_name(name))
        except TimeoutError:
            return Lookup(
                name, False, time.perf_counter() - started, f"no answer within {limit:g}s"
            )
        except socket.gaierror as e:
            reason = _GAI_REASONS.get(e.errno or 0, e.strerror or str(e))
            return Lookup(name, False, time.perf_counter() - started, reason)
        except (CheckError, OSError, UnicodeError) as e:
            return Lookup(name, False, time.perf_counter() - started, str(e))
        return Lookup(name, True, time.perf_counter() - started, None)

    async def run(self) -> CheckOutput:
        out = self.output()
        names = out.cap(self.names(), self.settings.max_items, "dns", "names")
        lookups = await asyncio.gather(*(self._lookup(n) for n in names))
        nodelocal = await self.gate.run(lambda: nodelocal_cache(self.paths))
        for lookup in lookups:
            out.add(DNS_SUCCESS, lookup.ok, name=lookup.name)
            out.add(DNS_DURATION, lookup.seconds, name=lookup.name)
            if not lookup.ok:
                out.note(f"DNS lookup of {lookup.name} failed: {lookup.reason}", Req.DNS)
        out.add(DNS_NODELOCAL, nodelocal)
        if nodelocal:
            out.note(
                f"NodeLocal DNSCache ({NODELOCAL_DNS_ADDRESS}) is in use on this node: guest "
                "clusters in VMs that run it too need their dnsConfig/dnsPolicy adjusted"
            )
        out.observe(Req.DNS, all(lookup.ok for lookup in lookups))
        return out.build()
