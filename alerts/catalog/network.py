"""Alerts of the network check (exporter/checks/network.py): link speed, state and MTU."""

from __future__ import annotations

from alerts.catalog.common import (
    INSTANCE,
    JOB,
    NODE1,
    SELECTOR,
    Alert,
    Case,
    Impact,
    Rule,
    fired,
    requirement_rules,
    requirement_series,
    thresholds_text,
)
from exporter.checks import ROWS
from exporter.spec import (
    GENEVE_OVERHEAD_BYTES,
    LINK_FLAP_CHANGES_15M,
    MIN_POD_MTU_BYTES,
    PROFILES,
    Level,
    Req,
)

#: the node MTU that leaves pods MIN_POD_MTU_BYTES once Kube-OVN takes the Geneve header
MIN_NODE_MTU = MIN_POD_MTU_BYTES + GENEVE_OVERHEAD_BYTES


def _nic_speeds() -> list[float]:
    """The link speeds the profiles ask for, at every level."""
    return [
        value for reqs in PROFILES.values() for value in reqs[Req.NIC_SPEED].thresholds.values()
    ]


def _speed(value: float) -> str:
    """A speed as the report writes it ('10 Gb/s'); every profile formats it alike."""
    return next(iter(PROFILES.values()))[Req.NIC_SPEED].format(value)


