"""The peers check's parts that need no network: peer lists, settings, the identity
document, ICMP error decoding, the rotation's coverage."""

from __future__ import annotations

import json
import math
import socket
import struct
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.checks.peerid import (
    IdentityDocument,
    IdentityError,
    PeerIdentity,
    Served,
    decode,
    every_node,
    of_snapshot,
    role_serves,
)
from exporter.checks.peerlist import PeerFile, PeerSpec, parse_file_text, parse_peer_list
from exporter.checks.peerprobe import (
    IP_RECVERR,
    IPV6_RECVERR,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    Result,
    State,
    Target,
    icmp_error,
    judge_icmp,
)
from exporter.checks.peers import PeersCheck, PeersSettings, one_shot
from exporter.checks.peerschedule import Pair, Rotation
from exporter.checks.ports import PortsSettings
from exporter.config import Config, from_mapping
from exporter.model import CheckError
from exporter.paths import Paths
from exporter.runtime import CheckState, Snapshot
from exporter.settings import ConfigError
from exporter.spec import Req, Role
from tests.checkrun import make, run
from tests.hostile import laughs

# --- peer lists ---------------------------------------------------------------------------


def test_peer_syntax() -> None:
    assert parse_peer_list("10.0.0.2=control-plane+ovn-central, 10.0.0.3,fd00::4=worker", "x") == (
        PeerSpec("10.0.0.2", Role.CONTROL_PLANE, True),
        PeerSpec("10.0.0.3"),
        PeerSpec("fd00::4", Role.WORKER),
    )
    with pytest.raises(ConfigError, match=r"--peers\[1\]: unknown role 'master'"):
        parse_peer_list("10.0.0.2,10.0.0.3=master", "--peers")
    with pytest.raises(ConfigError, match=r"--peers\[0\]: 'node-a' is not an IP address"):
        parse_peer_list("node-a", "--peers")
    with pytest.raises(ConfigError, match="no peers given"):
        parse_peer_list(" , ", "--peers")


def test_file_sd_and_plain_lines() -> None:
    file_sd = json.dumps(
        [
            {"targets": ["10.0.0.2:19200", "[fd00::2]:19300"], "labels": {"role": "worker"}},
            {"targets": ["10.0.0.1"], "labels": {"role": "control-plane", "ovn_central": "true"}},
        ]
    )
    assert parse_file_text(file_sd, "f", 100) == [
        PeerSpec("10.0.0.2", Role.WORKER, False, 19200),
        PeerSpec("fd00::2", Role.WORKER, False, 19300),
        PeerSpec("10.0.0.1", Role.CONTROL_PLANE, True),
    ]
    lines = "# the cluster\n10.0.0.1=control-plane\n10.0.0.2 10.0.0.3  # two workers\n"
    assert [p.address for p in parse_file_text(lines, "f", 100)] == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
    ]
    assert (
        len(parse_file_text("\n".join(f"10.1.{i // 250}.{i % 250}" for i in range(50)), "f", 9))
        == 10
    )
    with pytest.raises(ConfigError, match=r"f\[0\]: must be a mapping with a list of targets"):
        parse_file_text('[{"labels": {}}]', "f", 10)
    with pytest.raises(ConfigError, match=r"f:2: 'nope' is not an IP address"):
        parse_file_text("10.0.0.1\nnope\n", "f", 10)


def test_a_peer_file_larger_than_a_config_file_is_read_whole() -> None:
    """A peer list is held to bounds of its own, not a config file's (10,000 values): 1,200
    peers, each in a target group of its own with two labels, are 12,000 values."""
    groups = [
        {"targets": [f"10.2.{i // 250}.{i % 250 + 1}"], "labels": {"role": "worker", "x": "y"}}
        for i in range(1200)
    ]
    assert len(parse_file_text(json.dumps(groups), "f", 5000)) == 1200


