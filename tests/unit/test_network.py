"""The network check over sysfs fixture trees (netlink is tested in a real namespace)."""

from __future__ import annotations

from pathlib import Path

from exporter.config import Config, NameFilter, NetworkSettings
from exporter.spec import MBPS
from tests.helpers import node_tree
from tests.unit.checkrun import make, observed, run, values


def test_physical_links_only_and_never_a_negative_speed(tmp_path: Path) -> None:
    out = run(make("network", node_tree("compliant", tmp_path)))
    v = values(out)
    assert {k[1][0] for k in v} == {"eno1", "eno2"}  # lo and the veth are not physical
    assert v[("kubev_network_speed_bytes", ("eno1",))] == 10_000 * MBPS
    assert ("kubev_network_speed_bytes", ("eno2",)) not in v  # sysfs says -1
    assert all(value >= 0 for value in v.values())
    assert v[("kubev_network_up", ("eno1",))] == 1
    assert v[("kubev_network_up", ("eno2",))] == 0
    assert v[("kubev_network_full_duplex", ("eno1",))] == 1
    assert ("kubev_network_full_duplex", ("eno2",)) not in v  # duplex unknown
    assert v[("kubev_network_mtu_bytes", ("eno1",))] == 9000
    assert v[("kubev_network_carrier_changes_total", ("eno1",))] == 3
    assert "eno2: no speed sample: speed is unknown (-1)" in out.notes
    assert observed(out) == {"nic_speed": 10_000 * MBPS}


def test_virtual_links_when_asked(tmp_path: Path) -> None:
    cfg = Config(
        network=NetworkSettings(interfaces=NameFilter(include="^veth"), physical_only=False)
    )
    v = values(run(make("network", node_tree("compliant", tmp_path), cfg)))
    assert {k[1][0] for k in v} == {"veth1a2b3c"}


def test_slow_nic(tmp_path: Path) -> None:
    out = run(make("network", node_tree("undersized", tmp_path)))
    assert values(out)[("kubev_network_speed_bytes", ("eth0",))] == 100 * MBPS
    assert observed(out) == {"nic_speed": 100 * MBPS}


def test_garbage_speed(tmp_path: Path) -> None:
    out = run(make("network", node_tree("broken", tmp_path)))
    assert ("kubev_network_speed_bytes", ("eth0",)) not in values(out)
    assert "eth0: no speed sample: speed is not a number: 'fast'" in out.notes
    assert observed(out) == {"nic_speed": None}


def test_down_link_does_not_count_for_the_verdict(tmp_path: Path) -> None:
    tree = node_tree("compliant", tmp_path)
    (tree / "sys" / "class" / "net" / "eno1" / "operstate").write_text("down\n")
    assert observed(run(make("network", tree))) == {"nic_speed": None}


def test_auto_source_follows_the_sysfs_path(tmp_path: Path) -> None:
    assert make("network").source() == "netlink"
    assert make("network", tmp_path).source() == "sysfs"
