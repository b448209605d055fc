"""The OVN check's judgement, without a network: where it probes, what a state reads like,
what kube-ovn-cni's node facts become."""

from __future__ import annotations

import pytest

from exporter.checks.ovn import (
    HINT_401,
    HINT_403,
    HINT_CERTIFICATE,
    NODEPORT,
    OVN_STATE,
    Endpoint,
    OvnCheck,
    describe,
    overlaps_nodeport,
    target,
)
from exporter.checks.ovnprobe import Result, State
from exporter.checks.promtext import Kept, Scan
from exporter.spec import Expectation, Req
from exporter.verdicts import Outcome
from tests.checkrun import values

NODE = "10.1.0.5"
CNI = Endpoint("kube-ovn-cni", 10665, Expectation.REQUIRED)


@pytest.mark.parametrize(
    ("addresses", "probed", "why"),
    [
        (None, NODE, None),  # sock_diag unknown
        (frozenset(), NODE, None),  # nothing listens: probe anyway, the refusal says so
        (frozenset({NODE}), NODE, None),
        (frozenset({"0.0.0.0"}), NODE, None),
        (frozenset({"::"}), NODE, None),
        # a health-only server binds the first of the node's addresses only
        (frozenset({"10.1.0.9", "fd00::9"}), "10.1.0.9", None),
        (frozenset({"fd00::9"}), "fd00::9", None),
        # pprof's loopback server alone: the metrics server is not there
        (
            frozenset({"127.0.0.1"}),
            NODE,
            "listens on 127.0.0.1 only: other nodes cannot reach it",
        ),
    ],
)
def test_where_an_endpoint_is_probed(
    addresses: frozenset[str] | None, probed: str, why: str | None
) -> None:
    assert target(NODE, addresses) == (probed, why)


def test_local_port_range_against_the_nodeport_range() -> None:
    first, last = NODEPORT.first, NODEPORT.last
    assert not overlaps_nodeport(last + 1, 60999)  # Linux's default 32768-60999
    assert not overlaps_nodeport(1024, first - 1)
    assert overlaps_nodeport(first, 60999)
    assert overlaps_nodeport(last, last)
    assert overlaps_nodeport(1024, 65535)


def result(state: State, status: int = 200, reason: str | None = "why") -> Result:
    return Result(state, status, 0.01, "https" if state.alive else "", reason, None)


def test_each_state_has_its_own_words_and_hint() -> None:
    dead = describe(CNI, NODE, result(State.DEAD, 0, "nothing listens on port 10665"))
    assert dead.startswith("kube-ovn-cni 10.1.0.5:10665: dead: nothing listens on port 10665")
    assert "restart the Kube-OVN pod" in dead
    disabled = describe(CNI, NODE, result(State.METRICS_DISABLED, 404))
    assert disabled.startswith("kube-ovn-cni https://10.1.0.5:10665: alive, metrics disabled")
    assert "ENABLE_METRICS=false" in disabled
    assert describe(CNI, NODE, result(State.UNAUTHORIZED, 401)).endswith(f"({HINT_401})")
    assert describe(CNI, NODE, result(State.UNAUTHORIZED, 403)).endswith(f"({HINT_403})")
    untrusted = result(State.METRICS_FAILING, 0, "GET /metrics: certificate not trusted: x")
    assert describe(CNI, NODE, untrusted).endswith(f"({HINT_CERTIFICATE})")
    assert "insecure_skip_verify" in HINT_CERTIFICATE
    assert describe(CNI, "fd00::5", result(State.DEAD)).startswith("kube-ovn-cni [fd00::5]:10665")


def test_detail_names_every_state() -> None:
    out = OvnCheck.output()
    for component, port, state in (
        ("kube-ovn-cni", "10665", State.DEAD),
        ("kube-ovn-controller", "10660", State.SERVING),
        ("kube-ovn-monitor", "10661", State.ABSENT),
    ):
        for s in State:
            out.add(OVN_STATE, s is state, component=component, port=port, state=s.value)
    out.note("kube-ovn-cni 10.1.0.5:10665: dead: nothing listens on port 10665", Req.OVN_ENDPOINTS)
    detail = OvnCheck.detail(Req.OVN_ENDPOINTS, out.build(), Outcome.FAIL)
    assert detail == (
        "kube-ovn-cni 10.1.0.5:10665: dead: nothing listens on port 10665; "
        "kube-ovn-controller :10660 alive, serves metrics; "
        "kube-ovn-monitor :10661 not on this node"
    )


def facts(checksum: float, start: str, end: str, bridge: float) -> Scan:
    return Scan(
        samples=3,
        kept={
            "checksum_err_count": [Kept({"hostname": "n1"}, checksum)],
            "ip_local_port_range": [Kept({"hostname": "n1", "start": start, "end": end}, 1)],
            "bridge_nf_call_iptables": [Kept({"hostname": "n1"}, bridge)],
        },
    )


def fact_output(scan: Scan) -> tuple[dict[str, float], list[str]]:
    out = OvnCheck.output()
    OvnCheck._facts(OvnCheck.__new__(OvnCheck), out, scan)
    built = out.build()
    return {name: v for (name, _), v in values(built).items()}, [n.text for n in built.notes]


def test_healthy_node_facts_are_quiet() -> None:
    got, notes = fact_output(facts(0, "32768", "60999", 1))
    assert got == {
        "kubev_ovn_checksum_errors": 0,
        "kubev_ovn_local_port_range_overlaps_nodeport": 0,
        "kubev_ovn_bridge_nf_call_iptables": 1,
    }
    assert notes == []


def test_troubled_node_facts_say_what_to_do() -> None:
    got, notes = fact_output(facts(7, "30000", "60999", 0))
    assert got == {
        "kubev_ovn_checksum_errors": 7,
        "kubev_ovn_local_port_range_overlaps_nodeport": 1,
        "kubev_ovn_bridge_nf_call_iptables": 0,
    }
    assert len(notes) == 3
    assert notes[0].startswith("kube-ovn-cni reports 7 UDP checksum errors since boot")
    assert notes[1].startswith(
        f"net.ipv4.ip_local_port_range 30000-60999 overlaps the NodePort range "
        f"{NODEPORT.first}-{NODEPORT.last}"
    )
    assert notes[2].startswith("net.bridge.bridge-nf-call-iptables is 0")


def test_a_fact_missing_or_odd_is_skipped() -> None:
    """bridge_nf_call_iptables is absent without br_netfilter; odd labels are named."""
    scan = Scan(samples=1, kept={"ip_local_port_range": [Kept({"start": "x"}, 1)]})
    got, notes = fact_output(scan)
    assert got == {}
    assert notes == ["kube-ovn-cni's ip_local_port_range has no numeric start and end labels"]
