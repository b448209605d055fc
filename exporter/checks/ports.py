"""Ports: are the platform's ports (the spec's table) alive on this node?

TCP ports get a non-blocking connect to the node address, bounded per port, swept from
one thread. Listening sockets, TCP and UDP, v4 and v6, come from the kernel via sock_diag
(exporter/sockdiag.py): the only honest way to see a UDP port such as Geneve's 6081.
The NodePort range is counted, not swept.
"""

from __future__ import annotations

import errno
import ipaddress
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.blocking import BlockingGate, lower_priority
from exporter.checks.base import BlockingCheck, RequirementRow, samples_of
from exporter.checks.nodeaddr import NodeAddress, resolve
from exporter.checks.sockdiag import Listeners, listeners
from exporter.metrics import MetricGroup
from exporter.model import CheckOutput
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    ConfigError,
    choice,
    kind,
    mapping,
    parse_duration,
    parse_positive_int,
    parse_section,
    parse_str,
    setting,
    show_duration,
    shown,
)
from exporter.spec import PORTS, Condition, Expectation, PortRange, Req, Role, Scope, port_row
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

METRICS = MetricGroup("ports")
NODE_ADDRESS_INFO = METRICS.gauge(
    "kubev_node_address_info",
    "Always 1; the address the network probes target and where it came from (config, env, "
    "default-route, fallback).",
    ("address", "source"),
)
PORT_UP = METRICS.gauge(
    "kubev_port_up",
    "1 if the port answers where it should: a TCP connect to the node address (127.0.0.1 "
    "for components that listen on loopback only) succeeded, or a UDP socket is bound; and "
    "a port other nodes must reach does not listen on loopback only.",
    ("component", "port", "protocol"),
)
PORT_LISTENING = METRICS.gauge(
    "kubev_port_listening",
    "1 if the kernel has a listening TCP or bound UDP socket on the port, on any address "
    "(sock_diag).",
    ("component", "port", "protocol"),
)
PORT_EXPECTED = METRICS.gauge(
    "kubev_port_expected",
    "1 if this node requires the port (its role, and for OVN's databases and Geneve what "
    "the node runs); 0 if optional: reported, never alerted.",
    ("component", "port", "protocol"),
)
PORT_UNREACHABLE_BIND = METRICS.gauge(
    "kubev_port_unreachable_bind",
    "1 if a port other nodes must reach listens, but only on loopback or on another "
    "address than the node's: it looks up from the node and is down from everywhere else.",
    ("component", "port", "protocol"),
)
PORT_CONNECT_DURATION = METRICS.gauge(
    "kubev_port_connect_duration_seconds",
    "Time the last successful TCP connect took.",
    ("component", "port"),
)
TUNNEL_INFO = METRICS.gauge(
    "kubev_tunnel_info",
    "Always 1; the overlay tunnel this node uses: geneve, vxlan, or none (a single node "
    "has no tunnel device).",
    ("type",),
)
CONDITION = METRICS.gauge(
    "kubev_port_condition",
    "1 if the condition of a conditional port holds on this node: ovn-central (OVN's "
    "databases run here), ovn-raft (clustered), geneve (a Geneve tunnel is expected).",
    ("condition",),
)
NODEPORT = port_row("nodeport")
NODEPORT_SOCKETS = METRICS.gauge(
    "kubev_nodeport_listening_sockets",
    f"Listening sockets in the NodePort range {NODEPORT.first}-{NODEPORT.last} (counted, "
    "not probed).",
    ("protocol",),
)

_EXPECTATIONS = tuple(e.value for e in Expectation)


def _expectation(value: object, where: str) -> Expectation:
    return Expectation(choice(_EXPECTATIONS)(value, where))


def _expectations(value: object, where: str) -> Mapping[str, Expectation]:
    components = {p.component for p in PORTS}
    result = {}
    for name, given in mapping(value, where).items():
        if name not in components:
            known = ", ".join(sorted(components))
            raise ConfigError(f"{where}.{name}: unknown component (known: {known})")
        result[str(name)] = _expectation(given, f"{where}.{name}")
    return result


def _port_range(value: object, where: str) -> tuple[int, int]:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        first, _, last = text.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            low, high = int(first), int(last or first)
            if 1 <= low <= high <= 65535:
                return low, high
    raise ConfigError(
        f"{where}: must be a port (1-65535) or a range like 61000-61009, got {shown(value)}"
    )


