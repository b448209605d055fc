"""The spec page's numbers, transcribed independently, against exporter/spec.py."""

from __future__ import annotations

from exporter.spec import (
    GIB,
    PORTS,
    Condition,
    Expectation,
    Level,
    Profile,
    Req,
    Role,
    Scope,
    requirements,
)

# The spec page's port table: (first, last, protocols).
SPEC_PORTS = {
    (6443, 6443, ("tcp",)),
    (2379, 2380, ("tcp",)),
    (10250, 10250, ("tcp",)),
    (10259, 10259, ("tcp",)),
    (10257, 10257, ("tcp",)),
    (10256, 10256, ("tcp",)),
    (30000, 32767, ("tcp", "udp")),
    (8443, 8443, ("tcp",)),
    (61000, 61009, ("tcp",)),
    (6641, 6641, ("tcp",)),
    (6642, 6642, ("tcp",)),
    (6643, 6643, ("tcp",)),
    (6644, 6644, ("tcp",)),
    (6081, 6081, ("udp",)),
    (10660, 10660, ("tcp",)),
    (10665, 10665, ("tcp",)),
    (10661, 10661, ("tcp",)),
}


def test_port_table_is_the_spec_table() -> None:
    assert {(p.first, p.last, p.protocols) for p in PORTS} == SPEC_PORTS


def test_thresholds_are_the_spec_numbers() -> None:
    testing, production = requirements(Profile.TESTING), requirements(Profile.PRODUCTION)
    assert testing[Req.CPU_CORES].thresholds == {Level.MINIMUM: 8, Level.RECOMMENDED: 16}
    assert production[Req.CPU_CORES].thresholds[Level.MINIMUM] == 16
    assert testing[Req.MEMORY].thresholds == {Level.MINIMUM: 8 * GIB, Level.RECOMMENDED: 16 * GIB}
    assert production[Req.MEMORY].thresholds == {
        Level.MINIMUM: 16 * GIB,
        Level.RECOMMENDED: 32 * GIB,
    }
    for reqs in (testing, production):
        # 1 Gb/s and 10 Gb/s in bytes per second
        assert reqs[Req.NIC_SPEED].thresholds == {
            Level.MINIMUM: 125_000_000,
            Level.RECOMMENDED: 1_250_000_000,
        }
        assert reqs[Req.KVM].thresholds[Level.MINIMUM] == 1
        assert Level.RECOMMENDED in reqs[Req.STORAGE_SOLID_STATE].thresholds
    # "must have VT-x or AMD-V": a minimum in production
    assert production[Req.VIRTUALIZATION_EXTENSIONS].thresholds[Level.MINIMUM] == 1


def test_memory_comparison_allows_for_kernel_reservation() -> None:
    memory = requirements(Profile.TESTING)[Req.MEMORY]
    installed_8gib_memtotal = 7.7 * GIB  # what MemTotal reads on a machine with 8 GiB
    assert memory.is_met(Level.MINIMUM, installed_8gib_memtotal)
    assert not memory.is_met(Level.MINIMUM, 7.0 * GIB)
    assert memory.headroom(Level.MINIMUM, 7.0 * GIB) < 0 < memory.headroom(Level.MINIMUM, 8 * GIB)


def test_latency_requirement_is_an_upper_bound() -> None:
    latency = requirements(Profile.PRODUCTION)[Req.DISK_LATENCY]
    assert latency.is_met(Level.RECOMMENDED, 0.004)
    assert not latency.is_met(Level.RECOMMENDED, 0.02)
    assert latency.is_met(Level.MINIMUM, 0.02)


def test_roles() -> None:
    by_component = {p.component: p for p in PORTS}
    # a single node carries the control plane and the worker role
    for port in PORTS:
        single = port.expectation(Role.SINGLE_NODE)
        for role in (Role.CONTROL_PLANE, Role.WORKER):
            if port.expectation(role) is Expectation.REQUIRED:
                assert single is Expectation.REQUIRED, port.component
    # in a pod's network: never probed from the node address
    assert by_component["live-migration"].scope is Scope.POD
    assert by_component["kubevirt-api"].scope is Scope.POD
    # kubeadm binds these to 127.0.0.1: probed there, and no other node needs them
    for component in ("kube-scheduler", "kube-controller-manager"):
        assert by_component[component].scope is Scope.LOOPBACK
        assert not by_component[component].remote
    for component in ("kube-apiserver", "etcd", "kubelet"):
        assert by_component[component].remote
    assert by_component["geneve"].condition is Condition.GENEVE
    assert by_component["ovn-nb-raft"].condition is Condition.OVN_RAFT
    assert by_component["ovn-nb"].condition is Condition.OVN_CENTRAL
    for row in PORTS:
        if row.real:
            assert row.source or not row.probe, row.component
    assert by_component["kube-apiserver"].expectation(Role.WORKER) is Expectation.ABSENT
    assert by_component["kube-ovn-cni"].expectation(Role.WORKER) is Expectation.REQUIRED
    assert by_component["geneve"].protocols == ("udp",)


def test_format_for_people() -> None:
    reqs = requirements(Profile.PRODUCTION)
    assert reqs[Req.MEMORY].format(16 * GIB) == "16 GiB"
    assert reqs[Req.NIC_SPEED].format(1_250_000_000) == "10 Gb/s"
    assert reqs[Req.DISK_LATENCY].format(0.0042) == "4.2 ms"
    assert reqs[Req.KVM].format(0) == "no"