def test_a_peer_file_of_aliases_is_not_expanded() -> None:
    """A billion laughs is no YAML a peer list may be; read as lines, it names the file."""
    with pytest.raises(ConfigError, match=r"f:1: 'l0:' is not an IP address"):
        parse_file_text(laughs(9), "f", 5000)


def test_peer_file_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "peers"
    path.write_text("10.0.0.1\n")
    peers = PeerFile(path, 100)
    first, problem = peers.read()
    assert [p.address for p in first] == ["10.0.0.1"] and problem is None
    assert peers.read()[0] is first  # unchanged: not parsed again
    path.write_text("10.0.0.1\n10.0.0.2\n")
    assert [p.address for p in peers.read()[0]] == ["10.0.0.1", "10.0.0.2"]
    path.write_text("10.0.0.1\nbroken\n")
    kept, problem = peers.read()
    assert [p.address for p in kept] == ["10.0.0.1", "10.0.0.2"]
    assert problem is not None and "keeping the last good list" in problem
    with pytest.raises(CheckError, match="No such file"):
        PeerFile(tmp_path / "missing", 10).read()


# --- settings -----------------------------------------------------------------------------


def test_configured_peers_switch_the_check_on() -> None:
    assert not Config().check("peers").enabled
    cfg = from_mapping({"checks": {"peers": {"static": ["10.0.0.2=worker"]}}})
    settings = cfg.settings(PeersSettings)
    assert settings.enabled and settings.static == (PeerSpec("10.0.0.2", Role.WORKER),)
    off = from_mapping(
        {"checks": {"peers": {"dns_name": "kubev.monitoring.svc", "enabled": False}}}
    )
    assert not off.check("peers").enabled


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"probe_timeout": "20s"}, "checks.peers.probe_timeout: must be shorter than the timeout"),
        ({"skip": ["kube-scheduler"]}, r"checks.peers.skip\[0\]: 'kube-scheduler' is not a port"),
        ({"static": ["10.0.0.2=boss"]}, r"checks.peers.static\[0\]: unknown role 'boss'"),
        ({"identity": {"port": 0}}, "checks.peers.identity.port: must be a port"),
        ({"file": "peers.txt"}, "checks.peers.file: must be an absolute path"),
    ],
)
def test_bad_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping({"checks": {"peers": section}})


def test_one_check_run_probes_every_pair() -> None:
    cfg = one_shot(from_mapping({"checks": {"peers": {"static": ["10.0.0.2"]}}}))
    settings = cfg.settings(PeersSettings)
    assert settings.probes_per_cycle >= 10**6 and settings.timeout >= 300
    assert one_shot(Config()) == Config()  # the check is off: nothing changes


# --- what a peer serves -------------------------------------------------------------------


def keys(served: tuple[Served, ...]) -> set[tuple[str, int, str]]:
    return {s.key for s in served}


def test_what_roles_and_every_node_serve() -> None:
    every = keys(every_node(geneve=True))
    assert every == {
        ("kubelet", 10250, "tcp"),
        ("kube-proxy", 10256, "tcp"),
        ("kube-ovn-cni", 10665, "tcp"),
        ("geneve", 6081, "udp"),
    }
    assert ("geneve", 6081, "udp") not in keys(every_node(geneve=False))
    cp = keys(role_serves(Role.CONTROL_PLANE, ovn_central=False, ovn_raft=False, geneve=True))
    assert every < cp and {("kube-apiserver", 6443, "tcp"), ("etcd", 2380, "tcp")} <= cp
    # loopback-only and pod-network ports are never asked of a peer
    assert not {c for c, _, _ in cp} & {"kube-scheduler", "live-migration", "kubevirt-api"}
    central = keys(role_serves(Role.CONTROL_PLANE, ovn_central=True, ovn_raft=True, geneve=True))
    assert central - cp == {("ovn-nb", 6641, "tcp"), ("ovn-sb", 6642, "tcp")} | {
        ("ovn-nb-raft", 6643, "tcp"),
        ("ovn-sb-raft", 6644, "tcp"),
    }


