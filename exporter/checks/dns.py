"""DNS: do the names the platform needs resolve, through the resolver that uses them?

Two resolvers, each asked what it is asked on a real node:

- **cluster** names (`kubernetes.default.svc.<clusterDomain>` and `cluster_names`) go to
  the cluster DNS service kubelet gives pods: the addresses of `clusterDNS` in kubelet's
  config file (exporter/checks/kubeletdns.py), each asked directly
  (exporter/checks/dnsclient.py). The node's own resolv.conf usually does not point
  there, so asking the node's resolver would fail on a healthy cluster.
- **node** names (`names`: other nodes, registries, NTP servers) go through the C
  library's resolver (getaddrinfo: /etc/hosts, resolv.conf, nsswitch), as every
  component on the node resolves them. With no names configured, the node's own name is
  resolved, unless /etc/hosts lists it: then the lookup would test no DNS server, so it
  is skipped and the log says so.

`kubev_dns_resolution_success{name,resolver}` says which resolver was asked: `node`, or
`cluster:IP`. Each lookup is bounded by lookup_timeout; a getaddrinfo call still
hanging is not started again until it returns.

NodeLocal DNSCache is detected (exporter/checks/nodelocal.py): when guest clusters in
KubeVirt VMs run it with the same default address, their DNS loops unless the VMs'
dnsConfig/dnsPolicy are set (docs/dns.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.blocking import BlockingGate
from exporter.checks import nodelocal
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.checks.dnsclient import LookupFailed, resolve
from exporter.checks.kubeletdns import KUBELET_CONFIG, KubeletDns, read_kubelet_dns
from exporter.checks.nodelocal import NODELOCAL_ADDRESS, Evidence, LinkEvidence
from exporter.fsread import MAX_FILE_BYTES, read_attr_errno
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    ConfigError,
    kind,
    parse_duration,
    parse_hostnames,
    parse_optional_abs_path,
    parse_optional_hostname,
    setting,
    show_duration,
    shown,
)
from exporter.spec import Req
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

NODE = "node"
#: the hosts file the C resolver reads: this process's own, not the one under
#: --path.rootfs. A hostNetwork pod's is the node's (kubelet, pkg/kubelet/kubelet_pods.go:
#: "if Pod is using host network, read hosts file from the node's filesystem").
HOSTS_FILE = Path("/etc/hosts")
_GAI_REASONS = {
    socket.EAI_NONAME: "the name does not exist (NXDOMAIN)",
    socket.EAI_AGAIN: "temporary failure: the resolver gave no answer",
    socket.EAI_FAIL: "the resolver failed (SERVFAIL)",
}


METRICS = MetricGroup("dns")
DNS_SUCCESS = METRICS.gauge(
    "kubev_dns_resolution_success",
    "1 if the name resolved within the lookup timeout. resolver: node (getaddrinfo: "
    "/etc/hosts, resolv.conf) or cluster:IP (the cluster DNS server kubelet gives pods, "
    "asked directly).",
    ("name", "resolver"),
)
DNS_DURATION = METRICS.gauge(
    "kubev_dns_resolution_duration_seconds",
    "Time the last lookup took (to the answer, the error or the timeout).",
    ("name", "resolver"),
)
DNS_NODELOCAL = METRICS.gauge(
    "kubev_dns_nodelocal_cache_detected",
    "1 if NodeLocal DNSCache shows on this node in any way kubev_dns_nodelocal_cache_evidence "
    "lists.",
)
DNS_NODELOCAL_EVIDENCE = METRICS.gauge(
    "kubev_dns_nodelocal_cache_evidence",
    "1 for each way NodeLocal DNSCache shows: cluster_dns (kubelet's clusterDNS is "
    "169.254.20.10), interface (a link named nodelocaldns), address (169.254.20.10 on a "
    "link), resolv_conf (the node's nameserver is 169.254.20.10).",
    ("source",),
)


def parse_ip_addresses(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of IP addresses, got {kind(value)}")
    addresses = []
    for i, item in enumerate(value):
        try:
            addresses.append(str(ipaddress.ip_address(item if isinstance(item, str) else "")))
        except ValueError:
            raise ConfigError(f"{where}[{i}]: must be an IP address, got {shown(item)}") from None
    return tuple(addresses)


@dataclass(frozen=True, kw_only=True)
class DnsSettings(CheckSettings):
    names: tuple[str, ...] = setting(
        (),
        parse=parse_hostnames,
        doc="resolved through the node's resolver (other nodes, registries); "
        "empty: this node's name, unless /etc/hosts has it",
    )
    cluster_names: tuple[str, ...] = setting(
        (),
        parse=parse_hostnames,
        doc="full names to ask the cluster DNS too, beside kubernetes.default.svc.<domain>",
    )
    cluster_dns: tuple[str, ...] = setting(
        (),
        parse=parse_ip_addresses,
        doc="cluster DNS server addresses; empty: kubelet's clusterDNS",
    )
    cluster_domain: str | None = setting(
        None, parse=parse_optional_hostname, doc="e.g. cluster.local; null: kubelet's clusterDomain"
    )
    kubelet_config: str | None = setting(
        KUBELET_CONFIG,
        parse=parse_optional_abs_path,
        doc="clusterDNS and clusterDomain come from here (under --path.rootfs); null: not read",
    )
    lookup_timeout: float = setting(
        2.0, parse=parse_duration, show=show_duration, doc="each lookup"
    )


@dataclass(frozen=True)
class Lookup:
    name: str
    resolver: str  # NODE, or "cluster:10.96.0.10", "cluster:[fd00:10:96::a]"
    ok: bool
    seconds: float
    reason: str | None


@dataclass(frozen=True)
class HostFacts:
    """What the run reads from the host before it resolves anything (one blocking call)."""

    kubelet: KubeletDns | None  # None: no file, or not read
    kubelet_error: str | None
    hosts: frozenset[str] | None  # names /etc/hosts lists; None: unreadable
    resolv_conf: bool  # the host's resolv.conf names 169.254.20.10


def resolve_name(name: str) -> int:
    """Addresses found for the name (blocking)."""
    return len(socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP))


def hosts_names(text: str) -> frozenset[str]:
    """Every name a hosts file lists (lower case, without a trailing dot)."""
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(name.lower().rstrip(".") for name in fields[1:])
    return frozenset(names)


def normal(name: str) -> str:
    return name.lower().rstrip(".")


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
            "Fix the DNS server the failing lookup names: the cluster DNS service "
            "(CoreDNS, NodeLocal DNSCache) for cluster:IP, or /etc/resolv.conf and its "
            "servers for node (getent hosts NAME).",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        bad = [
            f"{s.labels[0]} via {s.labels[1]}"
            for s in samples_of(output, DNS_SUCCESS)
            if s.value == 0
        ]
        if bad:
            return f"not resolving: {', '.join(bad)}"
        return "; ".join(output.notes_about(requirement))

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._gates: dict[str, BlockingGate] = {}
        self._links_gate = BlockingGate(f"{self.name}-links")

    # --- what to read and whom to ask ---------------------------------------------------

    def _needs_kubelet(self) -> bool:
        settings = self.settings
        wanted = not settings.cluster_dns or settings.cluster_domain is None
        return wanted and settings.kubelet_config is not None

    def read_host(self) -> HostFacts:
        """Blocking: kubelet's config, /etc/hosts and resolv.conf."""
        kubelet, kubelet_error = None, None
        if self._needs_kubelet():
            assert self.settings.kubelet_config is not None
            try:
                kubelet = read_kubelet_dns(self.paths.root(self.settings.kubelet_config))
            except CheckError as e:
                kubelet_error = str(e)
        hosts = None
        if not self.settings.names:  # only the default (own) name depends on it
            text, _ = read_attr_errno(HOSTS_FILE, MAX_FILE_BYTES)
            hosts = hosts_names(text) if text is not None else None
        return HostFacts(kubelet, kubelet_error, hosts, nodelocal.in_resolv_conf(self.paths))

    async def _links(self) -> LinkEvidence | str:
        """The nodelocaldns link and address (netlink), or why they could not be listed;
        read while the lookups wait for their answers."""
        try:
            return await self._links_gate.run(nodelocal.on_links)
        except (OSError, CheckError) as e:
            return f"netlink: cannot list links and addresses: {getattr(e, 'strerror', None) or e}"

    def node_names(self, facts: HostFacts, out: OutputBuilder) -> list[str]:
        if self.settings.names:
            return list(self.settings.names)
        own = self.config.node()
        if facts.hosts is not None and normal(own) in facts.hosts:
            out.note(
                f"{own} (this node's name) is in /etc/hosts, so resolving it tests no DNS "
                "server: not checked; list other nodes' names in checks.dns.names",
                Req.DNS,
            )
            return []
        return [own]

    def cluster_dns(self, facts: HostFacts, out: OutputBuilder) -> tuple[list[str], list[str]]:
        """The cluster DNS servers and the names to ask them; notes say what is not
        asked, and why."""
        settings = self.settings
        source = str(self.paths.root(settings.kubelet_config or KUBELET_CONFIG))
        kubelet = facts.kubelet or KubeletDns((), None)
        servers = list(settings.cluster_dns or kubelet.cluster_dns)
        domain = settings.cluster_domain or kubelet.cluster_domain
        if facts.kubelet_error is not None:
            out.fail(facts.kubelet_error, Req.DNS)
        elif not servers:
            if facts.kubelet is not None:
                why = f"{source} lists no clusterDNS (kubelet gives pods no cluster DNS)"
            elif settings.kubelet_config is not None:
                why = f"{source}: no kubelet config (not a Kubernetes node yet?)"
            else:
                why = "no cluster DNS server is configured (cluster_dns, kubelet_config)"
            out.note(
                f"{why}: the cluster DNS is not checked; set checks.dns.cluster_dns and "
                "cluster_domain to check it anyway",
                Req.DNS,
            )
        elif not domain:
            out.note(
                f"no cluster domain (clusterDomain in {source}, or cluster_domain): "
                "kubernetes.default.svc is not checked",
                Req.DNS,
            )
        names = [f"kubernetes.default.svc.{domain}"] if domain else []
        for name in settings.cluster_names:
            if normal(name) not in {normal(n) for n in names}:
                names.append(name)
        return servers, names

    # --- lookups ------------------------------------------------------------------------

    async def _node_lookup(self, name: str) -> Lookup:
        limit = self.settings.lookup_timeout
        gate = self._gates.setdefault(name, BlockingGate(f"dns-{name}", timed=True))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                await gate.run(lambda: resolve_name(name))
        except TimeoutError:
            reason = f"no answer within {limit:g}s"
            return Lookup(name, NODE, False, time.perf_counter() - started, reason)
        except socket.gaierror as e:
            reason = _GAI_REASONS.get(e.errno or 0, e.strerror or str(e))
            return Lookup(name, NODE, False, time.perf_counter() - started, reason)
        except (CheckError, OSError, UnicodeError) as e:
            return Lookup(name, NODE, False, time.perf_counter() - started, str(e))
        return Lookup(name, NODE, True, time.perf_counter() - started, None)

    async def _cluster_lookup(self, name: str, server: str) -> Lookup:
        resolver = f"cluster:[{server}]" if ":" in server else f"cluster:{server}"
        started = time.perf_counter()
        try:
            await resolve(server, name, self.settings.lookup_timeout)
        except LookupFailed as e:
            return Lookup(name, resolver, False, time.perf_counter() - started, str(e))
        return Lookup(name, resolver, True, time.perf_counter() - started, None)

    async def run(self) -> CheckOutput:
        out = self.output()
        facts = await self.gate.run(self.read_host)
        targets: list[tuple[str, str | None]] = [
            (name, None) for name in self.node_names(facts, out)
        ]
        servers, cluster_names = self.cluster_dns(facts, out)
        targets += [(name, server) for server in servers for name in cluster_names]
        targets = list(dict.fromkeys(targets))  # a name or server listed twice: one series
        targets = list(out.cap(targets, self.settings.max_items, "dns", "lookups"))
        async with asyncio.TaskGroup() as group:  # a timeout cancels every part
            links_read = group.create_task(self._links())
            asked = [
                group.create_task(
                    self._node_lookup(name)
                    if server is None
                    else self._cluster_lookup(name, server)
                )
                for name, server in targets
            ]
        links = links_read.result()
        lookups = [task.result() for task in asked]
        for lookup in lookups:
            out.add(DNS_SUCCESS, lookup.ok, name=lookup.name, resolver=lookup.resolver)
            out.add(DNS_DURATION, lookup.seconds, name=lookup.name, resolver=lookup.resolver)
            if not lookup.ok:
                out.note(
                    f"DNS lookup of {lookup.name} via {lookup.resolver} failed: {lookup.reason}",
                    Req.DNS,
                )
        self._nodelocal(facts, servers, links, out)
        if facts.kubelet_error is None:  # else the requirement is unknown (ERROR)
            if lookups:
                out.observe(Req.DNS, all(lookup.ok for lookup in lookups))
            else:
                out.note("nothing to resolve: set checks.dns.names or cluster_dns", Req.DNS)
                out.observe(Req.DNS, None)
        return out.build()

    def _nodelocal(
        self,
        facts: HostFacts,
        servers: list[str],
        links: LinkEvidence | str,
        out: OutputBuilder,
    ) -> None:
        found = {
            Evidence.CLUSTER_DNS: nodelocal.in_cluster_dns(servers),
            Evidence.RESOLV_CONF: facts.resolv_conf,
        }
        if isinstance(links, LinkEvidence):
            found[Evidence.INTERFACE] = links.interface
            found[Evidence.ADDRESS] = links.address
        else:
            out.fail(links)
        for source in Evidence:
            if source in found:
                out.add(DNS_NODELOCAL_EVIDENCE, found[source], source=source.value)
        detected = [source.value for source in Evidence if found.get(source)]
        out.add(DNS_NODELOCAL, bool(detected))
        if detected:
            out.note(
                f"NodeLocal DNSCache ({NODELOCAL_ADDRESS}) is in use on this node (seen in: "
                f"{', '.join(detected)}): guest clusters in VMs that run it too need their "
                "dnsConfig/dnsPolicy set (docs/dns.md)"
            )
