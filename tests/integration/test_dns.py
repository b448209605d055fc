"""The DNS check against real dnsmasq servers in a network namespace of the test's own.

Each test builds one node in a namespace: a veth pair whose `kva` end carries the node's
DNS server (10.213.1.1, named in the namespace's resolv.conf), the cluster DNS service
(10.213.1.2, named only in kubelet's config under the test's rootfs) and, where a test
needs them, a server that never answers and an address where nothing listens.
`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf and /etc/netns/<ns>/hosts over
/etc, so the exporter there uses the test's resolver and hosts file, never the host's.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    Exporter,
    background,
    check_config,
    ip,
    network_namespace,
    only,
    running,
    samples,
    value,
    veth_pair,
    wait_until,
)

NODE_DNS = "10.213.1.1"  # in the node's resolv.conf
CLUSTER_DNS = "10.213.1.2"  # kubelet's clusterDNS: pods are given this one
SILENT = "10.213.1.9"  # a UDP socket on port 53 that never reads
NOBODY = "10.213.1.3"  # on the link, nothing listens: ICMP port unreachable
NODELOCAL = "169.254.20.10"
API = "kubernetes.default.svc.cluster.local"
ONLY_DNS = only("dns")

#: the cluster zone the "CoreDNS" dnsmasq serves (and no other name: it has no upstream)
CLUSTER_ZONE = (
    "--local=/cluster.local/",
    f"--host-record={API},10.96.0.1",
    "--host-record=kube-dns.kube-system.svc.cluster.local,10.96.0.10",
)
#: the node's DNS: other nodes' names, and it knows nothing of the cluster zone
NODE_ZONE = ("--local=/kubev.test/", "--host-record=node-b.kubev.test,10.213.1.61")


@dataclass
class Node:
    ns: str
    rootfs: Path

    def kubelet(self, cluster_dns: list[str], domain: str = "cluster.local") -> None:
        """kubelet's config file as kubeadm writes it, with these DNS fields."""
        path = self.rootfs / "var" / "lib" / "kubelet" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        servers = "".join(f"- {server}\n" for server in cluster_dns)
        path.write_text(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
            f"clusterDNS:\n{servers}clusterDomain: {domain}\n"
            "staticPodPath: /etc/kubernetes/manifests\n"
        )

    def args(self, tmp_path: Path, body: str) -> list[str]:
        return [check_config(tmp_path, "dns", body), f"--path.rootfs={self.rootfs}", *ONLY_DNS]


@contextlib.contextmanager
def node(
    tmp_path: Path, *extra_addresses: str, hosts: str = "", wait: int = 1, attempts: int = 1
) -> Iterator[Node]:
    """A node in a namespace of its own; the C resolver asks NODE_DNS `attempts` times
    and waits `wait` seconds for each answer."""
    with network_namespace() as ns:
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(
            f"nameserver {NODE_DNS}\noptions timeout:{wait} attempts:{attempts}\n"
        )
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
        try:
            veth_pair(ns, f"{NODE_DNS}/24")
            for address in (CLUSTER_DNS, *extra_addresses):
                ip(ns, "addr", "add", f"{address}/24", "dev", "kva")
            rootfs = tmp_path / "rootfs"
            rootfs.mkdir()
            yield Node(ns, rootfs)
        finally:
            shutil.rmtree(etc)


