"""The ports check's judgement, without a network: conditions, reasons, the detail."""

from __future__ import annotations

from exporter.checks.ports import (
    LOOPBACK,
    PORT_EXPECTED,
    PORT_UP,
    PortsCheck,
    PortsSettings,
    Target,
    situation,
    unbound_reason,
    where_it_listens,
)
from exporter.checks.sockdiag import Listeners
from exporter.spec import Condition, Expectation, Req, Role

GENEVE = Target("geneve", 6081, "udp", Expectation.REQUIRED, condition=Condition.GENEVE)
NODE = "10.1.0.5"


def found(
    tcp: dict[int, set[str]] | None = None, udp: dict[int, set[str]] | None = None
) -> Listeners:
    return Listeners(
        {
            "tcp": {p: frozenset(a) for p, a in (tcp or {}).items()},
            "udp": {p: frozenset(a) for p, a in (udp or {}).items()},
        }
    )


def test_loopback_ports_are_probed_on_127_0_0_1() -> None:
    """kubeadm binds the scheduler and the controller-manager to 127.0.0.1 even on an IPv6
    cluster (manifests.go), so ::1 would miss them."""
    assert LOOPBACK == "127.0.0.1"


def test_tunnel_in_auto_mode() -> None:
    settings = PortsSettings()
    none = found()
    assert situation(settings, Role.SINGLE_NODE, none, set()).tunnel == "none"
    worker = situation(settings, Role.WORKER, none, set())
    assert (worker.tunnel, worker.geneve_expected) == ("geneve", True)
    vxlan = situation(settings, Role.WORKER, none, {"vxlan_sys_4789"})
    assert (vxlan.tunnel, vxlan.geneve_expected) == ("vxlan", False)
    single = situation(settings, Role.SINGLE_NODE, none, {"genev_sys_6081"})
    assert single.geneve_expected and single.devices == frozenset({"genev_sys_6081"})


def test_ovn_central_in_auto_mode() -> None:
    settings = PortsSettings()
    central = situation(settings, Role.WORKER, found({6641: {NODE}, 6643: {NODE}}), set())
    assert (central.ovn_central, central.ovn_raft) == (True, True)
    standalone = situation(settings, Role.WORKER, found({6642: {NODE}}), set())
    assert (standalone.ovn_central, standalone.ovn_raft) == (True, False)
    # the limit of auto: a central node whose databases all died reads as non-central
    assert not situation(settings, Role.WORKER, found(), set()).ovn_central
    pinned = situation(PortsSettings(ovn_central="clustered"), Role.WORKER, found(), set())
    assert (pinned.ovn_central, pinned.ovn_raft) == (True, True)


def test_why_geneve_has_no_socket() -> None:
    worker = situation(PortsSettings(), Role.WORKER, found(), set())
    assert unbound_reason(GENEVE, worker) == (
        "no bound UDP socket and no genev_sys_6081 device: OVS makes it with the first tunnel "
        "to another node (checks.ports.tunnel: none on a node with no peers)"
    )
    down = situation(PortsSettings(), Role.WORKER, found(), {"genev_sys_6081"})
    assert unbound_reason(GENEVE, down) == (
        "genev_sys_6081 exists but nothing is bound to 6081/udp (is it down?)"
    )
    other = Target("agent", 9999, "udp", Expectation.REQUIRED)
    assert unbound_reason(other, worker) == "no bound UDP socket"


def test_where_it_listens() -> None:
    assert where_it_listens(frozenset({"0.0.0.0"}), NODE) is None
    assert where_it_listens(frozenset({"127.0.0.1", NODE}), NODE) is None
    assert where_it_listens(frozenset({"127.0.0.1"}), NODE) == (
        "listens on 127.0.0.1 only: other nodes cannot reach it"
    )
    assert where_it_listens(frozenset({"10.9.9.9"}), NODE) == (
        "listens on 10.9.9.9, not on the node address 10.1.0.5"
    )


def test_detail_gives_each_down_port_its_reason() -> None:
    out = PortsCheck.output()
    for component, port, up in (("kubelet", "10250", 0), ("kube-proxy", "10256", 1)):
        labels = {"component": component, "port": port, "protocol": "tcp"}
        out.add(PORT_UP, up, **labels)
        out.add(PORT_EXPECTED, 1, **labels)
    out.note(
        "kubelet 10250/tcp is down on 10.1.0.5: listens on 127.0.0.1 only: other nodes "
        "cannot reach it",
        Req.PORTS,
    )
    detail = PortsCheck.detail(Req.PORTS, out.build(), outcome=None)  # type: ignore[arg-type]
    assert detail == (
        "1 required port(s) down: kubelet 10250/tcp is down on 10.1.0.5: listens on "
        "127.0.0.1 only: other nodes cannot reach it"
    )
