"""NodeLocal DNSCache on this node, and each way it shows.

NodeLocal DNSCache "creates a dedicated dummy interface with a link local
ip(169.254.20.10/32 by default) to listen for DNS queries" (kubernetes/kubernetes
cluster/addons/dns/nodelocaldns/README.md); the interface is named by node-cache's
`-interfacename` flag, default `nodelocaldns` (kubernetes/dns cmd/node-cache/main.go:
`flag.StringVar(&params.InterfaceName, "interfacename", "nodelocaldns", "name of the
interface to be created")`). Pods reach it when kubelet's clusterDNS is that address,
or because node-cache also binds the kube-dns service address on that interface
(cluster/addons/dns/nodelocaldns/nodelocaldns.yaml: `bind __PILLAR__LOCAL__DNS__
__PILLAR__DNS__SERVER__`), so a query to the cluster DNS from the node is answered by the
local cache either way.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from exporter.fsread import read_optional
from exporter.paths import Paths

NODELOCAL_ADDRESS = "169.254.20.10"
NODELOCAL_INTERFACE = "nodelocaldns"
MAX_RESOLV_CONF_BYTES = 64 * 1024


class Evidence(StrEnum):
    """How NodeLocal DNSCache shows (the `source` label)."""

    CLUSTER_DNS = "cluster_dns"  # kubelet's clusterDNS (or the cluster_dns setting) has it
    INTERFACE = "interface"  # a link named nodelocaldns exists
    ADDRESS = "address"  # 169.254.20.10 is on a link of the node
    RESOLV_CONF = "resolv_conf"  # the node's resolv.conf names it as a nameserver


def in_cluster_dns(servers: Iterable[str]) -> bool:
    return NODELOCAL_ADDRESS in servers


def in_resolv_conf(paths: Paths) -> bool:
    """The host's resolv.conf (under --path.rootfs) lists 169.254.20.10. Blocking."""
    text = read_optional(paths.root("/etc/resolv.conf"), MAX_RESOLV_CONF_BYTES) or ""
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and fields[1:2] == [NODELOCAL_ADDRESS]:
            return True
    return False


@dataclass(frozen=True)
class LinkEvidence:
    interface: bool
    address: bool


def on_links() -> LinkEvidence:
    """Is there a link named nodelocaldns, and is 169.254.20.10 on any link, in this
    network namespace (the node's: the DaemonSet runs with hostNetwork)? Blocking; an
    OSError when netlink refuses."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        interface = bool(ipr.link_lookup(ifname=NODELOCAL_INTERFACE))
        address = any(
            a.get("IFA_ADDRESS") == NODELOCAL_ADDRESS or a.get("IFA_LOCAL") == NODELOCAL_ADDRESS
            for a in ipr.get_addr(family=socket.AF_INET)
        )
    return LinkEvidence(interface, address)
