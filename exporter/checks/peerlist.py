"""Who this node's peers are: a static list, a file re-read when it changes, or a DNS name.

A peer is an address, and if known its role (`10.0.0.2=control-plane`, with
`+ovn-central` for a node that will run OVN's databases): the peers check then probes what
that role serves, until the peer tells more about itself (exporter/checks/peerid.py).

- static list (config `static:`, `check --peers`): `ADDR[=ROLE[+ovn-central]]` items.
- file (config `file:`, `check --peers-file`): Prometheus file_sd style (YAML or JSON, a
  list of `{targets: [ADDR or ADDR:PORT], labels: {role: ROLE, ovn_central: "true"}}`;
  PORT is where the peer's exporter serves its identity), or plain text with one
  `ADDR[=ROLE]` per line (# comments). Re-read only when its size, mtime or inode change; a
  broken file keeps the last good list.
- DNS name: the exporter's headless Service (`clusterIP: None`). Its pods use the host
  network, so its A (or AAAA) records are the node addresses. No API access or RBAC is
  needed. The lookup goes through a `Resolver`, an async callable name -> addresses; the
  default asks the C library (getaddrinfo) in a thread, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from exporter import yamlload
from exporter.blocking import BlockingGate
from exporter.checks import dnsclient
from exporter.checks.kubeletdns import read_kubelet_dns
from exporter.model import CheckError
from exporter.settings import ConfigError, kind, shown
from exporter.spec import Role

#: a peer list file larger than this is refused (a thousand peers take about 20 KiB)
MAX_FILE_BYTES = 1024 * 1024
#: the YAML parse of a peer list: the file's size, and room for 5,000 peers (the default
#: max_peers) each in its own target group with two labels, ~12 values apiece, twice over.
#: Aliases count as copies, so an alias-heavy file is refused, not expanded.
FILE_BOUNDS = yamlload.Bounds(max_bytes=MAX_FILE_BYTES, max_nodes=120_000, max_text=MAX_FILE_BYTES)
OVN_CENTRAL_SUFFIX = "+ovn-central"

#: name -> the addresses it resolves to (raises OSError or CheckError naming the failure)
Resolver = Callable[[str], Awaitable[Sequence[str]]]


@dataclass(frozen=True)
class PeerSpec:
    address: str
    role: Role | None = None
    #: the peer runs (or will run) OVN's databases, clustered (install.sh's default)
    ovn_central: bool = False
    #: where its exporter serves the identity endpoint, if not the configured port
    port: int | None = None

    def describe(self) -> str:
        role = f"={self.role.value}" if self.role else ""
        return self.address + role + (OVN_CENTRAL_SUFFIX if self.ovn_central else "")


def _address(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ConfigError(f"{where}: {shown(text)} is not an IP address") from None


def _role(text: str, where: str) -> tuple[Role, bool]:
    central = text.endswith(OVN_CENTRAL_SUFFIX)
    name = text.removesuffix(OVN_CENTRAL_SUFFIX)
    try:
        return Role(name), central
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ConfigError(
            f"{where}: unknown role {name!r} in {text!r} (roles: {roles}, optionally "
            f"followed by {OVN_CENTRAL_SUFFIX})"
        ) from None


def parse_peer(text: str, where: str) -> PeerSpec:
    """`ADDR`, `ADDR=ROLE` or `ADDR=ROLE+ovn-central`."""
    address, sep, role = text.strip().partition("=")
    if not sep:
        return PeerSpec(_address(address, where))
    found, central = _role(role.strip(), where)
    return PeerSpec(_address(address, where), found, central)


def parse_peer_list(text: str, where: str) -> tuple[PeerSpec, ...]:
    """Comma-separated peers, as `check --peers` takes them."""
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{where}: no peers given")
    return tuple(parse_peer(item, f"{where}[{i}]") for i, item in enumerate(items))


def parse_static(value: object, where: str) -> tuple[PeerSpec, ...]:
    """The config's `static:` list."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of ADDR or ADDR=ROLE, got {kind(value)}")
    peers = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{i}]: must be ADDR or ADDR=ROLE, got {kind(item)}")
        peers.append(parse_peer(item, f"{where}[{i}]"))
    return tuple(peers)