# --- the identity document ----------------------------------------------------------------

GOOD = PeerIdentity(
    "w1",
    Role.WORKER,
    "10.0.0.2",
    (Served("kubelet", 10250, "tcp", True), Served("geneve", 6081, "udp", False)),
    "ports-check",
)


def test_identity_round_trip_and_unknown_components() -> None:
    assert decode(GOOD.encode()) == GOOD
    newer = json.loads(GOOD.encode())
    newer["serves"].append({"component": "from-the-future", "port": 1, "protocol": "tcp"})
    newer["extra"] = "ignored"
    assert decode(json.dumps(newer).encode()) == GOOD


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Welcome to nginx!</html>", "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),  # nesting bounded by the decoder
        (b'"a string"', "not a JSON object"),
        (b'{"kind": "other", "version": 1}', "not a kubev-node-exporter/identity"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_garbage_is_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        decode(body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "boss"}, "role: unknown role"),
        ({"node": "x" * 300}, "node: not a string"),
        ({"serves": [{"component": "kubelet", "port": 22, "protocol": "tcp"}]}, "no port 22"),
        ({"serves": [{"component": "kubelet", "port": True, "protocol": "tcp"}]}, "no port True"),
        ({"serves": [{"component": "geneve", "port": 6081, "protocol": "tcp"}]}, "no port"),
        ({"serves": [{}] * 65}, "at most 64"),
        (
            {
                "serves": [
                    {"component": "kubelet", "port": 10250, "protocol": "tcp", "listening": 1}
                ]
            },
            "listening: not true",
        ),
    ],
)
def test_a_wrong_field_is_refused(change: dict[str, object], message: str) -> None:
    document = {**json.loads(GOOD.encode()), **change}
    with pytest.raises(IdentityError, match=message):
        decode(json.dumps(document).encode())


def snapshot_with(output: object | None) -> Snapshot:
    state = CheckState("ports", output=output)  # type: ignore[arg-type]
    return Snapshot(1, MappingProxyType({"ports": state}), (), 0.0)