_SLOWEST = min(_nic_speeds())

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevNICSpeedInsufficient",
        rules=requirement_rules(
            Req.NIC_SPEED,
            "The node's link is slower than required",
            "the fastest link that is up",
            " | humanize",
        ),
        meaning="The fastest physical link that is up runs below its profile's threshold "
        f"({thresholds_text(Req.NIC_SPEED)}). Speeds are in bytes per second: "
        f"{_speed(_SLOWEST)} is {_SLOWEST / 1e6:g} MB/s.",
        impact="Nothing stops: live migration, storage replication and pod traffic are capped "
        "at the link's speed. A fact of the machine: a ticket, and a verdict of the `check` "
        "command before install.",
        diagnosis=(
            "`kubev_network_speed_bytes` per interface; `ethtool IFACE` on the node "
            "(negotiated speed, cabling, switch port).",
        ),
        mitigation=(
            ROWS[Req.NIC_SPEED].hint,
            "Give live migration a network of its own (KubeVirt's migration network on a "
            "dedicated NIC), so it does not share the slow link with VM traffic.",
        ),
        cases=(
            Case(
                requirement_series(
                    Req.NIC_SPEED,
                    "bytes/s",
                    12.5e6,
                    {"minimum": 125e6, "recommended": 1.25e9},
                    {"minimum": 0, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.NIC_SPEED,
                        "bytes/s",
                        Level.MINIMUM,
                        "node-1:19100: the fastest link that is up is 12.5M; the minimum of "
                        "its profile is 125M.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.NIC_SPEED,
                    "bytes/s",
                    125e6,
                    {"minimum": 125e6, "recommended": 1.25e9},
                    {"minimum": 1, "recommended": 0},
                ),
                "5m",
                (
                    fired(
                        Req.NIC_SPEED,
                        "bytes/s",
                        Level.RECOMMENDED,
                        "node-1:19100: the fastest link that is up is 125M; the "
                        "recommendation of its profile is 1.25G.",
                    ),
                ),
            ),
            Case(
                requirement_series(
                    Req.NIC_SPEED,
                    "bytes/s",
                    1.25e9,
                    {"minimum": 125e6, "recommended": 1.25e9},
                    {"minimum": 1, "recommended": 1},
                ),
                "5m",
            ),
        ),
    ),
    Alert(
        name="KubevNetworkLinkDown",
        rules=(
            Rule(
                # a link that was never up within the hour is an unused port, not an outage
                expr=f"kubev_network_up{{{SELECTOR}}} == 0 "
                f"and max_over_time(kubev_network_up{{{SELECTOR}}}[1h]) == 1",
                impact=Impact.DEGRADES,
                for_="2m",
                summary="A network link went down",
                description="{{ $labels.instance }}: {{ $labels.interface }} was up within the "
                "last hour and is down now.",
            ),
        ),
        meaning="A physical interface that was up in the last hour is not up now. Links that "
        "were never up (unused ports) do not alert.",
        impact="Traffic on that link stops; bonds lose redundancy.",
        diagnosis=("`ip link show IFACE`, `ethtool IFACE`, `dmesg | grep -i link` on the node.",),
        mitigation=("Check cable, switch port and NIC; reseat or replace.",),
        cases=(
            Case(
                {f'kubev_network_up{{{NODE1},interface="eno1"}}': "1x20 0x20"},
                "35m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "interface": "eno1",
                        "severity": "warning",
                        "description": "node-1:19100: eno1 was up within the last hour and is down "
                        "now.",
                    },
                ),
            ),
            Case({f'kubev_network_up{{{NODE1},interface="eno2"}}': "0x40"}, "35m"),
        ),
    ),
    Alert(
        name="KubevNetworkLinkFlapping",
        rules=(
            Rule(
                expr=f"increase(kubev_network_carrier_changes_total{{{SELECTOR}}}[15m]) "
                f"> {LINK_FLAP_CHANGES_15M}",
                impact=Impact.DEGRADES,
                for_="5m",
                summary="A network link is flapping",
                description="{{ $labels.instance }}: {{ $labels.interface }} changed carrier "
                '{{ $value | printf "%.0f" }} times in 15 minutes.',
            ),
        ),
        meaning=f"The carrier of a link went up or down more than {LINK_FLAP_CHANGES_15M} "
        "times in 15 minutes.",
        impact="Connections reset; OVN tunnels and live migrations fail intermittently.",
        diagnosis=("`kubev_network_carrier_changes_total`; `dmesg -T | grep -i 'link is'`.",),
        mitigation=("Replace the cable or transceiver; check the switch port's error counters.",),
        cases=(
            Case(
                {f'kubev_network_carrier_changes_total{{{NODE1},interface="eno1"}}': "0+1x30"},
                "25m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "interface": "eno1",
                        "severity": "warning",
                        "description": "node-1:19100: eno1 changed carrier 15 times in 15 minutes.",
                    },
                ),
            ),
            Case(
                {f'kubev_network_carrier_changes_total{{{NODE1},interface="eno1"}}': "3x30"}, "25m"
            ),
        ),
    ),
    Alert(
        name="KubevNetworkMTUTooSmall",
        rules=(
            Rule(
                expr=f"kubev_network_mtu_bytes{{{SELECTOR}}} < {MIN_NODE_MTU} "
                f"and kubev_network_up{{{SELECTOR}}} == 1",
                impact=Impact.DEGRADES,
                for_="5m",
                summary="The link MTU leaves too little for Geneve",
                description="{{ $labels.instance }}: {{ $labels.interface }} has MTU {{ $value }}; "
                f"Kube-OVN reserves {GENEVE_OVERHEAD_BYTES} bytes for Geneve, so pods get less than "
                f"{MIN_POD_MTU_BYTES} (node MTU {MIN_NODE_MTU} or more recommended).",
            ),
        ),
        meaning=f"An up physical link has an MTU below {MIN_NODE_MTU} bytes.",
        impact=f"Kube-OVN gives pods the node MTU less {GENEVE_OVERHEAD_BYTES} bytes, so pods and "
        f"VMs get less than {MIN_POD_MTU_BYTES}: more packets for the same data, and peers or "
        "guests that assume a larger MTU meet dropped packets where ICMP is filtered (PMTU "
        "black holes).",
        diagnosis=(
            "`ip link show IFACE`; Kube-OVN's pod MTU: `kubectl -n kube-system get "
            "ds kube-ovn-cni -o yaml | grep -i mtu`.",
        ),
        mitigation=(
            f"Raise the NIC and switch MTU ({MIN_NODE_MTU}, or jumbo frames), or set Kube-OVN's "
            "`--mtu` explicitly and accept the smaller pod MTU.",
        ),
        cases=(
            Case(
                {
                    f'kubev_network_mtu_bytes{{{NODE1},interface="eth0"}}': "1400x10",
                    f'kubev_network_up{{{NODE1},interface="eth0"}}': "1x10",
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "interface": "eth0",
                        "severity": "warning",
                        "description": "node-1:19100: eth0 has MTU 1400; Kube-OVN reserves 100 bytes "
                        "for Geneve, so pods get less than 1400 (node MTU 1500 or more "
                        "recommended).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_network_mtu_bytes{{{NODE1},interface="eth0"}}': "9000x10",
                    f'kubev_network_up{{{NODE1},interface="eth0"}}': "1x10",
                },
                "8m",
            ),
        ),
    ),
)