def _target(text: str, where: str) -> tuple[str, int | None]:
    """file_sd target: ADDR, ADDR:PORT, [V6] or [V6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"{where}: bad port in {shown(text)}")
    return _address(host, where), (int(port) if port is not None else None)


def parse_file_text(text: str, where: str, limit: int) -> list[PeerSpec]:
    """A peer list file: file_sd style (a YAML/JSON list of target groups) or plain lines.
    At most `limit` peers are read (the check counts the rest as dropped)."""
    try:
        data = yamlload.safe_load(text, FILE_BOUNDS)
    except yaml.YAMLError:
        data = text  # not YAML at all: it may still be plain lines
    peers: list[PeerSpec] = []
    if isinstance(data, list):
        for g, group in enumerate(data):
            at = f"{where}[{g}]"
            if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
                raise ConfigError(f"{at}: must be a mapping with a list of targets")
            labels = group.get("labels") or {}
            if not isinstance(labels, dict):
                raise ConfigError(f"{at}.labels: must be a mapping, got {kind(labels)}")
            role, central = None, False
            if "role" in labels:
                role, central = _role(str(labels["role"]), f"{at}.labels.role")
            if str(labels.get("ovn_central", "")).lower() == "true":
                central = True
            for t, target in enumerate(group["targets"]):
                if not isinstance(target, str):
                    raise ConfigError(f"{at}.targets[{t}]: must be a string, got {kind(target)}")
                address, port = _target(target, f"{at}.targets[{t}]")
                peers.append(PeerSpec(address, role, central, port))
                if len(peers) > limit:
                    return peers
        return peers
    if data is not None and not isinstance(data, str | int | float):
        raise ConfigError(f"{where}: must be a list of target groups or lines of ADDR[=ROLE]")
    for n, line in enumerate(text.splitlines(), 1):
        for item in line.split("#", 1)[0].replace(",", " ").split():
            peers.append(parse_peer(item, f"{where}:{n}"))
            if len(peers) > limit:
                return peers
    return peers


class PeerFile:
    """A peer list file, parsed again only when it changes (blocking: call in a thread)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._stamp: tuple[int, int, int] | None = None
        self._peers: list[PeerSpec] | None = None

    def read(self) -> tuple[list[PeerSpec], str | None]:
        """The peers, and why the file could not be read this time (the last good list
        is kept then; CheckError when there is none)."""
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
            if stamp == self._stamp and self._peers is not None:
                return self._peers, None
            if stat.st_size > MAX_FILE_BYTES:
                raise CheckError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes")
            with self.path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise CheckError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes")
            text = data.decode("utf-8", errors="replace")
            peers = parse_file_text(text, str(self.path), self.limit)
        except OSError as e:
            problem = f"{self.path}: {e.strerror or e}"
        except (CheckError, ConfigError) as e:
            problem = str(e)
        else:
            self._stamp, self._peers = stamp, peers
            return peers, None
        if self._peers is None:
            raise CheckError(problem)
        return self._peers, f"{problem}; keeping the last good list"


def getaddrinfo_resolver(timeout: float, family: int = socket.AF_UNSPEC) -> Resolver:
    """The C library's resolver (/etc/hosts, resolv.conf), in a thread, bounded by
    `timeout`. A lookup still hanging is not started again until it returns."""
    gate = BlockingGate("peers-dns", timed=True)

    def lookup(name: str) -> list[str]:
        found = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in found))

    async def resolve(name: str) -> Sequence[str]:
        try:
            async with asyncio.timeout(timeout):
                return await gate.run(lambda: lookup(name))
        except TimeoutError:
            raise CheckError(f"DNS lookup of {name}: no answer within {timeout:g}s") from None
        except socket.gaierror as e:
            raise CheckError(f"DNS lookup of {name}: {e.strerror or e}") from None

    return resolve


def cluster_dns_resolver(
    kubelet_config: Path, timeout: float, fallback: Resolver, port: int = dnsclient.DNS_PORT
) -> Resolver:
    """Ask the cluster DNS that kubelet gives pods (clusterDNS in its config) for the name.
    The exporter's pod resolves through the node's resolver (dnsPolicy: Default, so the DNS
    check can judge the node's own), which does not know a cluster Service's name; the
    cluster DNS does. Without a kubelet config, or one that lists no cluster DNS (a host
    that is not a Kubernetes node yet, a test), the node's resolver: `fallback`."""
    gate = BlockingGate("peers-kubelet-config")

    async def resolve(name: str) -> Sequence[str]:
        kubelet = await gate.run(lambda: read_kubelet_dns(kubelet_config))
        if kubelet is None or not kubelet.cluster_dns:
            return await fallback(name)
        reasons = []
        for server in kubelet.cluster_dns:
            try:
                answer = await dnsclient.resolve(server, name, timeout, port=port)
            except dnsclient.LookupFailed as e:
                reasons.append(f"{server}: {e}")
                continue
            return answer.addresses
        raise CheckError(f"DNS lookup of {name} at the cluster DNS: {'; '.join(reasons)}")

    return resolve