@contextlib.contextmanager
def dnsmasq(ns: str, tmp_path: Path, address: str, *records: str) -> Iterator[None]:
    """dnsmasq serving `records` on address:53 only, with no upstream (other names:
    REFUSED); returns once it listens."""
    pid_file = tmp_path / f"dnsmasq-{address}.pid"
    proc = subprocess.Popen(
        [
            *("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground"),
            *("--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"),
            f"--listen-address={address}",
            *records,
            *("--user=root", "--group=root", f"--pid-file={pid_file}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def bound() -> bool:  # its socket is bound, or it died trying
            listening = subprocess.run(
                ["ip", "netns", "exec", ns, "ss", "-Hlnu", "src", f"{address}:53"],
                capture_output=True,
                text=True,
                check=True,
            )
            return bool(listening.stdout.strip()) or proc.poll() is not None

        wait_until(bound, f"dnsmasq listening on {address}:53")
        assert proc.poll() is None, (
            f"dnsmasq exited: {proc.stderr.read() if proc.stderr else b''!r}"
        )
        yield
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def after_runs(exporter: Exporter, runs: int) -> str:
    """The metrics once the dns check has run `runs` times (successfully)."""

    def done(text: str) -> bool:
        return (value(text, "kubev_check_runs_total", check="dns", result="success") or 0) >= runs

    return exporter.wait_for(done, f"{runs} successful runs of the dns check")


def resolver_of(text: str, name: str) -> dict[str, float]:
    """{resolver: success} of the samples for `name`."""
    return {
        dict(labels)["resolver"]: v
        for (metric, labels), v in samples(text).items()
        if metric == "kubev_dns_resolution_success" and dict(labels)["name"] == name
    }


@pytest.mark.root
def test_cluster_names_ask_the_cluster_dns_and_node_names_the_node_resolver(
    tmp_path: Path,
) -> None:
    body = "    cluster_names: [kube-dns.kube-system.svc.cluster.local]\n"
    with (
        node(tmp_path) as n,
        dnsmasq(n.ns, tmp_path, NODE_DNS, *NODE_ZONE),
        dnsmasq(n.ns, tmp_path, CLUSTER_DNS, *CLUSTER_ZONE),
    ):
        n.kubelet([CLUSTER_DNS])
        # what the old check did: the node's resolver does not know the cluster zone
        node_resolver = subprocess.run(
            ["ip", "netns", "exec", n.ns, "getent", "hosts", API], capture_output=True, check=False
        )
        assert node_resolver.returncode != 0
        # no names configured: this node's own name, which /etc/hosts does not list
        env = {"NODE_NAME": "node-b.kubev.test"}
        with running(n.args(tmp_path, body), netns=n.ns, dns=True, env=env) as exporter:
            text = exporter.metrics()
    assert resolver_of(text, API) == {f"cluster:{CLUSTER_DNS}": 1}
    assert resolver_of(text, "kube-dns.kube-system.svc.cluster.local") == {
        f"cluster:{CLUSTER_DNS}": 1
    }
    assert resolver_of(text, "node-b.kubev.test") == {"node": 1}
    duration = value(
        text, "kubev_dns_resolution_duration_seconds", name=API, resolver=f"cluster:{CLUSTER_DNS}"
    )
    assert duration is not None and duration > 0
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 1
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 0


@pytest.mark.root
def test_each_failure_names_its_resolver_and_reason(tmp_path: Path) -> None:
    body = (
        "    names: [node-b.kubev.test, gone.kubev.test]\n"
        "    cluster_names: [missing.svc.cluster.local, registry.corp.example]\n"
        "    lookup_timeout: 500ms\n"
    )
    with (
        node(tmp_path, SILENT, NOBODY) as n,
        dnsmasq(n.ns, tmp_path, NODE_DNS, *NODE_ZONE),
        dnsmasq(n.ns, tmp_path, CLUSTER_DNS, *CLUSTER_ZONE),
        background(["tests.listeners", f"udp:{SILENT}:53"], netns=n.ns),
    ):
        n.kubelet([CLUSTER_DNS, SILENT, NOBODY])
        with running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter:
            text = exporter.metrics()
    cluster = f"cluster:{CLUSTER_DNS}"
    assert resolver_of(text, API) == {cluster: 1, f"cluster:{SILENT}": 0, f"cluster:{NOBODY}": 0}
    assert resolver_of(text, "missing.svc.cluster.local")[cluster] == 0
    assert resolver_of(text, "node-b.kubev.test") == {"node": 1}
    assert resolver_of(text, "gone.kubev.test") == {"node": 0}
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert value(text, "kubev_check_success", check="dns") == 1  # the check itself worked
    for line in (
        f"DNS lookup of {API} via cluster:{SILENT} failed: no answer within 0.5s",
        f"DNS lookup of {API} via cluster:{NOBODY} failed: nothing answers on port 53 there "
        "(ICMP port unreachable)",
        f"DNS lookup of missing.svc.cluster.local via {cluster} failed: the name does not "
        "exist (NXDOMAIN)",
        f"DNS lookup of registry.corp.example via {cluster} failed: the server refused the "
        "query (REFUSED): it does not serve this name or this client",
        "DNS lookup of gone.kubev.test via node failed: the name does not exist (NXDOMAIN)",
    ):
        assert line in exporter.stderr


@pytest.mark.root
def test_this_nodes_name_from_etc_hosts_is_not_taken_for_a_dns_test(tmp_path: Path) -> None:
    with (
        node(tmp_path, hosts="10.213.1.10 node-a.kubev.test node-a\n") as n,
        dnsmasq(n.ns, tmp_path, CLUSTER_DNS, *CLUSTER_ZONE),
    ):
        n.kubelet([CLUSTER_DNS])
        env = {"NODE_NAME": "node-a"}
        with running(n.args(tmp_path, "    interval: 30s\n"), netns=n.ns, dns=True, env=env) as e:
            text = e.metrics()
    assert resolver_of(text, "node-a") == {}
    assert resolver_of(text, API) == {f"cluster:{CLUSTER_DNS}": 1}
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 1
    assert (
        "node-a (this node's name) is in /etc/hosts, so resolving it tests no DNS server: not "
        "checked; list other nodes' names in checks.dns.names" in e.stderr
    )


@pytest.mark.root
def test_a_large_answer_comes_over_tcp(tmp_path: Path) -> None:
    """150 A records (2.4 kB) do not fit the 1232 bytes asked for over UDP: dnsmasq sets
    TC and the client asks again over TCP. Without that, the lookup would find no address."""
    big = [f"--host-record=big.svc.cluster.local,10.1.{i // 200}.{i % 200 + 1}" for i in range(150)]
    with (
        node(tmp_path) as n,
        dnsmasq(n.ns, tmp_path, CLUSTER_DNS, *CLUSTER_ZONE, *big),
    ):
        n.kubelet([CLUSTER_DNS])
        body = "    names: [localhost]\n    cluster_names: [big.svc.cluster.local]\n"
        with running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter:
            text = exporter.metrics()
    assert resolver_of(text, "big.svc.cluster.local") == {f"cluster:{CLUSTER_DNS}": 1}


@pytest.mark.root
def test_nodelocal_dns_cache_is_detected_and_answers(tmp_path: Path) -> None:
    """node-cache's interface (a bridge here: this kernel has no dummy module) with its
    address, kubelet pointing pods at it, and a cache (dnsmasq) listening there."""
    with node(tmp_path) as n:
        ip(n.ns, "link", "add", "nodelocaldns", "type", "bridge")
        ip(n.ns, "addr", "add", f"{NODELOCAL}/32", "dev", "nodelocaldns")
        ip(n.ns, "link", "set", "nodelocaldns", "up")
        (n.rootfs / "etc").mkdir()
        (n.rootfs / "etc" / "resolv.conf").write_text(f"nameserver {NODELOCAL}\n")
        n.kubelet([NODELOCAL])
        with dnsmasq(n.ns, tmp_path, NODELOCAL, *CLUSTER_ZONE):
            body = "    names: [localhost]\n"
            with running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter:
                text = exporter.metrics()
    assert resolver_of(text, API) == {f"cluster:{NODELOCAL}": 1}
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 1
    for source in ("cluster_dns", "interface", "address", "resolv_conf"):
        assert value(text, "kubev_dns_nodelocal_cache_evidence", source=source) == 1, source
    assert (
        f"NodeLocal DNSCache ({NODELOCAL}) is in use on this node (seen in: cluster_dns, "
        "interface, address, resolv_conf)" in exporter.stderr
    )


@pytest.mark.root
def test_the_nodelocaldns_interface_alone_is_evidence(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        ip(n.ns, "link", "add", "nodelocaldns", "type", "bridge")
        body = "    names: [localhost]\n    kubelet_config: null\n"
        with running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter:
            text = exporter.metrics()
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 1
    assert value(text, "kubev_dns_nodelocal_cache_evidence", source="interface") == 1
    for source in ("cluster_dns", "address", "resolv_conf"):
        assert value(text, "kubev_dns_nodelocal_cache_evidence", source=source) == 0, source


@pytest.mark.root
def test_node_resolver_names_and_nxdomain(tmp_path: Path) -> None:
    body = "    names: [node-b.kubev.test, missing.kubev.test]\n    lookup_timeout: 2s\n"
    with (
        node(tmp_path) as n,
        dnsmasq(n.ns, tmp_path, NODE_DNS, *NODE_ZONE),
        running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter,
    ):
        text = exporter.metrics()
    assert (
        value(text, "kubev_dns_resolution_success", name="node-b.kubev.test", resolver="node") == 1
    )
    assert (
        value(text, "kubev_dns_resolution_success", name="missing.kubev.test", resolver="node") == 0
    )
    assert (
        value(
            text, "kubev_dns_resolution_duration_seconds", name="node-b.kubev.test", resolver="node"
        )
        is not None
    )
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert (
        "DNS lookup of missing.kubev.test via node failed: the name does not exist (NXDOMAIN)"
        in exporter.stderr
    )


@pytest.mark.root
def test_a_node_resolver_that_never_answers(tmp_path: Path) -> None:
    """The node's nameserver is a socket that never reads: the lookup gives up after
    lookup_timeout, and the check itself works and says why. (The check's own timeout is
    generous: on a busy machine the rest of its first run, at nice 10, takes a while.)"""
    body = (
        "    names: [node-b.kubev.test]\n    lookup_timeout: 500ms\n    interval: 1h\n"
        "    timeout: 1m\n    kubelet_config: null\n"
    )
    with (
        node(tmp_path) as n,
        background(["tests.listeners", f"udp:{NODE_DNS}:53"], netns=n.ns),
        running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter,
    ):
        text = exporter.metrics()  # ready: the first run's result
    assert (
        value(text, "kubev_dns_resolution_success", name="node-b.kubev.test", resolver="node") == 0
    )
    assert value(text, "kubev_check_success", check="dns") == 1  # the check itself worked
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 0
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert (
        "DNS lookup of node-b.kubev.test via node failed: no answer within 0.5s" in exporter.stderr
    )


@pytest.mark.root
def test_a_hanging_lookup_is_not_started_again(tmp_path: Path) -> None:
    """The C resolver waits 2 x 30 s for a nameserver that never answers: later cycles
    find the first lookup still hanging, start no other beside it, and the check keeps
    working."""
    blocked = "DNS lookup of node-b.kubev.test via node failed: an earlier run is still blocked"
    body = (
        "    names: [node-b.kubev.test]\n    lookup_timeout: 500ms\n    interval: 2s\n"
        "    kubelet_config: null\n"
    )
    with (
        node(tmp_path, wait=30, attempts=2) as n,
        background(["tests.listeners", f"udp:{NODE_DNS}:53"], netns=n.ns),
        running(n.args(tmp_path, body), netns=n.ns, dns=True) as exporter,
    ):
        exporter.wait_for_log(blocked)
        later = after_runs(exporter, 2)
    assert value(later, "kubev_check_success", check="dns") == 1
    assert value(later, "kubev_requirement_met", requirement="dns", level="minimum") == 0
