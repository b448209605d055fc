"""The peers check when peers misbehave, and at a thousand peers: bounded time, bounded
series, and the exporter keeps serving.

One namespace probes; another holds many peer addresses on one interface (this kernel has
no dummy module), with the listeners every node runs, bound to all of them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, cluster
from tests.helpers import Exporter, background, only, samples, value

EVERY_NODE_TCP = (10250, 10256, 10665)


def peer_series(text: str) -> dict[str, int]:
    """How many series each kubev_peer* metric has."""
    counts: dict[str, int] = {}
    for name, _ in samples(text):
        if name.startswith("kubev_peer"):
            counts[name] = counts.get(name, 0) + 1
    return counts


def unreachable(text: str) -> dict[tuple[str, str, str], str]:
    """(peer, port, protocol) -> state of every kubev_peer_unreachable series."""
    found = {}
    for (name, labels), _ in samples(text).items():
        if name == "kubev_peer_unreachable":
            d = dict(labels)
            found[(d["peer"], d["port"], d["protocol"])] = d["state"]
    return found


def peers_runs(text: str, result: str = "success") -> float:
    return value(text, "kubev_check_runs_total", check="peers", result=result) or 0.0


def wait_for(exporter: Exporter, predicate: object, what: str, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    text = ""
    while time.monotonic() < deadline:
        text = exporter.metrics()  # every scrape must answer, while the check runs
        if predicate(text):  # type: ignore[operator]
            return text
        time.sleep(0.1)
    raise AssertionError(f"{what}: not reached in {within}s; last scrape:\n{text}")


def add_addresses(ns: str, addresses: list[str], prefix: int) -> None:
    batch = "".join(f"addr add {a}/{prefix} dev eth0\n" for a in addresses)
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)


@contextlib.contextmanager
def prober(c: Cluster, tmp: Path, peers_section: str) -> Iterator[Exporter]:
    node = c.nodes["p"]
    config = tmp / "prober.yaml"
    config.write_text("checks:\n  peers:\n" + peers_section)
    exporter = Exporter(
        [f"--config.file={config}", "--role=worker", *only("peers")],
        netns=node.ns,
        env={"NODE_IP": node.address},
    )
    try:
        exporter.wait_ready()
        yield exporter
    finally:
        exporter.stop()


@pytest.mark.root
@pytest.mark.slow
def test_garbage_slow_huge_and_vanishing_peers(tmp_path: Path) -> None:
    with cluster("10.216.0", (("p", "worker"), ("q", "worker"))) as c:
        q = c.nodes["q"]
        extra = [f"10.216.0.{i}" for i in range(11, 16)]
        add_addresses(q.ns, extra, 24)
        garbage, slow, huge, silent, leaving = extra
        peers_file = tmp_path / "peers.json"

        def write_peers(targets: list[str]) -> None:
            peers_file.write_text(json.dumps([{"targets": targets}]))

        write_peers(
            [f"{garbage}:19101", f"{slow}:19102", f"{huge}:19103", silent, leaving]
        )  # `silent` and `leaving` have no exporter: the identity port refuses
        section = (
            f"    file: {peers_file}\n    interval: 2s\n    timeout: 1800ms\n"
            "    probe_timeout: 300ms\n    identity: {timeout: 400ms, refresh: 1m}\n"
        )
        listeners = [f"tcp:0.0.0.0:{p}" for p in EVERY_NODE_TCP] + ["udp:0.0.0.0:6081"]
        with (
            background(["tests.listeners", *listeners], q.ns),
            background(["tests.httpstub", "19101=garbage", "19102=trickle", "19103=huge"], q.ns),
            prober(c, tmp_path, section) as exporter,
        ):
            text = wait_for(
                exporter,
                lambda t: value(t, "kubev_peer_identities", result="failed") == 5,
                "every identity fetch tried and failed",
            )
            # probed for what every node serves; all of it answers
            assert value(text, "kubev_peer_pairs") == 5 * 4
            assert unreachable(text) == {}
            assert value(text, "kubev_check_success", check="peers") == 1
            duration = value(text, "kubev_check_duration_seconds", check="peers")
            assert duration is not None and duration < 1.8

            # a peer goes away but stays listed: its TCP ports fail (no answer, then no
            # ARP answer either), its Geneve port is merely unknown; nothing else moves
            subprocess.run(
                ["ip", "-n", q.ns, "addr", "del", f"{leaving}/24", "dev", "eth0"], check=True
            )
            text = wait_for(
                exporter,
                lambda t: len(unreachable(t)) == len(EVERY_NODE_TCP),
                "the leaving peer's ports failing",
            )
            assert {peer for peer, _, _ in unreachable(text)} == {leaving}
            assert set(unreachable(text).values()) <= {"filtered", "unreachable"}
            assert value(text, "kubev_check_success", check="peers") == 1
            assert peers_runs(text, "timeout") == 0

            # once it leaves the list, its series go with it
            write_peers([f"{garbage}:19101", f"{slow}:19102", f"{huge}:19103", silent])
            text = wait_for(
                exporter,
                lambda t: not unreachable(t) and value(t, "kubev_peers", source="file") == 4,
                "the leaving peer's series gone",
            )
            assert value(text, "kubev_peer_pairs") == 4 * 4
        log = exporter.stderr
    assert f"peer {garbage}: no identity (not an identity document: not JSON" in log
    assert f"peer {slow}: no identity (no complete answer within 0.4s)" in log
    assert f"peer {huge}: no identity (answer larger than 16384 bytes)" in log
    assert f"peer {silent}: no identity (" in log
    assert "probed for what every node serves" in log


@pytest.mark.root
@pytest.mark.slow
def test_a_thousand_peers_bounded_probes_series_and_time(tmp_path: Path) -> None:
    """1,000 peer addresses in one namespace: 4,000 pairs, 256 probes a run, every pair
    covered within the documented round, a fixed number of series."""
    peers = [f"10.218.{i // 250}.{1 + i % 250}" for i in range(1000)]
    with cluster("10.217.0", (("p", "worker"), ("q", "worker"))) as c:
        q = c.nodes["q"]
        add_addresses(q.ns, peers, 32)
        # routed through q: the prober needs one neighbour entry, not a thousand (the
        # kernel's neighbour table is shared by every namespace: gc_thresh3 is 1024)
        subprocess.run(
            ["ip", "-n", c.nodes["p"].ns, "route", "add", "10.218.0.0/16", "via", q.address],
            check=True,
        )
        # one kernel answers for a thousand peers: lift its per-destination and global
        # ICMP rate limits (per namespace), as a thousand real nodes would not share them
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                q.ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=1000000",
                "net.ipv4.icmp_msgs_burst=1000000",
            ],
            check=True,
        )
        peers_file = tmp_path / "peers.txt"
        peers_file.write_text("\n".join(peers) + "\n")
        section = (
            f"    file: {peers_file}\n    interval: 1s\n    timeout: 1s\n"
            "    probe_timeout: 300ms\n    probes_per_cycle: 256\n"
            "    identity: {enabled: false}\n"
        )
        listeners = [f"tcp:0.0.0.0:{p}" for p in EVERY_NODE_TCP]
        with (
            background(["tests.listeners", *listeners], q.ns),
            prober(c, tmp_path, section) as exporter,
        ):
            first = exporter.metrics()
            start = peers_runs(first)
            rounds = value(first, "kubev_peer_full_round_seconds")
            assert rounds == 16  # ceil(4000 / 256) runs of 1 s

            def covered(text: str) -> bool:
                return (
                    value(
                        text,
                        "kubev_peer_ports",
                        component="kubelet",
                        port="10250",
                        protocol="tcp",
                        state="unprobed",
                    )
                    == 0
                )

            most = 0.0
            text = first
            while not covered(text):
                done = peers_runs(text)
                text = wait_for(exporter, lambda t, done=done: peers_runs(t) > done, "a run")
                most = max(most, value(text, "kubev_peer_run_probes") or 0)
                assert peers_runs(text) - start <= 16 + 1, "not covered within a round"
            text = wait_for(exporter, covered, "every pair probed")
        log = exporter.stderr
    assert most <= 256
    assert value(text, "kubev_peer_pairs") == 4000
    assert value(text, "kubev_peers", source="file") == 1000
    for port, component in ((10250, "kubelet"), (10256, "kube-proxy"), (10665, "kube-ovn-cni")):
        found = {
            s: value(
                text,
                "kubev_peer_ports",
                component=component,
                port=str(port),
                protocol="tcp",
                state=s,
            )
            for s in ("open", "unprobed")
        }
        assert found == {"open": 1000, "unprobed": 0}, port
    # nothing listens on 6081/udp there: every datagram drew ICMP port unreachable
    assert (
        value(
            text, "kubev_peer_ports", component="geneve", port="6081", protocol="udp", state="reset"
        )
        == 1000
    )
    series = peer_series(text)
    assert series["kubev_peer_ports"] == 4 * 7  # (component, port) x states, whatever the peers
    assert "kubev_peer_unreachable" not in series
    assert sum(series.values()) < 50
    assert peers_runs(text, "timeout") == 0 and peers_runs(text, "failure") == 0
    assert "planned probes left for the next run" not in log
