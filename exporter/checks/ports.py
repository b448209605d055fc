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
from dataclasses import dataclass

from exporter import metrics
from exporter.blocking import BlockingGate, lower_priority
from exporter.checks.base import BlockingCheck
from exporter.config import Config
from exporter.model import CheckOutput, OutputBuilder
from exporter.nodeaddr import NodeAddress, resolve
from exporter.paths import Paths
from exporter.sockdiag import listening_ports
from exporter.spec import PORTS, Expectation


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
        expectation = config.port_expectation(row)
        if expectation is Expectation.ABSENT or not row.probe:
            continue
        for port in row.ports:
            for protocol in row.protocols:
                found[(row.component, port, protocol)] = Target(
                    row.component, port, protocol, expectation
                )
    for extra in config.ports.extra:
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


class PortsCheck(BlockingCheck):
    name = "ports"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self.gate = BlockingGate(self.name, timed=True)  # the sweep times connects
        self.all_targets = targets(config)
        self.targets = self.all_targets[: config.ports.max_items]

    def _probe_all(self) -> tuple[NodeAddress, dict[str, set[int]], list[Probe]]:
        """Blocking: the node address, sock_diag, then the TCP sweep."""
        settings = self.config.ports
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
        out = OutputBuilder()
        out.cap(self.all_targets, self.config.ports.max_items, "ports", "ports")
        out.add(metrics.NODE_ADDRESS_INFO, 1, address=node.address, source=node.source)
        if node.note:
            out.note(node.note)
        all_required_up = True
        for target, result in zip(self.targets, results, strict=True):
            labels = {
                "component": target.component,
                "port": str(target.port),
                "protocol": target.protocol,
            }
            out.add(metrics.PORT_UP, result.up, **labels)
            out.add(metrics.PORT_LISTENING, target.port in listening[target.protocol], **labels)
            out.add(metrics.PORT_EXPECTED, target.expectation is Expectation.REQUIRED, **labels)
            if result.seconds is not None:
                out.add(
                    metrics.PORT_CONNECT_DURATION,
                    result.seconds,
                    component=target.component,
                    port=str(target.port),
                )
            if target.expectation is Expectation.REQUIRED and not result.up:
                all_required_up = False
                out.note(
                    f"{target.component} {target.port}/{target.protocol} is down on "
                    f"{node.address}: {result.reason}"
                )
        nodeport = next(p for p in PORTS if not p.probe)
        for protocol in ("tcp", "udp"):
            count = sum(
                1 for port in listening[protocol] if nodeport.first <= port <= nodeport.last
            )
            out.add(metrics.NODEPORT_SOCKETS, count, protocol=protocol)
        out.observe("ports", all_required_up)
        return out.build()
