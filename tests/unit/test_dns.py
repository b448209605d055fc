"""The dns check's reading of the host: kubelet's config (clusterDNS, clusterDomain),
/etc/hosts for the node's own name, the settings that override them, and what it asks
whom. Lookups here go only to loopback: 127.0.0.254 stands for the cluster DNS, and the
node names resolve from /etc/hosts. What the servers answer is tested against dnsmasq
in network namespaces (tests/integration/test_dns.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.checks import dns
from exporter.checks.base import samples_of
from exporter.checks.dns import DNS_SUCCESS, DnsCheck, HostFacts, hosts_names
from exporter.checks.kubeletdns import (
    MAX_KUBELET_CONFIG_BYTES,
    KubeletDns,
    parse_kubelet_dns,
    read_kubelet_dns,
)
from exporter.config import Config
from exporter.model import CheckError, OutputBuilder
from exporter.paths import Paths
from exporter.spec import Req
from exporter.verdicts import Outcome
from tests.checkrun import make, observed, run, values

CLUSTER = "127.0.0.254"  # loopback: whatever answers there, nothing leaves the machine
API = "kubernetes.default.svc.cluster.local"

#: what kubeadm writes to /var/lib/kubelet/config.yaml (trimmed), with the test's server
KUBEADM_CONFIG = f"""\
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- {CLUSTER}
clusterDomain: cluster.local
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"""


def rootfs(tmp_path: Path, kubelet: str | None = KUBEADM_CONFIG) -> Path:
    """A node tree whose rootfs holds kubelet's config (or none)."""
    tree = tmp_path / "node"
    (tree / "root" / "var" / "lib" / "kubelet").mkdir(parents=True)
    if kubelet is not None:
        (tree / "root" / "var" / "lib" / "kubelet" / "config.yaml").write_text(kubelet)
    return tree


def dns_config(**settings: object) -> Config:
    return Config(node_name="node-a").with_check("dns", **{"names": ("localhost",), **settings})


def lookups(output: object) -> dict[tuple[str, str], float]:
    return {(s.labels[0], s.labels[1]): s.value for s in samples_of(output, DNS_SUCCESS)}  # type: ignore[arg-type]


# --- kubelet's config ---------------------------------------------------------------------


def test_kubeadm_config() -> None:
    got = parse_kubelet_dns(KUBEADM_CONFIG, "config.yaml")
    assert got == KubeletDns((CLUSTER,), "cluster.local")


def test_dual_stack_and_a_trailing_dot() -> None:
    text = "clusterDNS: [10.96.0.10, 'fd00:10:96::a']\nclusterDomain: corp.example.\n"
    assert parse_kubelet_dns(text, "c") == KubeletDns(
        ("10.96.0.10", "fd00:10:96::a"), "corp.example"
    )


def test_no_dns_fields() -> None:
    assert parse_kubelet_dns("kind: KubeletConfiguration\n", "c") == KubeletDns((), None)
    assert parse_kubelet_dns("", "c") == KubeletDns((), None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "/k/config.yaml: must be a mapping (a KubeletConfiguration)"),
        ("clusterDNS: 10.96.0.10\n", "/k/config.yaml: clusterDNS must be a list of IP addresses"),
        (
            "clusterDNS: [10.96.0.10, kube-dns]\n",
            "/k/config.yaml: clusterDNS[1] must be an IP address, got 'kube-dns'",
        ),
        (
            "clusterDomain: cluster..local\n",
            "/k/config.yaml: clusterDomain: not a valid DNS name, got 'cluster..local'",
        ),
        ("clusterDomain: [a]\n", "/k/config.yaml: clusterDomain: must be a string, got a list"),
        (
            "clusterDNS: [10.96.0.10]\nclusterDNS: [10.96.0.11]\n",
            "/k/config.yaml: not valid YAML at line 2, column 1: key 'clusterDNS' is given twice",
        ),
        ("clusterDNS: [10.96.0.10\n", "/k/config.yaml: not valid YAML at line 2, column 1:"),
        ("clusterDomain: 2001-13-01\n", "/k/config.yaml: not valid YAML: a value that cannot"),
        (
            "a: " + "[" * 1100,
            "/k/config.yaml: not valid YAML at line 1, column 35: nested deeper than 32 levels",
        ),
        ("!!python/object:os.system {}\n", "/k/config.yaml: not valid YAML at line 1"),
    ],
)
def test_a_garbled_config_names_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(CheckError) as caught:
        parse_kubelet_dns(text, "/k/config.yaml")
    assert str(caught.value).startswith(message)


