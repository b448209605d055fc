"""Ports: are the platform's ports (the spec's table) alive on this node?

TCP ports get a non-blocking connect to the node address, bounded per port, swept from
one thread. Listening sockets, TCP and UDP, v4 and v6, come from the kernel via sock_diag
(exporter/sockdiag.py): the only honest way to see a UDP port such as Geneve's 6081.
The NodePort range is counted, not swept.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.blocking import BlockingGate, lower_priority
from exporter.checks.base import BlockingCheck, RequirementRow, samples_of
from exporter.checks.nodeaddr import NodeAddress, resolve
from exporter.checks.sockdiag import listening_ports
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
)
from exporter.spec import PORTS, Expectation, PortRange, Req
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
    "1 if the port answers: a TCP connect to the node address succeeded, or a UDP socket is bound.",
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
    "1 if this node's role requires the port; 0 if optional or transient (live migration): "
    "reported, never alerted.",
    ("component", "port", "protocol"),
)
PORT_CONNECT_DURATION = METRICS.gauge(
    "kubev_port_connect_duration_seconds",
    "Time the last successful TCP connect took.",
    ("component", "port"),
)
NODEPORT_SOCKETS = METRICS.gauge(
    "kubev_nodeport_listening_sockets",
    "Listening sockets in the NodePort range 30000-32767 (counted, not probed).",
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
        f"{where}: must be a port (1-65535) or a range like 61000-61009, got {value!r}"
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
    expectations: Mapping[str, Expectation] = setting(
        default_factory=dict,
        parse=_expectations,
        doc="component: required|optional|transient|absent, e.g. {kubevirt-api: required}",
    )
    extra: tuple[ExtraPort, ...] = setting(
        (),
        parse=_extra_ports,
        doc="[{component: my-agent, port: 9000, protocol: tcp, expectation: optional}]",
    )


def port_expectation(config: Config, row: PortRange) -> Expectation:
    """What this node expects of a port-table row: the config's word, else the role's."""
    expectations = config.settings(PortsSettings).expectations
    return expectations.get(row.component, row.expectation(config.role))


@dataclass(frozen=True)
class Target:
    component: str
    port: int
    protocol: str
    expectation: Expectation


@dataclass(frozen=True)
class Probe:
    up: bool
    seconds: float | None
    reason: str | None


def targets(config: Config) -> list[Target]:
    """What this node's role expects, with the config's overrides and extra ports."""
    found: dict[tuple[str, int, str], Target] = {}
    for row in PORTS:
        expectation = port_expectation(config, row)
        if expectation is Expectation.ABSENT or not row.probe:
            continue
        for port in row.ports:
            for protocol in row.protocols:
                found[(row.component, port, protocol)] = Target(
                    row.component, port, protocol, expectation
                )
    for extra in config.settings(PortsSettings).extra:
        for port in range(extra.first, extra.last + 1):
            key = (extra.component, port, extra.protocol)
            found[key] = Target(extra.component, port, extra.protocol, extra.expectation)
    return list(found.values())


def sweep(address: str, ports: list[int], limit_seconds: float, concurrency: int) -> list[Probe]:
    """TCP-connect every port of the address, `concurrency` at a time, each bounded by
    `limit_seconds` (blocking; run it in a thread).

    One thread with non-blocking sockets and a selector: the kernel does the waiting, so
    a sweep of a thousand ports costs the event loop (and the scrapes) nothing.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    results: dict[int, Probe] = {}
    pending = list(reversed(ports))
    selector = selectors.DefaultSelector()
    started: dict[socket.socket, tuple[int, float]] = {}

    def finish(sock: socket.socket, probe: Probe) -> None:
        results[started.pop(sock)[0]] = probe
        selector.unregister(sock)
        sock.close()

    try:
        while pending or started:
            while pending and len(started) < concurrency:
                port = pending.pop()
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                begun = time.perf_counter()
                code = sock.connect_ex((address, port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    results[port] = Probe(False, None, errno.errorcode.get(code, str(code)))
                    continue
                started[sock] = (port, begun)
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
    return [results[port] for port in ports]


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
        expected = {s.labels for s in samples_of(output, PORT_EXPECTED) if s.value == 1}
        down = [
            f"{c} {p}/{proto}"
            for s in samples_of(output, PORT_UP)
            if s.value == 0 and s.labels in expected
            for c, p, proto in [s.labels]
        ]
        if down:
            return f"{len(down)} required port(s) down: {', '.join(down)}"
        return f"all {len(expected)} required ports up"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self.gate = BlockingGate(self.name, timed=True)  # the sweep times connects
        self.all_targets = targets(config)
        self.targets = self.all_targets[: self.settings.max_items]

    def _probe_all(self) -> tuple[NodeAddress, dict[str, set[int]], list[Probe]]:
        """Blocking: the node address, sock_diag, then the TCP sweep."""
        settings = self.settings
        node = resolve(self.config.node_address)
        listening = listening_ports()
        tcp = [t.port for t in self.targets if t.protocol == "tcp"]
        swept = iter(sweep(node.address, tcp, settings.connect_timeout, settings.concurrency))
        results = []
        for target in self.targets:
            if target.protocol == "udp":
                bound = target.port in listening["udp"]
                results.append(Probe(bound, None, None if bound else "no bound UDP socket"))
            else:
                results.append(next(swept))
        return node, listening, results

    def collect(self) -> CheckOutput:
        """Probe, then build the output, both in the check's thread: a thousand ports make
        four thousand samples, work the event loop must not do."""
        node, listening, results = self._probe_all()
        lower_priority()  # the connects are timed; building the samples is not
        out = self.output()
        out.cap(self.all_targets, self.settings.max_items, "ports", "ports")
        out.add(NODE_ADDRESS_INFO, 1, address=node.address, source=node.source)
        if node.note:
            out.note(node.note)
        all_required_up = True
        for target, result in zip(self.targets, results, strict=True):
            labels = {
                "component": target.component,
                "port": str(target.port),
                "protocol": target.protocol,
            }
            out.add(PORT_UP, result.up, **labels)
            out.add(PORT_LISTENING, target.port in listening[target.protocol], **labels)
            out.add(PORT_EXPECTED, target.expectation is Expectation.REQUIRED, **labels)
            if result.seconds is not None:
                out.add(
                    PORT_CONNECT_DURATION,
                    result.seconds,
                    component=target.component,
                    port=str(target.port),
                )
            if target.expectation is Expectation.REQUIRED and not result.up:
                all_required_up = False
                out.note(
                    f"{target.component} {target.port}/{target.protocol} is down on "
                    f"{node.address}: {result.reason}",
                    Req.PORTS,
                )
        nodeport = next(p for p in PORTS if not p.probe)
        for protocol in ("tcp", "udp"):
            count = sum(
                1 for port in listening[protocol] if nodeport.first <= port <= nodeport.last
            )
            out.add(NODEPORT_SOCKETS, count, protocol=protocol)
        out.observe(Req.PORTS, all_required_up)
        return out.build()
