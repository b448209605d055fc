"""The DNS check through the C resolver against a real dnsmasq in a network namespace.

`ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so the
exporter in the namespace uses the test's resolver and never the host's.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    check_config,
    ip,
    network_namespace,
    only,
    running,
    value,
    veth_pair,
    wait_until,
)

SERVER = "10.213.1.1"
ONLY_DNS = only("dns")
#: one run of the check, with room for a busy machine (its threads run at nice 10)
ONE_RUN = "    interval: 1h\n    timeout: 1m\n"


@contextlib.contextmanager
def resolver_namespace(nameserver: str, wait: int = 1, attempts: int = 1) -> Iterator[str]:
    """A namespace whose resolv.conf names `nameserver`; the C resolver asks `attempts`
    times and waits `wait` seconds for an answer each time."""
    with network_namespace() as ns:
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(
            f"nameserver {nameserver}\noptions timeout:{wait} attempts:{attempts}\n"
        )
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

    def answers() -> bool:
        assert proc.poll() is None, "dnsmasq exited"
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "getent", "hosts", "ok.kubev.test"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    try:
        wait_until(answers, "dnsmasq answering")
        yield
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.root
def test_resolves_and_nxdomain(tmp_path: Path) -> None:
    body = "    names: [ok.kubev.test, missing.nx.kubev.test]\n    lookup_timeout: 2s\n" + ONE_RUN
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


def silent_neighbour(ns: str, address: str) -> None:
    """Packets to `address` leave on kva (a permanent neighbour entry) and go unanswered."""
    ip(ns, "neigh", "add", address, "lladdr", "02:00:00:00:00:77", "dev", "kva", "nud", "permanent")


#: never answered: 10.213.1.77 is on the link (a fixed neighbour entry, so no failed ARP
#: ends the wait early) but nobody is there. The C resolver waits 2 x 30 s for it.
SILENT = "10.213.1.77"


@pytest.mark.root
def test_a_server_that_never_answers(tmp_path: Path) -> None:
    """The lookup gives up after lookup_timeout; the check itself works and says why."""
    body = "    names: [ok.kubev.test]\n    lookup_timeout: 500ms\n" + ONE_RUN
    with resolver_namespace(SILENT, wait=30, attempts=2) as ns:
        silent_neighbour(ns, SILENT)
        config = check_config(tmp_path, "dns", body)
        with running([config, *ONLY_DNS], netns=ns, dns=True) as exporter:
            text = exporter.metrics()  # ready: the first run's result
    assert value(text, "kubev_dns_resolution_success", name="ok.kubev.test") == 0
    assert value(text, "kubev_check_success", check="dns") == 1  # the check itself worked
    assert value(text, "kubev_dns_nodelocal_cache_detected") == 0
    assert value(text, "kubev_requirement_met", requirement="dns", level="minimum") == 0
    assert "DNS lookup of ok.kubev.test failed: no answer within 0.5s" in exporter.stderr


@pytest.mark.root
def test_a_hanging_lookup_is_not_started_again(tmp_path: Path) -> None:
    """Later cycles find the first lookup still waiting in the resolver (60 s): they start
    no other beside it, and the check keeps working (a check that ran out of time, as a
    busy machine can make one, only delays this)."""
    blocked = "DNS lookup of ok.kubev.test failed: an earlier run is still blocked"
    body = "    names: [ok.kubev.test]\n    lookup_timeout: 500ms\n    interval: 2s\n"
    with resolver_namespace(SILENT, wait=30, attempts=2) as ns:
        silent_neighbour(ns, SILENT)
        config = check_config(tmp_path, "dns", body)
        with running([config, *ONLY_DNS], netns=ns, dns=True) as exporter:
            later = exporter.wait_for(
                lambda t: (
                    blocked in exporter.log() and value(t, "kubev_check_success", check="dns") == 1
                ),
                "a successful run beside the hanging lookup",
            )
    assert value(later, "kubev_check_success", check="dns") == 1
    assert value(later, "kubev_dns_resolution_success", name="ok.kubev.test") == 0
    assert value(later, "kubev_requirement_met", requirement="dns", level="minimum") == 0


@pytest.mark.root
def test_cluster_domain_adds_the_api_service_name(tmp_path: Path) -> None:
    body = "    names: [ok.kubev.test]\n    cluster_domain: cluster.local\n" + ONE_RUN
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
