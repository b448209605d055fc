"""The identity a node tells its peers: who it is and which ports other nodes must reach.

Served at GET /-/identity (exporter/web/server.py), with the same TLS and basic auth as
/metrics, from the latest snapshot (no work in the request path):

    {"kind": "kubev-node-exporter/identity", "version": 1, "node": "w1", "role": "worker",
     "address": "10.0.0.2", "source": "ports-check",
     "serves": [{"component": "kubelet", "port": 10250, "protocol": "tcp",
                 "listening": true}, ...]}

`serves` are the spec's remote ports (other nodes must reach them) this node requires now:
from the ports check's latest run where it runs (what the node runs decides OVN's
databases and Geneve: exporter/checks/ports.py situation()), else from the role and the
ports check's settings. `listening` is the kernel's word (sock_diag) where the ports check
ran, else null. Nothing else is in it: the node name, role, address and those ports are on
/metrics already.

A peer's document is fetched with a timeout over the whole exchange, a body size cap, no
redirects, and strict validation (known components and ports only, bounded lengths); JSON
nesting is bounded by the size cap and the decoder's recursion limit. Anything else is
garbage: that peer is probed for what its configured role (or every node) serves.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from exporter.checks.base import samples_of
from exporter.checks.ports import (
    NODE_ADDRESS_INFO,
    PORT_EXPECTED,
    PORT_LISTENING,
    PortsSettings,
    port_expectation,
)
from exporter.spec import PORTS, Condition, Expectation, PortRange, Role, Scope

if TYPE_CHECKING:
    from exporter.config import Config
    from exporter.runtime import Snapshot

IDENTITY_PATH = "/-/identity"
KIND = "kubev-node-exporter/identity"
VERSION = 1
#: a document has at most this many ports (the spec's remote rows make about 15)
MAX_SERVES = 64
MAX_TEXT = 253


@dataclass(frozen=True)
class Served:
    component: str
    port: int
    protocol: str
    #: the kernel has a listening (TCP) or bound (UDP) socket there; None: not known
    listening: bool | None = None

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.component, self.port, self.protocol)


@dataclass(frozen=True)
class PeerIdentity:
    node: str
    role: Role
    address: str
    serves: tuple[Served, ...]
    #: ports-check (what the node runs) or role (from its role and settings)
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "node": self.node,
            "role": self.role.value,
            "address": self.address,
            "source": self.source,
            "serves": [
                {
                    "component": s.component,
                    "port": s.port,
                    "protocol": s.protocol,
                    "listening": s.listening,
                }
                for s in self.serves
            ],
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def remote_rows() -> list[PortRange]:
    """The spec rows other nodes must reach, and that a connection can reach."""
    return [r for r in PORTS if r.remote and r.probe and r.scope is not Scope.POD]


_REMOTE = {row.component: row for row in remote_rows()}


def role_serves(
    role: Role,
    *,
    ovn_central: bool,
    ovn_raft: bool,
    geneve: bool,
    expectation: Mapping[str, Expectation] | None = None,
) -> tuple[Served, ...]:
    """What a node of `role` requires other nodes to reach, given what it runs.
    `expectation` overrides the spec per component (this node's own config)."""
    holds = {
        None: True,
        Condition.OVN_CENTRAL: ovn_central,
        Condition.OVN_RAFT: ovn_raft,
        Condition.GENEVE: geneve,
    }
    served: list[Served] = []
    for row in remote_rows():
        wanted = (expectation or {}).get(row.component, row.expectation(role))
        if wanted is not Expectation.REQUIRED or not holds[row.condition]:
            continue
        served.extend(Served(row.component, p, proto) for p in row.ports for proto in row.protocols)
    return tuple(served)


def every_node(geneve: bool) -> tuple[Served, ...]:
    """What every node of a multi-node cluster serves, whatever its role: what a peer that
    tells nothing about itself is probed for."""
    roles = [Role.CONTROL_PLANE, Role.WORKER]
    sets = [
        {s.key: s for s in role_serves(r, ovn_central=False, ovn_raft=False, geneve=geneve)}
        for r in roles
    ]
    common = set(sets[0]).intersection(*sets[1:])
    return tuple(s for key, s in sets[0].items() if key in common)


def _settled_address(snapshot: Snapshot, config: Config) -> str:
    """The node address without a netlink call (this runs on the event loop): the ports
    check's, else the config's, else $NODE_IP (the DaemonSet sets it)."""
    ports = snapshot.states.get("ports")
    if ports is not None and ports.output is not None:
        for sample in samples_of(ports.output, NODE_ADDRESS_INFO):
            return sample.labels[0]
    if config.node_address != "auto":
        return config.node_address
    return os.environ.get("NODE_IP", "").strip()


def of_snapshot(snapshot: Snapshot, config: Config) -> PeerIdentity:
    """This node's identity: from the ports check's latest output if it ran, else from the
    role and the ports check's settings (auto settings count as 'no' for OVN's databases,
    which only the ports check can see, and 'yes' for Geneve, a multi-node default)."""
    address = _settled_address(snapshot, config)
    ports = snapshot.states.get("ports")
    if ports is not None and ports.output is not None:
        required = {s.labels for s in samples_of(ports.output, PORT_EXPECTED) if s.value == 1}
        listening = {s.labels: s.value == 1 for s in samples_of(ports.output, PORT_LISTENING)}
        serves = []
        for row in remote_rows():
            for port in row.ports:
                for proto in row.protocols:
                    labels = (row.component, str(port), proto)
                    if labels in required:
                        serves.append(Served(row.component, port, proto, listening.get(labels)))
        return PeerIdentity(config.node(), config.role, address, tuple(serves), "ports-check")
    settings = config.settings(PortsSettings)
    overrides = {row.component: port_expectation(config, row) for row in remote_rows()}
    serves_by_role = role_serves(
        config.role,
        ovn_central=settings.ovn_central in ("clustered", "standalone"),
        ovn_raft=settings.ovn_central == "clustered",
        geneve=settings.tunnel in ("auto", "geneve") and config.role is not Role.SINGLE_NODE,
        expectation=overrides,
    )
    return PeerIdentity(config.node(), config.role, address, serves_by_role, "role")


class IdentityDocument:
    """The encoded document for the server, rebuilt when a snapshot changes what it says
    (a snapshot listener: the request handler only returns bytes)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.body = b""
        self._ports_output: object = object()

    def update(self, snapshot: Snapshot) -> None:
        ports = snapshot.states.get("ports")
        output = ports.output if ports is not None else None
        if self.body and output is self._ports_output:
            return  # nothing it depends on changed
        self._ports_output = output
        self.body = of_snapshot(snapshot, self.config).encode()


# --- the fetching side --------------------------------------------------------------------


class IdentityError(ValueError):
    """A peer's answer is not a usable identity document; the message says why."""


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise IdentityError(f"{field}: not a string of at most {MAX_TEXT} characters")
    return value


def decode(body: bytes) -> PeerIdentity:
    """Validate a peer's document strictly; IdentityError says what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise IdentityError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(data, dict):
        raise IdentityError("not a JSON object")
    if data.get("kind") != KIND or data.get("version") != VERSION:
        raise IdentityError(f"not a {KIND} version {VERSION} document")
    try:
        role = Role(_text(data.get("role"), "role"))
    except ValueError:
        raise IdentityError(f"role: unknown role {str(data.get('role'))[:40]!r}") from None
    serves_raw = data.get("serves")
    if not isinstance(serves_raw, list) or len(serves_raw) > MAX_SERVES:
        raise IdentityError(f"serves: not a list of at most {MAX_SERVES} entries")
    serves = []
    for i, item in enumerate(serves_raw):
        if not isinstance(item, dict):
            raise IdentityError(f"serves[{i}]: not an object")
        component = _text(item.get("component"), f"serves[{i}].component")
        port, protocol = item.get("port"), item.get("protocol")
        listening = item.get("listening")
        row = _REMOTE.get(component)
        if row is None:
            continue  # a component this version does not know: not probed
        if (
            isinstance(port, bool)
            or not isinstance(port, int)
            or port not in row.ports
            or protocol not in row.protocols
        ):
            raise IdentityError(f"serves[{i}]: {component} has no port {port!r}/{protocol!r}")
        if listening is not None and not isinstance(listening, bool):
            raise IdentityError(f"serves[{i}].listening: not true, false or null")
        serves.append(Served(component, port, str(protocol), listening))
    return PeerIdentity(
        node=_text(data.get("node"), "node"),
        role=role,
        address=_text(data.get("address"), "address"),
        serves=tuple(serves),
        source=_text(data.get("source", ""), "source"),
    )


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    max_bytes: int,
    limit_seconds: float,
    server_name: str | None = None,
) -> PeerIdentity | str:
    """GET a peer's identity: the identity, or why not (bounded in time and size).
    `server_name`: the name its TLS certificate must carry (default: the address)."""
    try:
        async with asyncio.timeout(limit_seconds):
            async with session.get(
                url, headers=dict(headers), allow_redirects=False, server_hostname=server_name
            ) as response:
                if response.status != 200:
                    return f"HTTP {response.status}"
                body = bytearray()
                async for chunk in response.content.iter_chunked(16 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        return f"answer larger than {max_bytes} bytes"
    except TimeoutError:
        return f"no complete answer within {limit_seconds:g}s"
    except aiohttp.ClientError as e:
        return str(e) or type(e).__name__
    except OSError as e:
        return e.strerror or str(e)
    try:
        return decode(bytes(body))
    except IdentityError as e:
        return f"not an identity document: {e}"
