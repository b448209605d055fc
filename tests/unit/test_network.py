"""The network check over sysfs fixture trees (netlink is tested in a real namespace)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter import fsread
from exporter.checks import network
from exporter.config import Config
from exporter.exposition import Exposition, Identity
from exporter.runtime import Runtime
from exporter.settings import NameFilter
from exporter.spec import MBPS, Profile, Role
from tests.checkrun import make, observed, run, values
from tests.helpers import NodeTree, make_node_tree, samples


def test_physical_links_only_and_never_a_negative_speed(node_tree: NodeTree) -> None:
    out = run(make("network", node_tree("compliant", kvm_device=False)))
    v = values(out)
    assert {k[1][0] for k in v if k[0].startswith("kubev_network_")} == {
        "eno1",
        "eno2",
    }  # lo and the veth are not physical
    assert v[("kubev_network_speed_bytes", ("eno1",))] == 10_000 * MBPS
    assert ("kubev_network_speed_bytes", ("eno2",)) not in v  # sysfs says -1
    assert all(value >= 0 for value in v.values())
    assert v[("kubev_network_up", ("eno1",))] == 1
    assert v[("kubev_network_up", ("eno2",))] == 0
    assert v[("kubev_network_full_duplex", ("eno1",))] == 1
    assert ("kubev_network_full_duplex", ("eno2",)) not in v  # duplex unknown
    assert v[("kubev_network_mtu_bytes", ("eno1",))] == 9000
    assert v[("kubev_network_carrier_changes_total", ("eno1",))] == 3
    assert "eno2: no speed sample: speed is unknown (-1)" in [n.text for n in out.notes]
    assert observed(out) == {"nic_speed": 10_000 * MBPS}


def test_virtual_links_when_asked(node_tree: NodeTree) -> None:
    cfg = Config().with_check(
        "network", interfaces=NameFilter(include="^veth"), physical_only=False
    )
    v = values(run(make("network", node_tree("compliant", kvm_device=False), cfg)))
    assert {k[1][0] for k in v if k[0].startswith("kubev_network_")} == {"veth1a2b3c"}


def test_slow_nic(node_tree: NodeTree) -> None:
    out = run(make("network", node_tree("undersized")))
    assert values(out)[("kubev_network_speed_bytes", ("eth0",))] == 100 * MBPS
    assert observed(out) == {"nic_speed": 100 * MBPS}


def test_garbage_speed(node_tree: NodeTree) -> None:
    out = run(make("network", node_tree("broken")))
    assert ("kubev_network_speed_bytes", ("eth0",)) not in values(out)
    assert "eth0: no speed sample: speed is not a number: 'fast'" in [n.text for n in out.notes]
    assert observed(out) == {"nic_speed": None}


def test_down_link_does_not_count_for_the_verdict(node_tree: NodeTree) -> None:
    tree = node_tree("compliant", kvm_device=False)
    (tree / "sys" / "class" / "net" / "eno1" / "operstate").write_text("down\n")
    assert observed(run(make("network", tree))) == {"nic_speed": None}


def test_auto_source_follows_the_sysfs_path(tmp_path: Path) -> None:
    on_host, on_tree = make("network"), make("network", tmp_path)
    assert isinstance(on_host, network.NetworkCheck) and isinstance(on_tree, network.NetworkCheck)
    assert on_host.source() == "netlink"
    assert on_tree.source() == "sysfs"


def test_cardinality_cap_counts_what_it_drops(node_tree: NodeTree) -> None:
    cfg = Config().with_check("network", max_items=1)
    out = run(make("network", node_tree("compliant", kvm_device=False), cfg))
    v = values(out)
    assert {k[1][0] for k in v if k[0].startswith("kubev_network_")} == {"eno1"}
    assert v[("kubev_check_items_dropped", ("network", "interfaces"))] == 1
    assert any("exceed the cap of 1: 1 dropped" in n for n in [n.text for n in out.notes])


def test_label_values_with_quotes_and_backslashes_survive(node_tree: NodeTree) -> None:
    """Interface names are data from the node: the exposition must escape them."""
    tree = node_tree("compliant", kvm_device=False)
    weird = 'we"ird\\name'  # sysfs names can hold quotes and backslashes, not / or newlines
    (tree / "sys" / "class" / "net" / "eno1").rename(tree / "sys" / "class" / "net" / weird)
    cfg = Config()
    runtime = Runtime(cfg, [make("network", tree, cfg)])
    asyncio.run(runtime.run_once(runtime.checks[0]))
    body, _ = Exposition(Identity("n", Role.WORKER, Profile.TESTING)).render(
        runtime.snapshot, "", gzipped=False
    )
    assert samples(body.decode())[("kubev_network_up", (("interface", weird),))] == 1
    # promtool's verdict on such a body: tests/integration/test_golden.py


def test_attributes_read_only_for_reported_links(
    node_tree: NodeTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Kubernetes deployment reads the host's /sys: a node's pod and VM veths must not
    cost an attribute read each (the reads still happen, through a spy)."""
    read: list[str] = []
    real_errno, real_optional = fsread.read_attr_errno, fsread.read_optional

    def spy_errno(path: Path, limit: int = 4096) -> tuple[str | None, str | None]:
        read.append(path.parent.name)
        return real_errno(path, limit)

    def spy_optional(path: Path, limit: int = 4096) -> str | None:
        read.append(path.parent.name)
        return real_optional(path, limit)

    monkeypatch.setattr(network, "read_attr_errno", spy_errno)
    monkeypatch.setattr(network, "read_optional", spy_optional)
    out = run(make("network", node_tree("compliant", kvm_device=False)))
    assert values(out)[("kubev_network_speed_bytes", ("eno1",))] == 10_000 * MBPS
    assert set(read) == {"eno1", "eno2"}  # not lo, not the veth


