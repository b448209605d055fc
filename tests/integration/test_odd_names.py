"""Device names that are not UTF-8, on the real exporter process.

The kernel takes any bytes in an interface or disk name (ip link add $'kv\\xff0' works).
Such a name once cost every /metrics answer (a 500: the label could not be encoded) on the
sysfs path and the whole network check (a TypeError) on the netlink path. Now it costs
nothing: its label writes the odd byte as \\xff, the other items report, every page serves.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    Exporter,
    fixture_args,
    make_node_tree,
    network_namespace,
    only,
    running,
    samples,
    value,
)

ODD = b"kv\xff0"
ODD_LABEL = "kv\\xff0"
CONFIG = """\
checks:
  network:
    interval: 1h
    interfaces: {include: "^kv"}
    physical_only: false
    source: auto
"""


def assert_served(exporter: Exporter) -> str:
    """/metrics and the report answer 200; the exposition passes promtool's lint."""
    scrape = exporter.get("/metrics")
    assert scrape.status == 200, scrape.body[:500]
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=scrape.body, capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert exporter.get("/").status == 200
    return scrape.text


@pytest.mark.root
@pytest.mark.parametrize("source", ["netlink", "rerooted-sysfs"])
def test_an_interface_name_that_is_not_utf8(tmp_path: Path, source: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    args = [f"--config.file={config}", *only("network")]
    wrap: list[str] = []
    if source == "rerooted-sysfs":
        # As the DaemonSet mounts the host's /sys at /host/sys: a bind mount of the
        # namespace's own sysfs, made in the mount namespace `ip netns exec` creates
        sysfs = tmp_path / "host-sys"
        sysfs.mkdir()
        wrap = ["sh", "-c", 'mount --bind /sys "$0" && exec "$@"', str(sysfs)]
        args.append(f"--path.sysfs={sysfs}")
    with network_namespace() as ns:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", ODD, "type", "veth", "peer", "name", "kvb0"],
            check=True,
        )
        for name in (ODD, b"kvb0"):
            subprocess.run(["ip", "-n", ns, "link", "set", name, "up"], check=True)
        listed = subprocess.run(
            ["ip", "netns", "exec", ns, "ls", "/sys/class/net"], capture_output=True, check=True
        ).stdout.split()
        assert ODD in listed  # the kernel kept the byte as it was given
        with running(args, netns=ns, wrap=wrap) as exporter:
            text = assert_served(exporter)
            assert value(text, "kubev_check_success", check="network") == 1
            for label in (ODD_LABEL, "kvb0"):
                assert value(text, "kubev_network_up", interface=label) == 1, label
                assert value(text, "kubev_network_mtu_bytes", interface=label) == 1500, label
                assert value(text, "kubev_network_speed_bytes", interface=label) == 10_000 * 125_000
        # logged once, the label as the log line quotes it (logfmt doubles the backslash)
        assert exporter.stderr.count("interface kv\\\\xff0: the name is not UTF-8") == 1
    if source == "rerooted-sysfs":  # the bind mount lived in the exporter's mount namespace
        assert not os.path.ismount(tmp_path / "host-sys")


@pytest.mark.root
def test_a_disk_name_that_is_not_utf8(tmp_path: Path) -> None:
    tree = make_node_tree("realistic", tmp_path)
    odd = tree / "sys" / "block" / os.fsdecode(b"kv\xffd")
    (odd / "queue").mkdir(parents=True)
    (odd / "queue" / "rotational").write_text("0\n")
    with (tree / "proc" / "diskstats").open("ab") as stats:
        stats.write(b" 252       0 kv\xffd 42 0 336 7 9 0 72 5 0 12 12 0 0 0 0 0 0\n")
    config = tmp_path / "c.yaml"
    config.write_text("checks:\n  disk: {interval: 1h}\n")
    with running([*fixture_args(tree, config), *only("disk")]) as exporter:
        text = assert_served(exporter)
    got = samples(text)
    assert value(text, "kubev_check_success", check="disk") == 1
    assert got[("kubev_disk_reads_completed_total", (("device", "kv\\xffd"),))] == 42
    assert value(text, "kubev_disk_reads_completed_total", device="nvme0n1") == 880000