def test_identity_from_the_ports_check_and_from_the_role(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.checks.ports import (
        NODE_ADDRESS_INFO,
        PORT_EXPECTED,
        PORT_LISTENING,
        PortsCheck,
    )

    monkeypatch.setenv("NODE_IP", "10.0.0.9")
    cfg = Config(role=Role.CONTROL_PLANE, node_name="cp1")
    out = PortsCheck.output()
    out.add(NODE_ADDRESS_INFO, 1, address="10.0.0.1", source="env")
    for component, port, proto, listening in (
        ("kube-apiserver", "6443", "tcp", 1),
        ("ovn-sb", "6642", "tcp", 1),
        ("geneve", "6081", "udp", 0),
        ("kube-scheduler", "10259", "tcp", 1),  # loopback only: not for peers
    ):
        out.add(PORT_EXPECTED, 1, component=component, port=port, protocol=proto)
        out.add(PORT_LISTENING, listening, component=component, port=port, protocol=proto)
    out.add(PORT_EXPECTED, 0, component="kube-ovn-controller", port="10660", protocol="tcp")
    identity = of_snapshot(snapshot_with(out.build()), cfg)
    assert identity.source == "ports-check" and identity.address == "10.0.0.1"
    assert identity.serves == (
        Served("kube-apiserver", 6443, "tcp", True),
        Served("ovn-sb", 6642, "tcp", True),
        Served("geneve", 6081, "udp", False),
    )
    by_role = of_snapshot(snapshot_with(None), cfg)
    assert by_role.source == "role" and by_role.address == "10.0.0.9"
    assert ("ovn-nb", 6641, "tcp") not in keys(by_role.serves)  # auto: only the ports check knows
    clustered = cfg.with_check("ports", ovn_central="clustered")
    assert ("ovn-nb", 6641, "tcp") in keys(of_snapshot(snapshot_with(None), clustered).serves)
    skipped = cfg.with_check("ports", expectations={"etcd": "optional"})
    assert "etcd" not in {s.component for s in of_snapshot(snapshot_with(None), skipped).serves}
    assert cfg.settings(PortsSettings).tunnel == "auto"

    document = IdentityDocument(cfg)
    document.update(snapshot_with(None))
    assert decode(document.body).source == "role"


# --- ICMP errors from the socket error queue ---------------------------------------------


def extended_err(origin: int, icmp_type: int, code: int, offender: bytes) -> bytes:
    """struct sock_extended_err and the offender's sockaddr, as the kernel queues them."""
    return struct.pack("=IBBBBII", 113, origin, icmp_type, code, 0, 0, 0) + offender


def sockaddr_in(address: str) -> bytes:
    return struct.pack("<HH", socket.AF_INET, 0) + socket.inet_aton(address) + bytes(8)


def sockaddr_in6(address: str) -> bytes:
    packed = socket.inet_pton(socket.AF_INET6, address)
    return struct.pack("<HHI", socket.AF_INET6, 0, 0) + packed + bytes(4)


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "kind"),
    [
        (SO_EE_ORIGIN_ICMP, 3, 3, "port-unreachable"),
        (SO_EE_ORIGIN_ICMP, 3, 13, "prohibited"),
        (SO_EE_ORIGIN_ICMP, 3, 10, "prohibited"),
        (SO_EE_ORIGIN_ICMP, 3, 1, "unreachable"),
        (SO_EE_ORIGIN_ICMP, 11, 0, "unreachable"),
        (SO_EE_ORIGIN_ICMP6, 1, 1, "prohibited"),
        (SO_EE_ORIGIN_ICMP6, 1, 4, "port-unreachable"),
        (SO_EE_ORIGIN_ICMP6, 1, 3, "unreachable"),
    ],
)
def test_icmp_kinds(origin: int, icmp_type: int, code: int, kind: str) -> None:
    v6 = origin == SO_EE_ORIGIN_ICMP6
    offender = sockaddr_in6("fd00::2") if v6 else sockaddr_in("10.0.0.2")
    level, option = (socket.IPPROTO_IPV6, IPV6_RECVERR) if v6 else (socket.IPPROTO_IP, IP_RECVERR)
    found = icmp_error(level, option, extended_err(origin, icmp_type, code, offender))
    assert found is not None and found.kind == kind
    assert found.by == ("fd00::2" if v6 else "10.0.0.2")


def test_what_is_not_an_icmp_error() -> None:
    assert icmp_error(socket.IPPROTO_IP, IP_RECVERR, b"\0" * 4) is None
    assert icmp_error(socket.IPPROTO_IP, 99, extended_err(2, 3, 3, b"")) is None
    local = extended_err(1, 0, 0, sockaddr_in("10.0.0.1"))  # SO_EE_ORIGIN_LOCAL
    assert icmp_error(socket.IPPROTO_IP, IP_RECVERR, local) is None


def test_who_rejected() -> None:
    found = icmp_error(
        socket.IPPROTO_IP, IP_RECVERR, extended_err(2, 3, 3, sockaddr_in("10.0.0.1"))
    )
    assert found is not None
    tcp = judge_icmp(found, Target("10.0.0.2", 2379, "tcp"), "10.0.0.1", 0.001)
    assert tcp.state is State.FILTERED and tcp.how == "rejected by this node"
    udp = judge_icmp(found, Target("10.0.0.1", 6081, "udp"), "10.0.0.5", 0.001)
    assert udp.state is State.RESET and udp.how == "nothing listens"


# --- the rotation -------------------------------------------------------------------------


