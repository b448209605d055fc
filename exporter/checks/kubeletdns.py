"""The cluster DNS that kubelet gives pods: `clusterDNS` and `clusterDomain` of its config.

kubeadm writes kubelet's configuration to /var/lib/kubelet/config.yaml
(cmd/kubeadm/app/constants/constants.go: `KubeletRunDirectory = "/var/lib/kubelet"`,
`KubeletConfigurationFileName = "config.yaml"`) and fills both fields
(cmd/kubeadm/app/componentconfigs/kubelet.go: `kc.config.ClusterDNS = []string{clusterDNS}`,
`kc.config.ClusterDomain = cfg.Networking.DNSDomain`). In KubeletConfiguration v1beta1
(staging/src/k8s.io/kubelet/config/v1beta1/types.go) `clusterDNS` is "a list of IP
addresses for the cluster DNS server" and `clusterDomain` a string.

The file is read with a size bound and parsed as safe YAML (no object construction, a key
given twice refused); errors name the file and the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from exporter import yamlload
from exporter.fsread import read_text
from exporter.model import CheckError
from exporter.settings import ConfigError, parse_hostname

KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
#: kubeadm's file is about 1 KiB; anything near this is not a kubelet config
MAX_KUBELET_CONFIG_BYTES = 256 * 1024


@dataclass(frozen=True)
class KubeletDns:
    cluster_dns: tuple[str, ...]  # IP addresses, as kubelet lists them
    cluster_domain: str | None  # without a trailing dot


def parse_kubelet_dns(text: str, source: str) -> KubeletDns:
    """clusterDNS and clusterDomain from the text of a kubelet config file; CheckError
    naming `source` and the field when they are there but wrong."""
    try:
        data = yamlload.safe_load(text)
    except yaml.YAMLError as e:
        raise CheckError(f"{source}: {yamlload.describe(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CheckError(f"{source}: must be a mapping (a KubeletConfiguration)")
    servers = data.get("clusterDNS")
    if servers is None:
        servers = []
    if not isinstance(servers, list):
        raise CheckError(f"{source}: clusterDNS must be a list of IP addresses")
    addresses = []
    for i, item in enumerate(servers):
        try:
            addresses.append(str(ipaddress.ip_address(str(item))))
        except ValueError:
            raise CheckError(
                f"{source}: clusterDNS[{i}] must be an IP address, got {str(item)[:80]!r}"
            ) from None
    domain = data.get("clusterDomain")
    if domain is not None:
        try:
            domain = parse_hostname(domain, f"{source}: clusterDomain").rstrip(".")
        except ConfigError as e:
            raise CheckError(str(e)[:300]) from None
    return KubeletDns(tuple(addresses), domain or None)


def read_kubelet_dns(path: Path) -> KubeletDns | None:
    """The file's DNS fields, or None when there is no file (not a Kubernetes node yet).
    Blocking: call through the check's gate."""
    if not path.exists():
        return None
    text = read_text(path, MAX_KUBELET_CONFIG_BYTES)
    return parse_kubelet_dns(text, str(path))
