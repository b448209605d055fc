"""A small cluster in network namespaces, for the peers check's tests and bench/peers.py.

A hub namespace holds a bridge; every node is a namespace of its own with `eth0` on that
bridge and its node address. Everything is created inside namespaces the caller's
`with` owns and deletes, even on failure; no address outside them is ever a target.

The hub's bridge also has an address, where dnsmasq can serve the headless Service's name
(its A records are the node addresses), and every node's /etc/netns/<ns>/resolv.conf
points there (`ip netns exec` bind-mounts it over /etc/resolv.conf).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ip, network_namespace

SERVICE = "kubev-node-exporter.monitoring.svc.cluster.local"


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    ns: str
    address: str


@dataclass
class Cluster:
    hub: str
    nodes: dict[str, Node] = field(default_factory=dict)
    dns_address: str = ""

    def nft(self, node: str, ruleset: str) -> None:
        """Load an nftables ruleset into the node's namespace."""
        subprocess.run(
            ["ip", "netns", "exec", self.nodes[node].ns, "nft", "-f", "-"],
            input=ruleset,
            text=True,
            check=True,
        )

    def nft_flush(self, node: str) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.nodes[node].ns, "nft", "flush", "ruleset"], check=True
        )


@contextlib.contextmanager
def cluster(subnet: str, nodes: Sequence[tuple[str, str]]) -> Iterator[Cluster]:
    """`subnet` like "10.214.0" (a /24); nodes as (name, role), addressed .1, .2, ...; the
    hub's bridge is .254."""
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(network_namespace())
        ip(hub, "link", "add", "br0", "type", "bridge")
        ip(hub, "addr", "add", f"{subnet}.254/24", "dev", "br0")
        ip(hub, "link", "set", "br0", "up")
        built = Cluster(hub, dns_address=f"{subnet}.254")
        for i, (name, role) in enumerate(nodes, 1):
            ns = stack.enter_context(network_namespace())
            subprocess.run(
                ["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name",
                 f"p{i}", "netns", hub],
                check=True,
            )  # fmt: skip
            ip(hub, "link", "set", f"p{i}", "master", "br0")
            ip(hub, "link", "set", f"p{i}", "up")
            ip(ns, "addr", "add", f"{subnet}.{i}/24", "dev", "eth0")
            ip(ns, "link", "set", "eth0", "up")
            ip(ns, "route", "add", "default", "via", f"{subnet}.254")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            stack.callback(shutil.rmtree, etc, True)
            (etc / "resolv.conf").write_text(
                f"nameserver {subnet}.254\noptions timeout:1 attempts:2\n"
            )
            built.nodes[name] = Node(name, role, ns, f"{subnet}.{i}")
        yield built


@contextlib.contextmanager
def dnsmasq(built: Cluster, tmp: Path, names: dict[str, Sequence[str]]) -> Iterator[Path]:
    """dnsmasq in the hub answering each name with its addresses (a hosts file it re-reads
    on SIGHUP: `rewrite_hosts`). Yields the hosts file."""
    hosts = tmp / "cluster.hosts"
    write_hosts(hosts, names)
    proc = subprocess.Popen(
        [
            "ip", "netns", "exec", built.hub, "dnsmasq", "--keep-in-foreground",
            "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
            f"--listen-address={built.dns_address}", f"--addn-hosts={hosts}",
            "--user=root", "--group=root", f"--pid-file={tmp / 'dnsmasq.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        first = next(iter(built.nodes.values()))
        for _ in range(100):  # until it answers
            done = subprocess.run(
                ["ip", "netns", "exec", first.ns, "getent", "hosts", next(iter(names))],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                break
            time.sleep(0.05)
        yield hosts
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def write_hosts(path: Path, names: dict[str, Sequence[str]]) -> None:
    path.write_text("".join(f"{a} {name}\n" for name, addrs in names.items() for a in addrs))


def reload_dnsmasq(tmp: Path) -> None:
    """dnsmasq re-reads its hosts files on SIGHUP."""
    pid = int((tmp / "dnsmasq.pid").read_text().strip())
    os.kill(pid, signal.SIGHUP)