@dataclass(frozen=True)
class ExtraPort:
    """A port the spec table does not list, probed like the others."""

    component: str = setting("", parse=parse_str, doc="name in the component label")
    port: tuple[int, int] = setting(
        (0, 0), parse=_port_range, doc="a port or a range such as 9000-9002"
    )
    protocol: str = setting("tcp", parse=choice(("tcp", "udp")), doc="tcp | udp")
    expectation: Expectation = setting(
        Expectation.REQUIRED, parse=_expectation, doc="required | optional | transient | absent"
    )

    @property
    def first(self) -> int:
        return self.port[0]

    @property
    def last(self) -> int:
        return self.port[1]


def _extra_ports(value: object, where: str) -> tuple[ExtraPort, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list, got {kind(value)}")
    ports = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        extra = parse_section(ExtraPort, item, at, ExtraPort())
        for required in ("component", "port"):
            if required not in mapping(item, at):
                raise ConfigError(f"{at}.{required}: required")
        if not extra.component:
            raise ConfigError(f"{at}.component: required")
        ports.append(extra)
    return tuple(ports)


@dataclass(frozen=True, kw_only=True)
class PortsSettings(CheckSettings):
    connect_timeout: float = setting(
        1.0, parse=parse_duration, show=show_duration, doc="each TCP connect"
    )
    concurrency: int = setting(256, parse=parse_positive_int, doc="connects in flight at once")
    ovn_central: str = setting(
        "auto",
        parse=choice(("auto", "clustered", "standalone", "none")),
        doc="OVN databases here: auto = where 6641/6642 listen (raft where 6643/6644 do)",
    )
    tunnel: str = setting(
        "auto",
        parse=choice(("auto", "geneve", "vxlan", "none")),
        doc="auto: genev_sys_6081/vxlan_sys_4789 if present, else geneve on multi-node roles",
    )
    expectations: Mapping[str, Expectation] = setting(
        default_factory=dict,
        parse=_expectations,
        doc="component: required|optional|transient|absent, e.g. {etcd: absent}",
    )
    extra: tuple[ExtraPort, ...] = setting(
        (),
        parse=_extra_ports,
        doc="[{component: my-agent, port: 9000, protocol: tcp, expectation: optional}]",
    )


def port_expectation(config: Config, row: PortRange) -> Expectation:
    """What this node's role expects of a port-table row, or the config's word for it."""
    expectations = config.settings(PortsSettings).expectations
    return expectations.get(row.component, row.expectation(config.role))


#: the tunnel devices OVS creates (openvswitch/ovs lib/netdev-vport.c: "<class>_<port>";
#: kubeovn/kube-ovn pkg/util/const.go GeneveNic, VxlanNic)
TUNNEL_DEVICES = {"geneve": "genev_sys_6081", "vxlan": "vxlan_sys_4789"}
#: where LOOPBACK-scope ports are probed: kubeadm binds the scheduler and the
#: controller-manager to 127.0.0.1 whatever the cluster's address family
#: (cmd/kubeadm/app/phases/controlplane/manifests.go: "bind-address": "127.0.0.1")
LOOPBACK = "127.0.0.1"
WILDCARDS = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True)
class Target:
    component: str
    port: int
    protocol: str
    expectation: Expectation
    scope: Scope = Scope.ANY
    remote: bool = False
    condition: Condition | None = None


@dataclass(frozen=True)
class Probe:
    up: bool
    seconds: float | None
    reason: str | None


@dataclass(frozen=True)
class Situation:
    """What this node runs, as far as the conditional ports go."""

    ovn_central: bool
    ovn_raft: bool
    tunnel: str  # geneve, vxlan, none
    geneve_expected: bool
    #: the tunnel devices present
    devices: frozenset[str] = frozenset()

    def holds(self, condition: Condition | None) -> bool:
        if condition is None:
            return True
        return {
            Condition.OVN_CENTRAL: self.ovn_central,
            Condition.OVN_RAFT: self.ovn_raft,
            Condition.GENEVE: self.geneve_expected,
        }[condition]


def targets(config: Config) -> list[Target]:
    """Every port this node's role may expect (conditions are settled per run), with the
    config's overrides and extra ports. Ports in a pod's network are never probed."""
    found: dict[tuple[str, int, str], Target] = {}
    for row in PORTS:
        expectation = port_expectation(config, row)
        if expectation is Expectation.ABSENT or not row.probe or row.scope is Scope.POD:
            continue
        for port in row.ports:
            for protocol in row.protocols:
                found[(row.component, port, protocol)] = Target(
                    row.component,
                    port,
                    protocol,
                    expectation,
                    row.scope,
                    row.remote,
                    row.condition,
                )
    for extra in config.settings(PortsSettings).extra:
        for port in range(extra.first, extra.last + 1):
            key = (extra.component, port, extra.protocol)
            found[key] = Target(extra.component, port, extra.protocol, extra.expectation)
    return list(found.values())


