"""The peers check in a real small cluster: four network namespaces on a bridge, each a
node with its address, the listeners its role runs and its own exporter, discovering the
others through dnsmasq serving the headless Service's name; nftables rules in one node
block what a broken firewall blocks. Every exporter must report exactly the blocked pairs,
from the side that cannot reach, with the state that says how; `check --peers` must say
the same before anything listens.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import SERVICE, Cluster, cluster, dnsmasq
from tests.helpers import ROOT, Exporter, background, only, samples, value

ONLY_PEERS_AND_PORTS = [a for a in only("peers") if a != "--no-collector.ports"]
SUBNET = "10.214.0"
NODES = (("cp", "control-plane"), ("w1", "worker"), ("w2", "worker"), ("w3", "worker"))

#: what each node runs: the control plane with OVN's databases (clustered, as install.sh
#: runs them), the workers their kubelet, kube-proxy and kube-ovn-cni; Geneve's 6081/udp
#: is bound everywhere but on w3, a worker that joins now (OVS has no tunnel there yet)
LISTENERS = {
    "cp": [6443, 2379, 2380, 10250, 10256, 10665, 10660, 10661, 6641, 6642, 6643, 6644],
    "w1": [10250, 10256, 10665],
    "w2": [10250, 10256, 10665],
    "w3": [10250, 10256, 10665],
}
GENEVE = ("cp", "w1", "w2")


def firewall(c: Cluster) -> str:
    """w3's broken firewall: it drops the control plane's kubelet connects, refuses its own
    connects to the API server (admin prohibited) and to etcd (port unreachable: what
    iptables' REJECT sends by default), and drops Geneve from w2."""
    cp, w2 = c.nodes["cp"].address, c.nodes["w2"].address
    return f"""
table inet kvt {{
  chain input {{
    type filter hook input priority 0;
    ip saddr {cp} tcp dport 10250 drop
    ip saddr {w2} udp dport 6081 drop
  }}
  chain output {{
    type filter hook output priority 0;
    ip daddr {cp} tcp dport 6443 reject with icmp type admin-prohibited
    ip daddr {cp} tcp dport 2379 reject with icmp type port-unreachable
  }}
}}
"""


def expected_blocked(c: Cluster) -> dict[str, set[tuple[str, str, str, str, str]]]:
    cp, w3 = c.nodes["cp"].address, c.nodes["w3"].address
    return {
        "cp": {(w3, "kubelet", "10250", "tcp", "filtered")},
        "w1": set(),
        "w2": {(w3, "geneve", "6081", "udp", "filtered")},
        "w3": {
            (cp, "kube-apiserver", "6443", "tcp", "filtered"),
            (cp, "etcd", "2379", "tcp", "filtered"),
        },
    }


CONFIG = """\
checks:
  ports: {{interval: 2s, timeout: 1500ms, connect_timeout: 300ms}}
  peers:
    dns_name: {service}
    interval: 2s
    timeout: 1800ms
    probe_timeout: 500ms
    identity: {{timeout: 500ms, refresh: 2s}}
"""


def unreachable_series(text: str) -> set[tuple[str, str, str, str, str]]:
    """kubev_peer_unreachable series as (peer, component, port, protocol, state)."""
    found = set()
    for (name, labels), _ in samples(text).items():
        if name == "kubev_peer_unreachable":
            d = dict(labels)
            found.add((d["peer"], d["component"], d["port"], d["protocol"], d["state"]))
    return found


def runs(text: str) -> float:
    return sum(
        v
        for (name, labels), v in samples(text).items()
        if name == "kubev_check_runs_total" and ("check", "peers") in labels
    )


def wait_for(exporter: Exporter, predicate: object, what: str, within: float = 40.0) -> str:
    import time

    deadline = time.monotonic() + within
    text = ""
    while time.monotonic() < deadline:
        text = exporter.metrics()
        if predicate(text):  # type: ignore[operator]
            return text
        time.sleep(0.2)
    raise AssertionError(f"{what}: not reached in {within}s; last scrape:\n{text}")


def wait_runs(exporter: Exporter, more: int) -> str:
    start = runs(exporter.metrics())
    return wait_for(exporter, lambda t: runs(t) >= start + more, f"{more} more peers runs")


@contextlib.contextmanager
def exporters(c: Cluster, tmp: Path) -> Iterator[dict[str, Exporter]]:
    config = tmp / "peers.yaml"
    config.write_text(CONFIG.format(service=SERVICE))
    started: dict[str, Exporter] = {}
    try:
        for name, node in c.nodes.items():
            started[name] = Exporter(
                [
                    f"--config.file={config}",
                    f"--role={node.role}",
                    f"--web.listen-address={node.address}:19100",
                    *ONLY_PEERS_AND_PORTS,
                ],
                netns=node.ns,
                env={"NODE_IP": node.address, "NODE_NAME": name},
            )
        for exporter in started.values():
            exporter.wait_ready()
        yield started
    finally:
        for exporter in started.values():
            exporter.stop()


@contextlib.contextmanager
def role_listeners(c: Cluster) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name, node in c.nodes.items():
            specs = [f"tcp:0.0.0.0:{p}" for p in LISTENERS[name]]
            if name in GENEVE:
                specs.append("udp:0.0.0.0:6081")
            stack.enter_context(background(["tests.listeners", *specs], node.ns))
        yield


class Tables(HTMLParser):
    """The rows of every `data-table` table on the report page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        table = found.get("data-table")
        if tag == "table" and table:
            self._table = table
            self.tables[table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def states(text: str, component: str, port: int, protocol: str) -> dict[str, float]:
    """kubev_peer_ports of one port: state -> peers, states with none left out."""
    found = {}
    for (name, labels), count in samples(text).items():
        d = dict(labels)
        if (
            name == "kubev_peer_ports"
            and (d["component"], d["port"], d["protocol"]) == (component, str(port), protocol)
            and count
        ):
            found[d["state"]] = count
    return found


def met(text: str) -> float | None:
    return value(text, "kubev_requirement_met", requirement="peer_reachability", level="minimum")


@pytest.mark.root
@pytest.mark.slow
def test_every_exporter_reports_exactly_the_blocked_pairs(tmp_path: Path) -> None:
    with cluster(SUBNET, NODES) as c:
        addresses = [n.address for n in c.nodes.values()]
        with dnsmasq(c, tmp_path, {SERVICE: addresses}), role_listeners(c):
            c.nft("w3", firewall(c))
            with exporters(c, tmp_path) as running:
                want = expected_blocked(c)
                for name, exporter in running.items():
                    wait_for(
                        exporter,
                        lambda t: value(t, "kubev_peer_identities", result="identity") == 3,
                        f"{name}: the identities of its three peers",
                    )
                # every peer has told who it is; two runs later every pair is settled
                texts = {name: wait_runs(exporter, 2) for name, exporter in running.items()}
                page = running["w3"].get("/").text
                identity = json.loads(running["w3"].get("/-/identity").body)

                # the firewall goes: every pair clears at the next run after it
                before = {name: runs(e.metrics()) for name, e in running.items()}
                c.nft_flush("w3")
                cleared = {
                    name: wait_for(e, lambda t: not unreachable_series(t), f"{name}: all clear")
                    for name, e in running.items()
                }
        logs = {name: e.stderr for name, e in running.items()}

    for name, text in texts.items():
        assert unreachable_series(text) == want[name], name
        assert value(text, "kubev_peers", source="dns") == 3, name
        assert met(text) == (0 if want[name] else 1), name
        # Geneve answers nothing where it listens: unknown, never blocked; w3's 6081 does
        # not listen yet, so a datagram there draws ICMP port unreachable (reset), or
        # nothing when w3's firewall drops it (filtered: w3 said nothing listens)
        listening = len([g for g in GENEVE if g != name])
        w3 = {} if name == "w3" else {"filtered": 1} if name == "w2" else {"reset": 1}
        assert states(text, "geneve", 6081, "udp") == {"unknown": listening, **w3}, name
        # OVN's databases: only on the control plane, learnt from its identity
        if name != "cp":
            assert states(text, "ovn-sb", 6642, "tcp") == {"open": 1}, name
    for name, text in cleared.items():
        assert runs(text) - before[name] <= 2, name
        assert met(text) == 1, name

    # the page's peers section lists the blocked pairs with how they are blocked
    parser = Tables()
    parser.feed(page)
    cp = c.nodes["cp"].address
    assert {(r[0], r[1], r[2], r[3], r[4], r[5]) for r in parser.tables["peers-blocked"]} == {
        (cp, "cp", "kube-apiserver", "6443/tcp", "filtered", "rejected by this node"),
        (cp, "cp", "etcd", "2379/tcp", "filtered", "rejected by this node"),
    }
    by_port = {(r[0], r[1]): r[2:] for r in parser.tables["peers-states"]}
    # open, reset, filtered, unreachable, unknown, error, unprobed: w3 reaches the three
    # kubelets (its own firewall drops the control plane's connects to w3, not w3's)
    assert by_port[("kubelet", "10250/tcp")] == ["3", "0", "0", "0", "0", "0", "0"]
    # w3 tells its peers it serves Geneve but does not listen there yet
    assert {"component": "geneve", "port": 6081, "protocol": "udp", "listening": False} in (
        identity["serves"]
    )
    assert identity["node"] == "w3" and identity["source"] == "ports-check"
    # the log says how, once
    assert "rejected by this node: ICMP communication administratively prohibited" in logs["w3"]
    assert "ICMP port unreachable" in logs["w3"] and "iptables' default REJECT" in logs["w3"]
    assert f"{c.nodes['w3'].address} (w3) kubelet 10250/tcp filtered: dropped" in logs["cp"]


def check_peers(c: Cluster) -> dict[str, tuple[int, dict[str, Any]]]:
    """`check --peers --output json` on every node at once: exit code and report (its
    rows carry the same detail and hint lines as the table)."""
    peers = ",".join(
        f"{n.address}={n.role}" + ("+ovn-central" if n.name == "cp" else "")
        for n in c.nodes.values()
    )
    procs = {
        name: subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                node.ns,
                sys.executable,
                "-m",
                "exporter",
                "check",
                f"--peers={peers}",
                f"--role={node.role}",
                "--output=json",
                *only("peers"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_IP": node.address},
        )
        for name, node in c.nodes.items()
    }
    outs = {name: p.communicate(timeout=120) for name, p in procs.items()}
    return {name: (procs[name].returncode, json.loads(outs[name][0])) for name in c.nodes}


def row(report: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        r for r in report["rows"] if r["requirement"] == "peer_reachability"
    )
    return found


def blocked_in(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    tables = report.get("tables", [])
    assert isinstance(tables, list)
    rows = next(t["rows"] for t in tables if t["key"] == "peers-blocked")
    return {(r[0], r[2], r[3], r[4]) for r in rows}


@pytest.mark.root
@pytest.mark.slow
def test_check_peers_before_install() -> None:
    """Nothing listens yet: reset passes, a drop or a reject fails, named pair by pair."""
    with cluster("10.215.0", NODES) as c:
        c.nft("w3", firewall(c))
        first = check_peers(c)
        c.nft_flush("w3")
        second = check_peers(c)
    cp, w3 = c.nodes["cp"].address, c.nodes["w3"].address
    want = {
        "cp": {(w3, "kubelet", "10250/tcp", "filtered")},
        "w1": set(),
        "w2": {(w3, "geneve", "6081/udp", "filtered")},
        "w3": {
            (cp, "kube-apiserver", "6443/tcp", "filtered"),
            (cp, "etcd", "2379/tcp", "filtered"),
        },
    }
    for name, (code, report) in first.items():
        assert blocked_in(report) == want[name], name
        assert code == (1 if want[name] else 0), (name, report)
    w3_row, w2_row = row(first["w3"][1]), row(first["w2"][1])
    assert w3_row["verdict"] == "FAIL"
    assert w3_row["detail"] == (
        f"2 blocked: {cp} etcd 2379/tcp filtered (rejected by this node), "
        f"{cp} kube-apiserver 6443/tcp filtered (rejected by this node)"
    )
    assert "nft list ruleset" in w3_row["hint"]  # the firewall hint
    assert w2_row["detail"] == f"1 blocked: {w3} geneve 6081/udp filtered (dropped)"
    for name, (code, report) in second.items():
        assert code == 0 and not blocked_in(report), (name, report)
        assert row(report)["verdict"] == "PASS"