def pairs_of(peers: int) -> list[Pair]:
    ports = (("kubelet", 10250, "tcp"), ("kube-proxy", 10256, "tcp"), ("geneve", 6081, "udp"))
    return [Pair(f"10.1.{i // 250}.{i % 250}", *port) for i in range(peers) for port in ports]


OPEN = Result(State.OPEN, "open: connected")
DROPPED = Result(State.FILTERED, "dropped: no answer within 1s", silent=True)


@pytest.mark.parametrize(("peers", "budget"), [(10, 256), (100, 64), (1000, 256), (7, 5)])
def test_every_pair_is_probed_within_a_full_round(peers: int, budget: int) -> None:
    rotation = Rotation("10.0.0.1")
    pairs = pairs_of(peers)
    cycles = rotation.full_round_cycles(len(pairs), budget)
    assert cycles == max(1, math.ceil(len(pairs) / budget))
    seen: set[Pair] = set()
    for cycle in range(cycles):
        chosen = rotation.plan(pairs, budget)
        assert len(chosen) <= budget
        for pair in chosen:
            rotation.record(pair, OPEN, float(cycle))
        rotation.advance(chosen)
        seen.update(chosen)
    assert seen == set(pairs)


def test_failing_pairs_come_first_and_a_late_peer_waits_one_round_at_most() -> None:
    rotation = Rotation("10.0.0.1")
    pairs = pairs_of(100)
    budget = 30
    failing = {p for p in pairs if p.peer == "10.1.0.3"}
    for pair in failing:
        rotation.record(pair, DROPPED, 0.0)
    for _ in range(5):
        again = rotation.plan(pairs, budget)
        assert set(again[: len(failing)]) == failing  # re-probed first, every cycle
        for pair in again:
            rotation.record(pair, DROPPED if pair in failing else OPEN, 1.0)
        rotation.advance(again)
    newcomer = Pair("10.9.9.9", "kubelet", 10250, "tcp")
    more = [*pairs, newcomer]
    planned: list[Pair] = []
    for _ in range(rotation.full_round_cycles(len(more), budget) + 1):
        chosen = rotation.plan(more, budget)
        rotation.advance(chosen)
        planned.extend(chosen)
    assert newcomer in planned


def test_probes_cut_by_the_deadline_come_first_next_cycle() -> None:
    rotation = Rotation("10.0.0.1")
    pairs = pairs_of(50)
    first = rotation.plan(pairs, 40)
    rotation.advance(first[:10])  # only ten were probed
    assert rotation.plan(pairs, 40)[:30] == first[10:40]


def test_each_node_has_its_own_order() -> None:
    pairs = pairs_of(50)
    assert Rotation("10.0.0.1").plan(pairs, 20) != Rotation("10.0.0.2").plan(pairs, 20)
    rotation = Rotation("10.0.0.1")
    rotation.plan(pairs, 20)
    for pair in pairs:
        rotation.record(pair, OPEN, 0.0)
    rotation.forget_others(pairs[:30])
    assert set(rotation.records) == set(pairs[:30])


# --- the check without peers or with a broken source --------------------------------------


def test_no_peers_is_unknown_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_IP", "10.0.0.1")
    cfg = from_mapping({"node_address": "10.0.0.1", "checks": {"peers": {"static": ["10.0.0.1"]}}})
    output = run(make("peers", config=cfg))
    assert dict(output.observations) == {"peer_reachability": None}
    assert "peers: none found" in output.notes[-1].text


def test_a_missing_peer_file_is_an_error_naming_it(tmp_path: Path) -> None:
    cfg = from_mapping(
        {"node_address": "10.0.0.1", "checks": {"peers": {"file": str(tmp_path / "gone")}}}
    )
    output = run(PeersCheck(cfg, Paths()))
    assert output.errors and str(tmp_path / "gone") in output.errors[0].text
    assert dict(output.observations)[Req.PEER_REACHABILITY] is None