def situation(
    settings: PortsSettings, role: Role, found: Listeners, devices: set[str]
) -> Situation:
    """Settle the conditional ports. OVN central in auto mode: the nodes where its
    databases listen (install.sh runs them clustered, even on one master, so the raft
    ports come with them; a node whose raft ports are both down reads as standalone there,
    which `ovn_central: clustered` on the central nodes catches). The tunnel in auto mode:
    the device OVS made; without one, a multi-node role expects Geneve (Kube-OVN's default
    TUNNEL_TYPE) and a single node expects none (kube-ovn#3605)."""
    listening = found.ports("tcp")
    if settings.ovn_central == "auto":
        central = bool({6641, 6642} & listening)
        raft = central and bool({6643, 6644} & listening)
    else:
        central = settings.ovn_central in ("clustered", "standalone")
        raft = settings.ovn_central == "clustered"
    tunnel = settings.tunnel
    if tunnel == "auto":
        present = [kind for kind, device in TUNNEL_DEVICES.items() if device in devices]
        fallback = "none" if role is Role.SINGLE_NODE else "geneve"
        tunnel = present[0] if present else fallback
    return Situation(central, raft, tunnel, tunnel == "geneve", frozenset(devices))


def unbound_reason(target: Target, here: Situation) -> str:
    """Why a UDP port has no socket: for Geneve, whether the device the kernel binds it
    for is there at all."""
    if target.condition is not Condition.GENEVE:
        return "no bound UDP socket"
    device = TUNNEL_DEVICES["geneve"]
    if device in here.devices:
        return f"{device} exists but nothing is bound to {target.port}/udp (is it down?)"
    return (
        f"no bound UDP socket and no {device} device: OVS makes it with the first tunnel to "
        "another node (checks.ports.tunnel: none on a node with no peers)"
    )