def test_bonds_bridge_ports_and_a_down_link_of_a_real_node(tmp_path: Path) -> None:
    out = run(make("network", make_node_tree("realistic", tmp_path, kvm_device=False)))
    v = values(out)
    assert {k[1][0] for k in v if k[0] == "kubev_network_up"} == {
        "bond0",  # a bond counts as physical: it aggregates NICs
        "eno1",
        "eno2",
        "eno3",  # a bridge port is a NIC like any other
        "enp65s0f0",
    }  # br0 and the veth are not physical; bonding_masters is no link
    assert v[("kubev_network_speed_bytes", ("bond0",))] == 20_000 * MBPS
    assert v[("kubev_network_speed_bytes", ("eno3",))] == 1_000 * MBPS
    assert v[("kubev_network_up", ("enp65s0f0",))] == 0
    assert ("kubev_network_speed_bytes", ("enp65s0f0",)) not in v  # an empty speed file
    assert ("kubev_network_full_duplex", ("enp65s0f0",)) not in v  # an empty duplex file
    assert "enp65s0f0: no speed sample: speed is empty (a down link, or one that reports none)" in [
        n.text for n in out.notes
    ]
    assert observed(out) == {"nic_speed": 20_000 * MBPS}


def test_bonding_masters_is_not_an_interface(tmp_path: Path) -> None:
    """With physical_only off every entry of class/net is a candidate, and the bonding
    driver's control file is one: it is skipped, with a note saying why."""
    tree = make_node_tree("realistic", tmp_path, kvm_device=False)
    cfg = Config().with_check("network", physical_only=False, interfaces=NameFilter())
    out = run(make("network", tree, cfg))
    names = {k[1][0] for k in values(out) if k[0] == "kubev_network_up"}
    assert "bonding_masters" not in names
    assert {"br0", "lo", "veth5d6e7f", "bond0"} <= names
    masters = tree / "sys" / "class" / "net" / "bonding_masters"
    assert (
        f"{masters}: not a directory, so not an interface (bonding_masters is the bonding "
        "driver's control file): skipped" in [n.text for n in out.notes]
    )


def test_an_interface_name_that_is_not_utf8_costs_nothing_else(tmp_path: Path) -> None:
    """sysfs path: the name is escaped in its label, the other links report, the exposition
    is valid (it used to fail every scrape with a 500). The netlink path and the real
    process are tested in a namespace (tests/integration/test_odd_names.py)."""
    tree = make_node_tree("compliant", tmp_path, kvm_device=False)
    net = tree / "sys" / "class" / "net"
    odd = os.fsdecode(b"kv\xff0")
    shutil.copytree(net / "eno1", net / odd)
    (net / odd / "mtu").write_text("1442\n")
    cfg = Config()
    check = make("network", tree, cfg)
    out = run(check)
    v = values(out)
    assert v[("kubev_network_speed_bytes", ("kv\\xff0",))] == 10_000 * MBPS
    assert v[("kubev_network_mtu_bytes", ("kv\\xff0",))] == 1442
    assert v[("kubev_network_up", ("eno1",))] == 1
    assert (
        "interface kv\\xff0: the name is not UTF-8; its label writes each byte that is not "
        "as \\xNN" in [n.text for n in out.notes]
    )
    # a name that reads like the escaped one: of the two, the later (sorted) is left out
    shutil.copytree(net / "eno1", net / "kv\\xff0")
    out = run(make("network", tree, cfg))
    assert values(out)[("kubev_network_mtu_bytes", ("kv\\xff0",))] == 9000  # eno1's copy
    assert "interface kv\\xff0: another interface has this label: left out" in [
        n.text for n in out.notes
    ]
    shutil.rmtree(net / "kv\\xff0")
    runtime = Runtime(cfg, [check])
    asyncio.run(runtime.run_once(check))
    body, _ = Exposition(Identity("n", Role.WORKER, Profile.TESTING)).render(
        runtime.snapshot, "", gzipped=False
    )
    assert samples(body.decode())[("kubev_network_up", (("interface", "kv\\xff0"),))] == 1
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
