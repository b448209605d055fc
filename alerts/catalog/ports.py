"""Alerts of the ports check (exporter/checks/ports.py): the spec's port table, with Geneve's
UDP port on its own (a bound socket, not a connect, tells whether it is up)."""

from __future__ import annotations

from alerts.catalog.common import (
    INSTANCE,
    JOB,
    NODE1,
    SELECTOR,
    Alert,
    Case,
    Rule,
    port_of,
    requirement_impact,
)
from exporter.checks import ROWS
from exporter.spec import Level, Req

GENEVE_PORT = port_of("geneve")


def _port_down(component_matcher: str) -> str:
    """A port that is down where the node's role expects it (the two series of a port
    share every label)."""
    return (
        f"kubev_port_up{{{SELECTOR},{component_matcher}}} == 0 "
        f"and kubev_port_expected{{{SELECTOR}}} == 1"
    )


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevPortDown",
        rules=(
            Rule(
                expr=_port_down('component!="geneve"'),
                impact=requirement_impact(Req.PORTS, Level.MINIMUM),
                for_="5m",
                summary="A platform port is down",
                description="{{ $labels.instance }}: {{ $labels.component }} does not answer on "
                "{{ $labels.port }}/{{ $labels.protocol }}, which this node's role requires.",
            ),
        ),
        meaning="A TCP port the node's role requires (the spec's port table) refused or did not "
        "answer a connect to the node address.",
        impact="The component behind it is down or unreachable: API, etcd, kubelet, OVN "
        "databases or metrics, depending on the port.",
        diagnosis=(
            "`kubev_port_up`, `kubev_port_listening` for the port: listening but not up means "
            "it binds another address or a firewall drops it.",
            "On the node: `ss -ltnp 'sport = :PORT'`, `nc -vz NODE_IP PORT`, the component's "
            "logs (`crictl ps`, `crictl logs`).",
        ),
        mitigation=(
            ROWS[Req.PORTS].hint,
            "A port the role lists that this node does not serve: `checks.ports.expectations`; "
            "OVN's databases and Geneve follow `checks.ports.ovn_central` and "
            "`checks.ports.tunnel` (docs/ports.md).",
        ),
        cases=(
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="etcd",port="2379",protocol="tcp"}}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="etcd",port="2379",protocol="tcp"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": "etcd",
                        "port": "2379",
                        "protocol": "tcp",
                        "severity": "critical",
                        "description": "node-1:19100: etcd does not answer on 2379/tcp, which this "
                        "node's role requires.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="live-migration",port="61000",'
                    'protocol="tcp"}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="live-migration",port="61000",'
                    'protocol="tcp"}': "0x10",
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevGeneveNotBound",
        rules=(
            Rule(
                expr=_port_down('component="geneve"'),
                impact=requirement_impact(Req.PORTS, Level.MINIMUM),
                for_="5m",
                summary="No socket is bound to Geneve's UDP port",
                description="{{ $labels.instance }}: nothing is bound to {{ $labels.port }}/udp: "
                "the OVN overlay cannot reach this node.",
            ),
        ),
        meaning=f"No UDP socket is bound to {GENEVE_PORT} (Geneve), as the kernel reports "
        "through sock_diag.",
        impact="Pods on this node cannot talk to pods on other nodes over the overlay.",
        diagnosis=(
            f"`ss -lun 'sport = :{GENEVE_PORT}'`, `ovs-vsctl show` (geneve ports), "
            "`kubectl -n kube-system logs ds/ovs-ovn`.",
        ),
        mitigation=(
            "Restart ovs-ovn / kube-ovn-cni on the node; check that the Geneve kernel "
            "module loads (`modprobe geneve`).",
        ),
        cases=(
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "0x10",
                    f'kubev_port_expected{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": "geneve",
                        "port": "6081",
                        "protocol": "udp",
                        "severity": "critical",
                        "description": "node-1:19100: nothing is bound to 6081/udp: the OVN overlay "
                        "cannot reach this node.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_port_up{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                    f'kubev_port_expected{{{NODE1},component="geneve",port="6081",protocol="udp"}}': "1x10",
                },
                "8m",
            ),
        ),
    ),
)
