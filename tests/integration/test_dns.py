"""The DNS check through the C resolver against a real dnsmasq in a network namespace.

`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so the
exporter in the namespace uses the test's resolver and never the host's.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import (
    check_config,
    ip,
    needs_root,
    network_namespace,
    only,
    running,
    value,
    veth_pair,
)

SERVER = "10.213.1.1"
ONLY_DNS = only("dns")


@contextlib.contextmanager
def resolver_namespace(nameserver: str) -> Iterator[str]:
    with network_namespace() as ns:
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
        try:
            veth_pair(ns, f"{SERVER}/24")
            yield ns
        finally:
            shutil.rmtree(etc)


@contextlib.contextmanager
def dnsmasq(ns: str, tmp_path: Path) -> Iterator[None]:
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={SERVER}",
            "--address=/ok.kubev.test/10.213.1.50",
            "--local=/nx.kubev.test/",
            "--user=root",
            "--group=root",
            f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):  # until it answers
            done = subprocess.run(
                ["ip", "netns", "exec", ns, "getent", "hosts", "ok.kubev.test"],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                break
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@needs_root
def test_resolves_and_nxdomain(tmp_path: Path) -> None:
    body = "    names: [ok.kubev.test, missing.nx.kubev.test]\n    lookup_timeout: 2s\n"
    with resolver_namespace(SERVER) as ns, dnsmasq(ns, tmp_path):
        ip(ns, "addr", "add", "169.254.20.10/32", "dev", "kvb")  # NodeLocal DNSCache's address
        with running(
            [check_config(tmp_path, "dns", body), *ONLY_DNS], netns=ns, dns=True
        ) as exporter:
            text = exporter.metrics()
    assert value(text, "kubev_dns_resolution_success", name="ok.kubev.test") == 1
    assert value(text, "kubev_dns_resolution_success", name="missing.nx.kubev.test") == 0
    assert value(text, "kubev_dns_resolution_duration_seconds", name="ok.kubev.test") is not None
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 1
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert (
        "DNS lookup of missing.nx.kubev.test failed: the name does not exist (NXDOMAIN)"
        in exporter.stderr
    )


@needs_root
def test_a_server_that_never_answers(tmp_path: Path) -> None:
    """10.213.1.77 is on the link, but nobody is there: every query goes unanswered."""
    body = (
        "    names: [ok.kubev.test]\n    lookup_timeout: 500ms\n    interval: 1s\n"
        "    timeout: 900ms\n"
    )
    with (
        resolver_namespace("10.213.1.77") as ns,
        running([check_config(tmp_path, "dns", body), *ONLY_DNS], netns=ns, dns=True) as exporter,
    ):
        text = exporter.metrics()
        time.sleep(2.5)  # further cycles while the first lookup may still hang
        later = exporter.metrics()
    assert value(text, "kubev_dns_resolution_success", name="ok.kubev.test") == 0
    assert value(text, "kubev_check_success", check="dns") == 1  # the check itself worked
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 0
    assert value(later, "kubev_check_success", check="dns") == 1
    assert value(later, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert "DNS lookup of ok.kubev.test failed: no answer within 0.5s" in exporter.stderr


@needs_root
def test_cluster_domain_adds_the_api_service_name(tmp_path: Path) -> None:
    body = "    names: [ok.kubev.test]\n    cluster_domain: cluster.local\n"
    with (
        resolver_namespace(SERVER) as ns,
        dnsmasq(ns, tmp_path),
        running([check_config(tmp_path, "dns", body), *ONLY_DNS], netns=ns, dns=True) as exporter,
    ):
        text = exporter.metrics()
    # dnsmasq knows no cluster: the API service name is looked up and fails
    assert (
        value(text, "kubev_dns_resolution_success", name="kubernetes.default.svc.cluster.local")
        == 0
    )
    assert value(text, "kubev_dns_resolution_success", name="ok.kubev.test") == 1
