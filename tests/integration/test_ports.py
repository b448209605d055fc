"""The ports check against real listeners on a node address inside a network namespace."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers import (
    background,
    check_config,
    ip,
    network_namespace,
    only,
    running,
    samples,
    value,
    veth_pair,
)

NODE = "10.213.0.1"
ONLY_PORTS = only("ports")
#: one run of the check, with room for a busy machine; a listener answers a connect at
#: once, and no other port here leaves one unanswered (a refusal is immediate too), so a
#: long connect timeout only leaves room
ONE_RUN = "    interval: 1h\n    timeout: 1m\n    connect_timeout: 10s\n"


def listeners(ns: str | None, specs: Sequence[str]) -> contextlib.AbstractContextManager[None]:
    return background(["tests.listeners", *specs], ns)


def node_namespace(ns: str, geneve: bool = True) -> None:
    """A node: kva holds NODE and the default route, like a real node's NIC; with the
    device OVS makes for a Geneve tunnel to another node. This kernel has no geneve module:
    a VXLAN device of that name on 6081 stands in (the same kind of kernel UDP tunnel; left
    down, so the test's own listener holds 6081/udp)."""
    veth_pair(ns, f"{NODE}/24")
    ip(ns, "route", "add", "default", "via", "10.213.0.254", "dev", "kva")
    if geneve:
        ip(ns, "link", "add", "genev_sys_6081", "type", "vxlan", "id", "1", "dstport", "6081")


@pytest.mark.root
def test_listeners_on_the_node_address(tmp_path: Path) -> None:
    with network_namespace() as ns:
        node_namespace(ns)
        specs = [
            f"tcp:{NODE}:6443",
            "tcp6:[::]:10250",
            "udp:0.0.0.0:6081",
            "udp6:[::]:6081",
            f"tcp:{NODE}:30080",
            "tcp:127.0.0.1:10256",
        ]
        with (
            listeners(ns, specs),
            running(
                [check_config(tmp_path, "ports", ONE_RUN), *ONLY_PORTS],
                netns=ns,
                env={"NODE_IP": ""},
            ) as exporter,
        ):
            text = exporter.metrics()
    assert value(text, "kubev_node_address_info", address=NODE, source="default-route") == 1

    def port(metric: str, component: str, number: int, protocol: str = "tcp") -> float | None:
        return value(text, metric, component=component, port=str(number), protocol=protocol)

    # TCP v4 on the node address, TCP v6 dual-stack wildcard: both answer a connect
    assert port("kubev_port_up", "kube-apiserver", 6443) == 1
    assert port("kubev_port_listening", "kube-apiserver", 6443) == 1
    assert port("kubev_port_up", "kubelet", 10250) == 1
    assert (
        value(text, "kubev_port_connect_duration_seconds", component="kubelet", port="10250")
        is not None
    )
    # listening on 127.0.0.1 only: the kernel sees it, the node address does not answer
    assert port("kubev_port_listening", "kube-proxy", 10256) == 1
    assert port("kubev_port_up", "kube-proxy", 10256) == 0
    # nothing there
    assert port("kubev_port_up", "etcd", 2379) == 0
    assert port("kubev_port_listening", "etcd", 2379) == 0
    # UDP is seen through sock_diag only
    assert port("kubev_port_up", "geneve", 6081, "udp") == 1
    assert port("kubev_port_listening", "geneve", 6081, "udp") == 1
    assert value(text, "kubev_nodeport_listening_sockets", protocol="tcp") == 1
    assert value(text, "kubev_nodeport_listening_sockets", protocol="udp") == 0
    # expectations of a single node: etcd required; live migration and virt-api live in
    # pod networks, where the node address cannot see them: not probed
    assert port("kubev_port_expected", "etcd", 2379) == 1
    assert port("kubev_port_expected", "live-migration", 61003) is None
    assert port("kubev_port_expected", "kubevirt-api", 8443) is None
    # kube-proxy on 127.0.0.1 only: other nodes (and load balancers) cannot reach it
    assert port("kubev_port_unreachable_bind", "kube-proxy", 10256) == 1
    assert port("kubev_port_unreachable_bind", "kubelet", 10250) == 0
    assert value(text, "kubev_requirement_met", requirement="ports", level="minimum") == 0
    assert "etcd 2379/tcp is down on 10.213.0.1: ECONNREFUSED" in exporter.stderr


@pytest.mark.root
def test_worker_role_and_overrides(tmp_path: Path) -> None:
    with network_namespace() as ns:
        node_namespace(ns)
        specs = [f"tcp:{NODE}:{p}" for p in (10250, 10256, 10665)] + ["udp:0.0.0.0:6081"]
        body = ONE_RUN + (
            "    expectations: {kube-ovn-cni: optional}\n"
            "    extra: [{component: node-agent, port: 9999, expectation: optional}]\n"
        )
        with (
            listeners(ns, specs),
            running(
                [check_config(tmp_path, "ports", body), "--role=worker", *ONLY_PORTS],
                netns=ns,
                env={"NODE_IP": ""},
            ) as exporter,
        ):
            text = exporter.metrics()
    assert (
        value(text, "kubev_port_up", component="kube-apiserver", port="6443", protocol="tcp")
        is None
    )  # not a worker's port
    assert (
        value(text, "kubev_port_expected", component="kube-ovn-cni", port="10665", protocol="tcp")
        == 0
    )
    assert value(text, "kubev_port_up", component="node-agent", port="9999", protocol="tcp") == 0
    assert value(text, "kubev_requirement_met", requirement="ports", level="minimum") == 1


@pytest.mark.root
def test_filtered_address_hits_the_connect_timeout(tmp_path: Path) -> None:
    """10.213.0.9 is on the link but nobody answers: every SYN goes unanswered."""
    with network_namespace() as ns:
        node_namespace(ns)
        # every SYN goes unanswered: each connect waits its whole 0.3 s
        body = "    connect_timeout: 300ms\n    interval: 1h\n    timeout: 1m\n"
        with running(
            [check_config(tmp_path, "ports", body), *ONLY_PORTS],
            netns=ns,
            env={"NODE_IP": "10.213.0.9"},
        ) as exporter:
            text = exporter.metrics()
    assert value(text, "kubev_check_success", check="ports") == 1
    assert value(text, "kubev_port_up", component="kubelet", port="10250", protocol="tcp") == 0
    assert "kubelet 10250/tcp is down on 10.213.0.9: no answer within 0.3s" in exporter.stderr


@pytest.mark.root
def test_a_thousand_ports_on_loopback(tmp_path: Path) -> None:
    """A thousand listeners on the loopback of a namespace of the test's own (the host's
    loopback ports may be held by anything else running on the machine)."""
    specs = [f"tcp:127.0.0.1:{p}" for p in range(21000, 22000)]
    body = ONE_RUN + (
        "    extra: [{component: bulk, port: 21000-21999}]\n"
        "    expectations: {"
        + ", ".join(
            f"{c}: absent"
            for c in (
                "kube-apiserver",
                "etcd",
                "kubelet",
                "kube-scheduler",
                "kube-controller-manager",
                "kube-proxy",
                "ovn-nb",
                "ovn-sb",
                "ovn-nb-raft",
                "ovn-sb-raft",
                "kube-ovn-cni",
                "geneve",
            )
        )
        + "}\n"
    )
    with (
        network_namespace() as ns,
        listeners(ns, specs),
        running([check_config(tmp_path, "ports", body), *ONLY_PORTS], netns=ns) as exporter,
    ):
        text = exporter.metrics()
    got = samples(text)
    ups = [
        got[("kubev_port_up", (("component", "bulk"), ("port", str(p)), ("protocol", "tcp")))]
        for p in range(21000, 22000)
    ]
    assert ups == [1.0] * 1000
    assert value(text, "kubev_requirement_met", requirement="ports", level="minimum") == 1
