"""The network check on real veth pairs inside a network namespace the test creates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.spec import MBPS
from tests.helpers import (
    ROOT,
    Exporter,
    free_port,
    ip,
    netns_get,
    network_namespace,
    only,
    value,
    veth_pair,
    wait_until,
)

ONLY_NETWORK = only("network")
#: a run every second, to see links change; the tests wait for the state they assert, so
#: a run that a busy machine makes time out (the check runs at nice 10) only delays them
CONFIG = """\
checks:
  network:
    interval: 1s
    interfaces: {{include: "^kv"}}
    physical_only: false
    source: {source}
"""


def wait_value(exporter: Exporter, want: float | None, name: str, **labels: str) -> str:
    """Scrape until a successful run of the check shows `want` for the sample."""
    return exporter.wait_for(
        lambda text: (
            value(text, "kubev_check_success", check="network") == 1
            and value(text, name, **labels) == want
        ),
        f"{name}{labels} == {want}",
    )


def start(ns: str, tmp_path: Path, source: str) -> Exporter:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(source=source))
    exporter = Exporter([f"--config.file={config}", *ONLY_NETWORK], netns=ns)
    exporter.wait_ready()
    return exporter


@pytest.mark.root
@pytest.mark.parametrize("source", ["netlink", "sysfs"])
def test_veth_speed_state_and_carrier_changes(tmp_path: Path, source: str) -> None:
    with network_namespace() as ns:
        veth_pair(ns)
        exporter = start(ns, tmp_path, source)
        try:
            text = wait_value(exporter, 1, "kubev_network_up", interface="kva")
            assert value(text, "kubev_network_speed_bytes", interface="kva") == 10_000 * 125_000
            assert value(text, "kubev_network_full_duplex", interface="kva") == 1
            assert value(text, "kubev_network_mtu_bytes", interface="kva") == 1500
            before = value(text, "kubev_network_carrier_changes_total", interface="kva")
            assert before is not None

            ip(ns, "link", "set", "kvb", "down")  # the peer goes: kva loses its carrier
            text = wait_value(exporter, 0, "kubev_network_up", interface="kva")
            down = value(text, "kubev_network_carrier_changes_total", interface="kva")
            assert down is not None and down > before

            ip(ns, "link", "set", "kvb", "up")
            text = wait_value(exporter, 1, "kubev_network_up", interface="kva")
            up = value(text, "kubev_network_carrier_changes_total", interface="kva")
            assert up is not None and up > down
            assert (
                value(text, "kubev_requirement_met", requirement="nic_speed", level="recommended")
                == 1
            )
        finally:
            exporter.stop()
    assert exporter.proc.returncode == 0


@pytest.mark.root
def test_sysfs_einval_gives_no_speed_and_says_why(tmp_path: Path) -> None:
    with network_namespace() as ns:
        veth_pair(ns)
        ip(ns, "link", "set", "kva", "down")  # sysfs refuses speed of a down link: EINVAL
        exporter = start(ns, tmp_path, "sysfs")
        try:
            text = wait_value(exporter, 0, "kubev_network_up", interface="kva")
            assert value(text, "kubev_network_speed_bytes", interface="kva") is None
            assert value(text, "kubev_network_speed_bytes", interface="kvb") == 1.25e9
        finally:
            exporter.stop()
    assert "kva: no speed sample: /sys/class/net/kva/speed: EINVAL (Invalid argument)" in (
        exporter.stderr
    )


@pytest.mark.root
def test_node_exporter_agrees_in_the_namespace(tmp_path: Path) -> None:
    with network_namespace() as ns:
        veth_pair(ns)
        exporter = start(ns, tmp_path, "netlink")
        port = free_port()
        oracle = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{port}",
                "--collector.disable-defaults",
                "--collector.netclass",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def scrape_theirs() -> str | None:
            assert oracle.poll() is None, "node_exporter exited"
            try:
                return netns_get(ns, f"http://127.0.0.1:{port}/metrics").text
            except OSError:
                return None

        try:
            theirs = wait_until(scrape_theirs, "node_exporter serving")
            ours = wait_value(exporter, 1, "kubev_network_up", interface="kva")
            for link in ("kva", "kvb"):
                assert value(ours, "kubev_network_speed_bytes", interface=link) == value(
                    theirs, "node_network_speed_bytes", device=link
                )
                assert value(ours, "kubev_network_carrier_changes_total", interface=link) == value(
                    theirs, "node_network_carrier_changes_total", device=link
                )
        finally:
            oracle.terminate()
            oracle.wait()
            exporter.stop()


#: runs inside the namespace: one network cycle over netlink, with a spy on the ethtool
#: request (the real one still runs) to see which links it was asked about
ETHTOOL_SPY = """
import json
from exporter.checks import network
from exporter.config import from_mapping
from exporter.paths import Paths

asked = []
real = network._ethtool_link
def spy(ethtool, name):
    asked.append(name)
    return real(ethtool, name)
network._ethtool_link = spy
cfg = from_mapping({"checks": {"network": {"source": "netlink", "physical_only": False,
                                           "interfaces": {"include": "^kv"}}}})
out = network.NetworkCheck(cfg, Paths()).collect()
speeds = {s.labels[0]: s.value for s in out.samples if s.metric.name == "kubev_network_speed_bytes"}
print(json.dumps({"asked": sorted(asked), "speeds": speeds}))
"""


@pytest.mark.root
def test_ethtool_is_asked_only_about_reported_links() -> None:
    """A KubeVirt node has a veth or tap per pod and VM: the check must not pay an ethtool
    request for each link it then filters out."""
    with network_namespace() as ns:
        veth_pair(ns)
        batch = "\n".join(f"link add pod{i} type veth peer name vm{i}" for i in range(20))
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", ETHTOOL_SPY],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    seen = json.loads(done.stdout)
    assert seen["asked"] == ["kva", "kvb"]
    assert seen["speeds"] == {"kva": 10_000 * MBPS, "kvb": 10_000 * MBPS}