def test_reading_the_file(tmp_path: Path) -> None:
    assert read_kubelet_dns(tmp_path / "absent.yaml") is None
    (tmp_path / "config.yaml").write_text(KUBEADM_CONFIG)
    assert read_kubelet_dns(tmp_path / "config.yaml") == KubeletDns((CLUSTER,), "cluster.local")
    (tmp_path / "huge.yaml").write_text("#" * (MAX_KUBELET_CONFIG_BYTES + 1))
    with pytest.raises(CheckError, match="larger than 262144 bytes, refusing to parse"):
        read_kubelet_dns(tmp_path / "huge.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda key, value: f"{key}: {value}\n",
            st.sampled_from(["clusterDNS", "clusterDomain", "kind"]),
            st.text(max_size=80),
        ),
    )
)
def test_any_text_is_a_config_or_one_clear_error(text: str) -> None:
    try:
        got = parse_kubelet_dns(text, "/k/config.yaml")
    except CheckError as e:
        assert str(e).startswith("/k/config.yaml")
        return
    assert all(isinstance(address, str) for address in got.cluster_dns)


# --- the node's own name and /etc/hosts ----------------------------------------------------


def test_hosts_file_names() -> None:
    text = "127.0.0.1 localhost\n10.0.0.5 node-a.corp.example node-a # kubelet\n# 10.0.0.6 x\n"
    assert hosts_names(text) == {"localhost", "node-a.corp.example", "node-a"}


def facts(hosts: frozenset[str] | None) -> HostFacts:
    return HostFacts(None, None, hosts, False)


def test_own_name_is_skipped_when_etc_hosts_answers_it() -> None:
    check = DnsCheck(Config(node_name="Node-A"), Paths())
    out = OutputBuilder("dns", frozenset({Req.DNS}))
    assert check.node_names(facts(frozenset({"node-a"})), out) == []
    assert out.build().notes_about(Req.DNS) == [
        "Node-A (this node's name) is in /etc/hosts, so resolving it tests no DNS server: not "
        "checked; list other nodes' names in checks.dns.names"
    ]
    # not listed, or /etc/hosts unreadable: the lookup does reach the resolver's servers
    assert check.node_names(facts(frozenset({"node-b"})), out) == ["Node-A"]
    assert check.node_names(facts(None), out) == ["Node-A"]
    # configured names are resolved as they are
    named = DnsCheck(Config().with_check("dns", names=("node-b",)), Paths())
    assert named.node_names(facts(frozenset({"node-b"})), out) == ["node-b"]


def test_own_name_in_the_hosts_file_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.5 node-a\n")
    monkeypatch.setattr(dns, "HOSTS_FILE", hosts)
    config = Config(node_name="node-a").with_check("dns", kubelet_config=None)
    out = run(make("dns", rootfs(tmp_path, None), config))
    assert lookups(out) == {}
    assert observed(out)["dns"] is None  # nothing was asked: unknown, not met
    assert DnsCheck.detail(Req.DNS, out, Outcome.UNKNOWN) == (
        "node-a (this node's name) is in /etc/hosts, so resolving it tests no DNS server: not "
        "checked; list other nodes' names in checks.dns.names; no cluster DNS server is "
        "configured (cluster_dns, kubelet_config): the cluster DNS is not checked; set "
        "checks.dns.cluster_dns and cluster_domain to check it anyway; nothing to resolve: "
        "set checks.dns.names or cluster_dns"
    )


# --- whom the check asks -------------------------------------------------------------------


def test_cluster_names_go_to_kubelets_cluster_dns(tmp_path: Path) -> None:
    out = run(
        make(
            "dns",
            rootfs(tmp_path),
            dns_config(cluster_names=("kube-dns.kube-system.svc.cluster.local",)),
        )
    )
    got = lookups(out)
    assert set(got) == {
        ("localhost", "node"),
        (API, f"cluster:{CLUSTER}"),
        ("kube-dns.kube-system.svc.cluster.local", f"cluster:{CLUSTER}"),
    }
    assert got[("localhost", "node")] == 1
    assert values(out)[("kubev_check_items_dropped", ("dns", "lookups"))] == 0
    assert values(out)[("kubev_dns_nodelocal_cache_evidence", ("cluster_dns",))] == 0
    assert not out.errors


def test_settings_override_kubelet(tmp_path: Path) -> None:
    """cluster_dns and cluster_domain given: the (garbled) kubelet config is not read."""
    config = dns_config(cluster_dns=("127.0.0.253", "::1"), cluster_domain="corp.example")
    out = run(make("dns", rootfs(tmp_path, "clusterDNS: ["), config))
    assert set(lookups(out)) == {
        ("localhost", "node"),
        ("kubernetes.default.svc.corp.example", "cluster:127.0.0.253"),
        ("kubernetes.default.svc.corp.example", "cluster:[::1]"),
    }
    assert not out.errors


def test_the_domain_alone_is_overridden(tmp_path: Path) -> None:
    out = run(make("dns", rootfs(tmp_path), dns_config(cluster_domain="corp.example")))
    assert ("kubernetes.default.svc.corp.example", f"cluster:{CLUSTER}") in lookups(out)