def sweep(endpoints: list[tuple[str, int]], limit_seconds: float, concurrency: int) -> list[Probe]:
    """TCP-connect every (address, port), `concurrency` at a time, each bounded by
    `limit_seconds` (blocking; run it in a thread).

    One thread with non-blocking sockets and a selector: the kernel does the waiting, so
    a sweep of a thousand ports costs the event loop (and the scrapes) nothing.
    """
    results: dict[int, Probe] = {}
    pending = list(reversed(range(len(endpoints))))
    selector = selectors.DefaultSelector()
    started: dict[socket.socket, tuple[int, float]] = {}

    def finish(sock: socket.socket, probe: Probe) -> None:
        results[started.pop(sock)[0]] = probe
        selector.unregister(sock)
        sock.close()

    try:
        while pending or started:
            while pending and len(started) < concurrency:
                index = pending.pop()
                address, port = endpoints[index]
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                begun = time.perf_counter()
                code = sock.connect_ex((address, port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    results[index] = Probe(False, None, errno.errorcode.get(code, str(code)))
                    continue
                started[sock] = (index, begun)
                selector.register(sock, selectors.EVENT_WRITE)
            now = time.perf_counter()
            oldest = min((begun for _, begun in started.values()), default=now)
            for key, _ in selector.select(timeout=max(0.0, oldest + limit_seconds - now)):
                sock = key.fileobj  # type: ignore[assignment]
                assert isinstance(sock, socket.socket)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                elapsed = time.perf_counter() - started[sock][1]
                if code == 0:
                    finish(sock, Probe(True, elapsed, None))
                else:
                    finish(sock, Probe(False, None, errno.errorcode.get(code, str(code))))
            now = time.perf_counter()
            for sock, (_, begun) in list(started.items()):
                if now - begun >= limit_seconds:
                    finish(sock, Probe(False, None, f"no answer within {limit_seconds:g}s"))
    finally:
        for sock in list(started):
            selector.unregister(sock)
            sock.close()
        selector.close()
    return [results[index] for index in range(len(endpoints))]


def where_it_listens(addresses: frozenset[str], node: str) -> str | None:
    """Why a listening port is not reachable at the node address, or None if it should be."""
    if not addresses or addresses & WILDCARDS or node in addresses:
        return None
    if all(ipaddress.ip_address(a).is_loopback for a in addresses if a != "?"):
        return f"listens on {', '.join(sorted(addresses))} only: other nodes cannot reach it"
    return f"listens on {', '.join(sorted(addresses))}, not on the node address {node}"


class PortsCheck(BlockingCheck[PortsSettings]):
    name = "ports"
    area = ("ports", "Ports")
    settings_type = PortsSettings
    defaults = PortsSettings(interval=15.0, timeout=10.0, max_items=4096)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.PORTS,
            "KubevPortDown",
            "Start or fix the component behind each closed port and open it in the "
            "firewalls; set --role if this node does not carry that role.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        """The required ports that are down, each with why (its note)."""
        expected = {s.labels for s in samples_of(output, PORT_EXPECTED) if s.value == 1}
        down = [
            s.labels for s in samples_of(output, PORT_UP) if s.value == 0 and s.labels in expected
        ]
        if down:
            why = output.notes_about(requirement) or [f"{c} {p}/{proto}" for c, p, proto in down]
            return f"{len(down)} required port(s) down: {'; '.join(why)}"
        return f"all {len(expected)} required ports up"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self.gate = BlockingGate(self.name, timed=True)  # the sweep times connects
        self.all_targets = targets(config)

    def _devices(self) -> set[str]:
        """The tunnel devices present (a host sysfs or a fixture tree, like the network
        check's sysfs source)."""
        return {d for d in TUNNEL_DEVICES.values() if self.paths.sys("class", "net", d).exists()}

    def _probe_all(
        self,
    ) -> tuple[NodeAddress, Listeners, Situation, list[Target], list[Target], list[Probe]]:
        """Blocking: the node address, sock_diag, the tunnel devices, then the TCP sweep."""
        settings = self.settings
        node = resolve(self.config.node_address)
        found = listeners()
        here = situation(settings, self.config.role, found, self._devices())
        expected = [t for t in self.all_targets if here.holds(t.condition)]
        probed = expected[: settings.max_items]
        endpoints = [
            (LOOPBACK if t.scope is Scope.LOOPBACK else node.address, t.port)
            for t in probed
            if t.protocol == "tcp"
        ]
        swept = iter(sweep(endpoints, settings.connect_timeout, settings.concurrency))
        results = []
        for target in probed:
            if target.protocol == "udp":
                bound = target.port in found.ports("udp")
                reason = None if bound else unbound_reason(target, here)
                results.append(Probe(bound, None, reason))
            else:
                results.append(next(swept))
        return node, found, here, expected, probed, results

    def collect(self) -> CheckOutput:
        """Probe, then build the output, both in the check's thread: a thousand ports make
        four thousand samples, work the event loop must not do."""
        node, found, here, expected, probed, results = self._probe_all()
        lower_priority()  # the connects are timed; building the samples is not
        out = self.output()
        out.cap(expected, self.settings.max_items, "ports", "ports")
        out.add(NODE_ADDRESS_INFO, 1, address=node.address, source=node.source)
        if node.note:
            out.note(node.note)
        out.add(TUNNEL_INFO, 1, type=here.tunnel)
        for condition in Condition:
            out.add(CONDITION, here.holds(condition), condition=condition.value)
        all_required_up = True
        for target, result in zip(probed, results, strict=True):
            labels = {
                "component": target.component,
                "port": str(target.port),
                "protocol": target.protocol,
            }
            addresses = found.addresses(target.protocol, target.port)
            misplaced = where_it_listens(addresses, node.address) if target.remote else None
            up = result.up and misplaced is None
            out.add(PORT_UP, up, **labels)
            out.add(PORT_LISTENING, bool(addresses), **labels)
            out.add(PORT_EXPECTED, target.expectation is Expectation.REQUIRED, **labels)
            if target.remote:
                out.add(PORT_UNREACHABLE_BIND, misplaced is not None, **labels)
            if result.seconds is not None:
                out.add(
                    PORT_CONNECT_DURATION,
                    result.seconds,
                    component=target.component,
                    port=str(target.port),
                )
            if target.expectation is Expectation.REQUIRED and not up:
                all_required_up = False
                where = LOOPBACK if target.scope is Scope.LOOPBACK else node.address
                out.note(
                    f"{target.component} {target.port}/{target.protocol} is down on "
                    f"{where}: {misplaced or result.reason}",
                    Req.PORTS,
                )
        for protocol in ("tcp", "udp"):
            count = sum(1 for port in found.ports(protocol) if port in NODEPORT.ports)
            out.add(NODEPORT_SOCKETS, count, protocol=protocol)
        out.observe(Req.PORTS, all_required_up)
        return out.build()