def test_no_kubelet_config_is_a_note_not_an_error(tmp_path: Path) -> None:
    tree = rootfs(tmp_path, None)
    out = run(make("dns", tree, dns_config()))
    assert set(lookups(out)) == {("localhost", "node")}
    assert observed(out)["dns"] == 1
    assert not out.errors
    assert out.notes_about(Req.DNS) == [
        f"{tree}/root/var/lib/kubelet/config.yaml: no kubelet config (not a Kubernetes node "
        "yet?): the cluster DNS is not checked; set checks.dns.cluster_dns and cluster_domain "
        "to check it anyway"
    ]


def test_a_garbled_kubelet_config_fails_the_dns_requirement_only(tmp_path: Path) -> None:
    tree = rootfs(tmp_path, "clusterDNS: [10.96.0.10, kube-dns]\n")
    out = run(make("dns", tree, dns_config()))
    message = (
        f"{tree}/root/var/lib/kubelet/config.yaml: clusterDNS[1] must be an IP address, "
        "got 'kube-dns'"
    )
    assert out.errors_about(Req.DNS) == [message]
    assert observed(out)["dns"] is None
    assert lookups(out) == {("localhost", "node"): 1}  # the node's names are still checked


def test_no_cluster_dns_in_kubelets_config(tmp_path: Path) -> None:
    tree = rootfs(tmp_path, "kind: KubeletConfiguration\nclusterDomain: cluster.local\n")
    out = run(make("dns", tree, dns_config()))
    assert set(lookups(out)) == {("localhost", "node")}
    assert out.notes_about(Req.DNS)[0].startswith(
        f"{tree}/root/var/lib/kubelet/config.yaml lists no clusterDNS (kubelet gives pods no "
        "cluster DNS)"
    )


def test_no_cluster_domain_asks_only_the_configured_names(tmp_path: Path) -> None:
    tree = rootfs(tmp_path, f"clusterDNS: [{CLUSTER}]\n")
    out = run(make("dns", tree, dns_config(cluster_names=("registry.corp.example",))))
    assert set(lookups(out)) == {
        ("localhost", "node"),
        ("registry.corp.example", f"cluster:{CLUSTER}"),
    }
    assert out.notes_about(Req.DNS)[0].startswith("no cluster domain (clusterDomain in ")


def test_a_name_or_server_listed_twice_is_one_series(tmp_path: Path) -> None:
    config = dns_config(
        names=("localhost", "localhost"),
        cluster_dns=("127.0.0.254", "127.0.0.254"),
        cluster_names=(API,),
    )
    out = run(make("dns", rootfs(tmp_path), config))
    assert [s.labels for s in samples_of(out, DNS_SUCCESS)] == [
        ("localhost", "node"),
        (API, "cluster:127.0.0.254"),
    ]


def test_lookups_are_capped(tmp_path: Path) -> None:
    config = dns_config(
        names=("localhost", "localhost."),
        cluster_dns=("127.0.0.253", "127.0.0.254"),
        cluster_names=("a.cluster.local",),
        max_items=3,
    )
    out = run(make("dns", rootfs(tmp_path), config))
    # 2 node names, 2 servers x (kubernetes.default.svc.cluster.local, a.cluster.local)
    assert len(lookups(out)) == 3
    assert values(out)[("kubev_check_items_dropped", ("dns", "lookups"))] == 3


def test_detail_names_the_resolver_of_each_failure() -> None:
    out = OutputBuilder("dns", frozenset({Req.DNS}))
    out.add(DNS_SUCCESS, 0, name=API, resolver="cluster:10.96.0.10")
    out.add(DNS_SUCCESS, 1, name="node-b", resolver="node")
    out.add(DNS_SUCCESS, 0, name="registry.example", resolver="node")
    assert DnsCheck.detail(Req.DNS, out.build(), Outcome.FAIL) == (
        f"not resolving: {API} via cluster:10.96.0.10, registry.example via node"
    )


def test_settings_in_the_config_file() -> None:
    from exporter.config import from_mapping
    from exporter.settings import ConfigError

    got = from_mapping(
        {"checks": {"dns": {"cluster_dns": ["10.96.0.10", "fd00::a"], "kubelet_config": None}}}
    ).check("dns")
    assert got.cluster_dns == ("10.96.0.10", "fd00::a")  # type: ignore[attr-defined]
    assert got.kubelet_config is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"checks.dns.cluster_dns\[1\]: must be an IP address"):
        from_mapping({"checks": {"dns": {"cluster_dns": ["10.96.0.10", "kube-dns"]}}})
    with pytest.raises(ConfigError, match=r"checks\.dns\.kubelet_config: must be an absolute path"):
        from_mapping({"checks": {"dns": {"kubelet_config": "config.yaml"}}})
