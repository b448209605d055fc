"""Peers: can this node reach the ports its peers must serve to other nodes?

Every other probe of the exporter starts on the node and targets its own address, which
never crosses a firewall. The classic install failure is a host or cloud firewall that
drops 10250, 6443, 2379-2380, 6641/6642 or 6081/udp between nodes; this check probes
them from each node to every other, all the time, and `check --peers` before install.

- Peers come from a static list, a file (file_sd style, re-read on change) or the DNS
  name of the exporter's headless Service (exporter/checks/peerlist.py). This node's own
  address is left out.
- What to probe on a peer: what it says it serves (GET /-/identity, exporter/checks/
  peerid.py: its role and what it runs, from its own ports check), else what its
  configured role serves, else what every node serves (kubelet, kube-proxy, kube-ovn-cni,
  Geneve). Only the spec's remote rows: ports other nodes must reach.
- How: exporter/checks/peerprobe.py. States: open, reset (reachable, nothing listens:
  the peer's own ports check judges that), filtered (a firewall), unreachable (no route,
  or the peer is off the link: no ARP/NDP answer), unknown (UDP silence where Geneve may
  listen). A pair fails when filtered or unreachable; peer_reachability is met when no
  pair fails.
- How much: at most probes_per_cycle pairs per cycle, failing pairs first, then a
  rotation over all pairs (exporter/checks/peerschedule.py): every pair is probed within
  kubev_peer_full_round_seconds. Series: per (component, port) counts of peers in each
  state, and one series per failing pair, at most max_items.

Preflight (`check --peers`, before install): nothing listens yet, so reset is a pass,
a silent UDP port was dropped (it would have drawn ICMP port unreachable), and no
identity is asked for. docs/peers.md says more.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from exporter.blocking import BlockingGate, lower_priority
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.checks.kubeletdns import KUBELET_CONFIG
from exporter.checks.nodeaddr import resolve
from exporter.checks.peerid import (
    IDENTITY_PATH,
    PeerIdentity,
    Served,
    every_node,
    fetch,
    remote_rows,
    role_serves,
)
from exporter.checks.peerlist import (
    PeerFile,
    PeerSpec,
    Resolver,
    cluster_dns_resolver,
    getaddrinfo_resolver,
    parse_static,
)
from exporter.checks.peerprobe import FAILING, Result, State, Target, probe_all
from exporter.checks.peerschedule import Pair, Rotation
from exporter.checks.ports import PortsSettings
from exporter.fsread import read_text
from exporter.metrics import ITEMS_DROPPED, MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder, Table
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    ConfigError,
    choice,
    key_of,
    kind,
    parse_bool,
    parse_duration,
    parse_optional_abs_path,
    parse_optional_hostname,
    parse_positive_int,
    section,
    setting,
    show_duration,
    shown,
)
from exporter.spec import Req, Role
from exporter.verdicts import Outcome
from exporter.web import DEFAULT_PORT

if TYPE_CHECKING:
    from exporter.config import Config

#: identity fetches in flight at once
IDENTITY_CONNECTIONS = 16
#: share of the run's timeout the identity fetches may take; the probes get the rest
IDENTITY_SHARE = 0.3
#: the run stops starting probes when this share of its timeout is spent, less one probe
PROBE_SHARE = 0.8
#: blocked pairs the report row names; the rest are counted (the page lists max_items)
DETAIL_PAIRS = 16
MAX_PASSWORD_BYTES = 4096
#: a `check` run probes every pair at once, bounded by this
ONE_SHOT_SECONDS = 300.0
ONE_SHOT_CONCURRENCY = 256
#: neighbour states that mean no ARP/NDP answer (linux/neighbour.h)
NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
STATES = tuple(State)
UNPROBED = "unprobed"

METRICS = MetricGroup("peers")
PEERS = METRICS.gauge(
    "kubev_peers",
    "Peers this node probes, by where they were found (dns, static, file); its own "
    "address left out.",
    ("source",),
)
PEER_DISCOVERY = METRICS.gauge(
    "kubev_peer_discovery_success",
    "1 if the peer source answered in the last run (a failing one keeps its last good list).",
    ("source",),
)
PEER_IDENTITIES = METRICS.gauge(
    "kubev_peer_identities",
    "Peers by what is known of them: identity (their /-/identity answered), failed (it did "
    "not: probed for their role, or what every node serves), pending (not asked yet), off "
    "(not asked: preflight, or identity fetching is off).",
    ("result",),
)
PEER_PORTS = METRICS.gauge(
    "kubev_peer_ports",
    "Peers whose port is in each state, as last probed from this node: open, reset "
    "(reachable, nothing listens), filtered (a firewall), unreachable (no route, peer off "
    "the link), unknown (UDP silence), error, unprobed (not yet in the rotation).",
    ("component", "port", "protocol", "state"),
)
PEER_UNREACHABLE = METRICS.gauge(
    "kubev_peer_unreachable",
    "1 for each peer port this node cannot reach (state filtered or unreachable); at most "
    'max_items series, the rest counted in kubev_check_items_dropped{kind="pairs"}.',
    ("peer", "component", "port", "protocol", "state"),
)
PEER_PAIRS = METRICS.gauge(
    "kubev_peer_pairs",
    "(peer, port) pairs this node must reach.",
)
PEER_PROBES = METRICS.gauge(
    "kubev_peer_run_probes",
    "Probes made in the last run (at most probes_per_cycle).",
)
PEER_PROBES_TOTAL = METRICS.counter(
    "kubev_peer_probes_total",
    "Probes made since the exporter started.",
)
PEER_FULL_ROUND = METRICS.gauge(
    "kubev_peer_full_round_seconds",
    "Time in which every pair is probed at least once at the current budget and failures: "
    "ceil(pairs / rotation share) x interval (one round more for a peer that just joined).",
)
PEER_OLDEST = METRICS.gauge(
    "kubev_peer_oldest_result_age_seconds",
    "Age of the least recently probed pair's result.",
)


def _port(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{where}: must be a port (1-65535), got {shown(value)}")
    return value


def _components(value: object, where: str) -> tuple[str, ...]:
    known = sorted({row.component for row in remote_rows()})
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of components, got {kind(value)}")
    for i, item in enumerate(value):
        if item not in known:
            raise ConfigError(
                f"{where}[{i}]: {item!r} is not a port other nodes reach (known: "
                f"{', '.join(known)})"
            )
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class IdentityTls:
    ca_file: str | None = setting(
        None, parse=parse_optional_abs_path, doc="CA bundle that signed the peers' certificates"
    )
    cert_file: str | None = setting(
        None, parse=parse_optional_abs_path, doc="client certificate, where peers ask for one"
    )
    key_file: str | None = setting(None, parse=parse_optional_abs_path, doc="its private key")
    server_name: str | None = setting(
        None,
        parse=parse_optional_hostname,
        doc="name the peers' certificates carry (null: the peer's address)",
    )
    insecure_skip_verify: bool = setting(
        False, parse=parse_bool, doc="accept any certificate (the connection stays encrypted)"
    )


@dataclass(frozen=True)
class IdentitySettings:
    enabled: bool = setting(True, parse=parse_bool, doc="ask each peer who it is (GET /-/identity)")
    port: int = setting(DEFAULT_PORT, parse=_port, doc="where the peers' exporters listen")
    scheme: str = setting("http", parse=choice(("http", "https")), doc="https: see tls")
    timeout: float = setting(
        1.0, parse=parse_duration, show=show_duration, doc="each fetch, the whole exchange"
    )
    max_bytes: int = setting(16 * 1024, parse=parse_positive_int, doc="a larger answer is garbage")
    refresh: float = setting(
        300.0, parse=parse_duration, show=show_duration, doc="ask each peer again after this"
    )
    per_cycle: int = setting(64, parse=parse_positive_int, doc="fetches per run at most")
    username: str | None = setting(
        None,
        parse=lambda v, w: None if v is None else str(v),
        doc="basic auth user, where the peers' --web.config.file asks for one",
    )
    password_file: str | None = setting(
        None, parse=parse_optional_abs_path, doc="its password, read on every run"
    )
    tls: IdentityTls = section(IdentityTls, "TLS for scheme https")


@dataclass(frozen=True, kw_only=True)
class PeersSettings(CheckSettings):
    dns_name: str | None = setting(
        None,
        parse=parse_optional_hostname,
        doc="the exporter's headless Service: its A/AAAA records are the node addresses "
        "(asked of kubelet's clusterDNS, else the node's resolver)",
    )
    dns_timeout: float = setting(
        2.0, parse=parse_duration, show=show_duration, doc="the DNS lookup"
    )
    static: tuple[PeerSpec, ...] = setting(
        (), parse=parse_static, doc="[ADDR or ADDR=ROLE, ...], ROLE may end in +ovn-central"
    )
    file: str | None = setting(
        None,
        parse=parse_optional_abs_path,
        doc="file_sd style (targets, labels.role) or ADDR[=ROLE] lines; re-read on change",
    )
    probe_timeout: float = setting(
        1.0, parse=parse_duration, show=show_duration, doc="each probe; no answer: filtered"
    )
    probes_per_cycle: int = setting(
        256, parse=parse_positive_int, doc="probes per run; the rest rotate through later runs"
    )
    concurrency: int = setting(64, parse=parse_positive_int, doc="probes in flight at once")
    max_peers: int = setting(5000, parse=parse_positive_int, doc="peers at most")
    skip: tuple[str, ...] = setting(
        (), parse=_components, doc="components not probed, e.g. [etcd] where workers may not"
    )
    preflight: bool = setting(
        False,
        parse=parse_bool,
        doc="before install (check --peers sets it): UDP silence is a drop, no identities",
    )
    identity: IdentitySettings = section(IdentitySettings, "the peers' identity endpoint")

    def settle(self, given: set[str], where: str) -> CheckSettings:
        settled = super().settle(given, where)
        assert isinstance(settled, PeersSettings)
        if "enabled" not in given and (settled.dns_name or settled.static or settled.file):
            settled = replace(settled, enabled=True)  # configured peers switch it on
        if settled.probe_timeout >= settled.timeout:
            raise ConfigError(
                f"{key_of(where, 'probe_timeout')}: must be shorter than the timeout "
                f"({settled.timeout:g}s), got {settled.probe_timeout:g}s"
            )
        return settled


@dataclass
class Known:
    """What this node knows of a peer's identity."""

    identity: PeerIdentity | None = None
    failure: str | None = None
    next_due: float = 0.0


@dataclass
class Local:
    """What a run reads from this node (blocking): its address, the peer file, the
    identity fetch's credentials."""

    address: str
    file_peers: list[PeerSpec] | None = None
    file_problem: str | None = None
    file_error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | bool = True


def silent_peers_off_link(addresses: set[str]) -> set[str]:
    """Of these addresses, those whose neighbour entry says no ARP/NDP answer came: the
    peer is down or not on the link (blocking, netlink)."""
    if not addresses:
        return set()
    from pyroute2 import IPRoute

    found = set()
    with IPRoute() as ipr:
        for entry in ipr.get_neighbours():
            address = entry.get_attr("NDA_DST")
            if address in addresses and entry["state"] & (NUD_INCOMPLETE | NUD_FAILED):
                found.add(str(address))
    return found


def _pair_text(pair: Pair, name: str | None) -> str:
    who = f"{pair.peer} ({name})" if name else pair.peer
    return f"{who} {pair.component} {pair.port}/{pair.protocol}"


class PeersCheck(Check[PeersSettings]):
    name = "peers"
    area = ("peers", "Peers")
    settings_type = PeersSettings
    defaults = PeersSettings(enabled=False, interval=15.0, timeout=10.0, max_items=256)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.PEER_REACHABILITY,
            "KubevPeerPortBlocked",
            "Open each blocked port between the nodes: the host firewall on both sides "
            "(nft list ruleset, firewall-cmd --list-all, iptables -S) and the cloud security "
            "group; filtered means dropped or rejected, unreachable means no route or the "
            "peer is down.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        """Each blocked pair: peer address, port, state and how (dropped, rejected by whom,
        no route), as many as DETAIL_PAIRS."""
        table = next((t for t in output.tables if t.key == "peers-blocked"), None)
        blocked = [
            f"{peer} {component} {port} {state} ({how})"
            for peer, _, component, port, state, how, _ in (table.rows if table else ())
        ]
        dropped = next(
            (
                int(s.value)
                for s in samples_of(output, ITEMS_DROPPED)
                if s.labels == ("peers", "pairs")
            ),
            0,
        )
        total = len(blocked) + dropped
        if total:
            shown = ", ".join(blocked[:DETAIL_PAIRS])
            more = total - min(len(blocked), DETAIL_PAIRS)
            return f"{total} blocked: {shown}" + (f", and {more} more" if more else "")
        return super().detail(requirement, output, outcome)

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self.probe_gate = BlockingGate("peers-probe", timed=True)  # probes time answers
        #: name -> addresses; the default asks the C library (a seam: tests and other
        #: resolvers plug in here)
        self.resolver: Resolver | None = None
        self.rotation: Rotation | None = None
        self.known: dict[str, Known] = {}
        self.last_dns: list[str] | None = None
        self.probes_total = 0
        #: per peer: what it serves, its pairs, those where UDP silence is a drop
        self._pairs_of: dict[str, tuple[tuple[Served, ...], list[Pair], list[Pair]]] = {}
        self._role_serves: dict[tuple[Role | None, bool, bool], tuple[Served, ...]] = {}
        file = self.settings.file
        self.file = PeerFile(Path(file), self.settings.max_peers) if file else None

    # --- blocking parts ---------------------------------------------------------------

    def _read_local(self, identities: bool) -> Local:
        settings = self.settings
        local = Local(resolve(self.config.node_address).address)
        if self.file is not None:
            try:
                local.file_peers, local.file_problem = self.file.read()
            except CheckError as e:
                local.file_error = str(e)
        if identities:
            identity = settings.identity
            if identity.username is not None:
                password = ""
                if identity.password_file:
                    password = read_text(Path(identity.password_file), MAX_PASSWORD_BYTES)
                    password = password.rstrip("\n")
                token = base64.b64encode(f"{identity.username}:{password}".encode()).decode()
                local.headers["Authorization"] = f"Basic {token}"
            if identity.scheme == "https":
                local.ssl_context = self._ssl(identity.tls)
        return local

    @staticmethod
    def _ssl(tls: IdentityTls) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file:
                context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as e:
            raise CheckError(f"checks.peers.identity.tls: {e}") from None
        if tls.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _probe(
        self, pairs: list[Pair], targets: list[Target], deadline: float
    ) -> list[Result | None]:
        """Probe, then ask the kernel about peers that answered nothing at all."""
        settings = self.settings
        results = probe_all(targets, settings.probe_timeout, settings.concurrency, deadline)
        # a peer whose every probe went unanswered and counts as dropped (silence where
        # Geneve listens is expected, and says nothing): is it there at all?
        answered = {p.peer for p, r in zip(pairs, results, strict=True) if r and not r.silent}
        silent = {
            p.peer
            for p, r in zip(pairs, results, strict=True)
            if r and r.silent and r.state is State.FILTERED
        }
        try:
            off_link = silent_peers_off_link(silent - answered)
        except Exception:  # netlink refused: the silence stands as it is
            off_link = set()
        for i, (pair, result) in enumerate(zip(pairs, results, strict=True)):
            if (
                result is not None
                and result.silent
                and result.state is State.FILTERED
                and pair.peer in off_link
            ):
                results[i] = Result(
                    State.UNREACHABLE,
                    "peer down: no answer, and none to ARP/NDP either (down or off the link)",
                    None,
                    result.seconds,
                    True,
                )
        return results

    # --- discovery ----------------------------------------------------------------------

    async def _dns(self, family: int, out: OutputBuilder) -> list[str] | None:
        name = self.settings.dns_name
        if name is None:
            return None
        if self.resolver is None:
            self.resolver = cluster_dns_resolver(
                self.paths.root(KUBELET_CONFIG),
                self.settings.dns_timeout,
                getaddrinfo_resolver(self.settings.dns_timeout, family),
            )
        try:
            answer = await self.resolver(name)
            found = [a for a in answer if (":" in a) == (family == socket.AF_INET6)]
        except (CheckError, OSError) as e:
            out.add(PEER_DISCOVERY, 0, source="dns")
            if self.last_dns is None:
                out.fail(f"peers: {e}", Req.PEER_REACHABILITY)
                return []
            out.note(f"peers: {e}; keeping the last {len(self.last_dns)} addresses")
            return self.last_dns
        out.add(PEER_DISCOVERY, 1, source="dns")
        self.last_dns = found
        return found

    async def _peers(self, local: Local, out: OutputBuilder) -> list[tuple[PeerSpec, str]]:
        """Every peer once (static first, then the file, then DNS), this node left out."""
        settings = self.settings
        found: dict[str, tuple[PeerSpec, str]] = {}

        def add(peer: PeerSpec, source: str) -> None:
            if peer.address != local.address and peer.address not in found:
                found[peer.address] = (peer, source)

        for peer in settings.static:
            add(peer, "static")
        if self.file is not None:
            if local.file_error is not None:
                out.add(PEER_DISCOVERY, 0, source="file")
                out.fail(f"peers: {local.file_error}", Req.PEER_REACHABILITY)
            else:
                out.add(PEER_DISCOVERY, 0 if local.file_problem else 1, source="file")
                if local.file_problem:
                    out.note(f"peers: {local.file_problem}")
                for peer in local.file_peers or []:
                    add(peer, "file")
        family = socket.AF_INET6 if ":" in local.address else socket.AF_INET
        for address in await self._dns(family, out) or []:
            add(PeerSpec(address), "dns")
        peers = list(found.values())
        kept = out.cap(peers, settings.max_peers, "peers", "peers")
        counts = Counter(source for _, source in kept)
        for source in ("static", "file", "dns"):
            if source == "static" and not settings.static:
                continue
            if (source == "file" and self.file is None) or (
                source == "dns" and settings.dns_name is None
            ):
                continue
            out.add(PEERS, counts[source], source=source)
        return list(kept)

    # --- identities ---------------------------------------------------------------------

    async def _identities(self, peers: list[PeerSpec], local: Local, out: OutputBuilder) -> None:
        """Ask the peers that are due who they are, bounded in number and time."""
        settings = self.settings
        identity = settings.identity
        now = time.monotonic()
        due = [
            p for p in peers if p.address not in self.known or self.known[p.address].next_due <= now
        ]
        due = due[: identity.per_cycle]
        if not due:
            return
        results: dict[str, PeerIdentity | str] = {}
        limit = asyncio.Semaphore(IDENTITY_CONNECTIONS)
        connector = aiohttp.TCPConnector(
            ssl=local.ssl_context, limit=IDENTITY_CONNECTIONS, force_close=True
        )
        server_name = identity.tls.server_name

        async def one(peer: PeerSpec) -> None:
            host = f"[{peer.address}]" if ":" in peer.address else peer.address
            url = f"{identity.scheme}://{host}:{peer.port or identity.port}{IDENTITY_PATH}"
            async with limit:
                results[peer.address] = await fetch(
                    session, url, local.headers, identity.max_bytes, identity.timeout, server_name
                )

        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with asyncio.timeout(settings.timeout * IDENTITY_SHARE):
                    await asyncio.gather(*(one(p) for p in due))
            except TimeoutError:
                pass  # those not answered yet are asked again next run
        now = time.monotonic()
        retry = max(settings.interval, identity.refresh / 10)
        for address, result in results.items():
            if isinstance(result, PeerIdentity):
                self.known[address] = Known(result, None, now + identity.refresh)
                if result.address and result.address != address:
                    out.note(
                        f"peer {address} ({result.node}) says its address is {result.address}; "
                        f"probed at {address}"
                    )
            else:
                self.known[address] = Known(None, result, now + retry)

    # --- the run ------------------------------------------------------------------------

    def _plan(
        self, peers: list[PeerSpec], known_peers: dict[str, Known], geneve: bool
    ) -> tuple[list[Pair], set[Pair], dict[str, str]]:
        """Every pair to reach, the UDP pairs where silence is a drop, and peer names.
        A peer's pairs are built again only when what it serves changes (thousands of
        peers, every run)."""
        settings = self.settings
        pairs: list[Pair] = []
        drops: set[Pair] = set()
        names: dict[str, str] = {}
        for peer in peers:
            known = known_peers.get(peer.address)
            serves: tuple[Served, ...]
            if known is not None and known.identity is not None:
                serves = known.identity.serves
                names[peer.address] = known.identity.node
            else:
                serves = self._by_role(peer, geneve)
            cached = self._pairs_of.get(peer.address)
            if cached is None or cached[0] is not serves:
                built = [
                    (Pair(peer.address, s.component, s.port, s.protocol), s)
                    for s in serves
                    if s.component not in settings.skip
                ]
                cached = (
                    serves,
                    [pair for pair, _ in built],
                    [
                        pair
                        for pair, s in built
                        if s.protocol == "udp" and (settings.preflight or s.listening is False)
                    ],
                )
                self._pairs_of[peer.address] = cached
            pairs.extend(cached[1])
            drops.update(cached[2])
        if len(self._pairs_of) > len(peers):
            present = {peer.address for peer in peers}
            for address in [a for a in self._pairs_of if a not in present]:
                del self._pairs_of[address]
        return pairs, drops, names

    def _by_role(self, peer: PeerSpec, geneve: bool) -> tuple[Served, ...]:
        """What a peer that told nothing serves: its configured role's ports, or what every
        node serves (one tuple per kind, kept: the pair cache compares by identity)."""
        key = (peer.role, peer.ovn_central, geneve)
        found = self._role_serves.get(key)
        if found is None:
            if peer.role is None:
                found = every_node(geneve)
            else:
                found = role_serves(
                    peer.role,
                    ovn_central=peer.ovn_central,
                    ovn_raft=peer.ovn_central,
                    geneve=geneve,
                )
            self._role_serves[key] = found
        return found

    async def run(self) -> CheckOutput:
        started = time.monotonic()
        settings = self.settings
        out = self.output()
        asking = settings.identity.enabled and not settings.preflight
        local = await self.gate.run(lambda: self._read_local(asking))
        if self.rotation is None:
            self.rotation = Rotation(local.address)
        rotation = self.rotation
        found = await self._peers(local, out)
        peers = [peer for peer, _ in found]
        if asking:
            await self._identities(peers, local, out)
        present = {peer.address for peer in peers}
        for address in [a for a in self.known if a not in present]:
            del self.known[address]  # a peer that left
        known = dict(self.known)  # the thread reads a copy: the loop may change the original
        deadline = started + settings.timeout * PROBE_SHARE - settings.probe_timeout
        return await self.probe_gate.run(
            lambda: self._cycle(out, rotation, peers, known, asking, deadline)
        )

    def _cycle(
        self,
        out: OutputBuilder,
        rotation: Rotation,
        peers: list[PeerSpec],
        known: dict[str, Known],
        asking: bool,
        deadline: float,
    ) -> CheckOutput:
        """Plan, probe, record, and build the output, in the check's thread: a thousand
        peers make four thousand pairs, work the event loop (and the scrapes) must not do."""
        settings = self.settings
        tunnel = self.config.settings(PortsSettings).tunnel
        pairs, drops, names = self._plan(peers, known, tunnel in ("auto", "geneve"))
        chosen = rotation.plan(pairs, settings.probes_per_cycle)
        targets = [Target(p.peer, p.port, p.protocol, p in drops) for p in chosen]
        results = self._probe(chosen, targets, deadline)
        lower_priority()  # the probes are timed; the rest is not
        now = time.monotonic()
        done = [(p, r) for p, r in zip(chosen, results, strict=True) if r is not None]
        for pair, result in done:
            rotation.record(pair, result, now)
        rotation.advance(p for p, _ in done)
        self.probes_total += len(done)
        if len(done) < len(chosen):
            out.note(
                f"peers: {len(chosen) - len(done)} planned probes left for the next run "
                "(the run's time ran out: raise timeout or lower probes_per_cycle)"
            )
        self._emit(out, rotation, peers, known, pairs, names, len(done), asking)
        return out.build()

    def _emit(
        self,
        out: OutputBuilder,
        rotation: Rotation,
        peers: list[PeerSpec],
        known: dict[str, Known],
        pairs: list[Pair],
        names: dict[str, str],
        probes: int,
        asking: bool,
    ) -> None:
        settings = self.settings
        now = time.monotonic()
        records = rotation.records
        # identities
        told = Counter[str]()
        for peer in peers:
            if not asking:
                told["off"] += 1
            elif peer.address not in known:
                told["pending"] += 1
            elif known[peer.address].identity is not None:
                told["identity"] += 1
            else:
                told["failed"] += 1
        for outcome in ("identity", "failed", "pending", "off"):
            out.add(PEER_IDENTITIES, told[outcome], result=outcome)
        failed_identities = [
            (p, k.failure) for p in peers if (k := known.get(p.address)) is not None and k.failure
        ]
        for peer, failure in failed_identities[: settings.max_items]:
            instead = "its role serves" if peer.role else "every node serves"
            out.note(f"peer {peer.address}: no identity ({failure}); probed for what {instead}")
        # one pass over the pairs (thousands): states per port, failures, the oldest result
        tally = Counter[tuple[str, int, str, str]]()
        failing: list[Pair] = []
        oldest: float | None = None
        for pair in pairs:
            record = records.get(pair)
            if record is None:
                tally[(pair.component, pair.port, pair.protocol, UNPROBED)] += 1
                continue
            found = record.result.state
            tally[(pair.component, pair.port, pair.protocol, found.value)] += 1
            if found in FAILING:
                failing.append(pair)
            if oldest is None or record.at < oldest:
                oldest = record.at
        counts: dict[tuple[str, int, str], Counter[str]] = {}
        for (component, port, protocol, name), n in tally.items():
            counts.setdefault((component, port, protocol), Counter())[name] = n
        probed = len(pairs) - sum(n for key, n in tally.items() if key[3] == UNPROBED)
        for (component, port, protocol), by_state in sorted(counts.items()):
            for state in (*(s.value for s in STATES), UNPROBED):
                out.add(
                    PEER_PORTS,
                    by_state[state],
                    component=component,
                    port=str(port),
                    protocol=protocol,
                    state=state,
                )
        # failing pairs
        failing.sort(key=lambda p: (p.peer, p.port, p.protocol))
        shown = out.cap(failing, settings.max_items, "peers", "pairs")
        rows: list[tuple[str, ...]] = []
        for pair in shown:
            result = records[pair].result
            out.add(
                PEER_UNREACHABLE,
                1,
                peer=pair.peer,
                component=pair.component,
                port=str(pair.port),
                protocol=pair.protocol,
                state=result.state.value,
            )
            out.note(
                f"{_pair_text(pair, names.get(pair.peer))} {result.state.value}: {result.reason}",
                Req.PEER_REACHABILITY,
            )
            rows.append(
                (
                    pair.peer,
                    names.get(pair.peer, ""),
                    pair.component,
                    f"{pair.port}/{pair.protocol}",
                    result.state.value,
                    result.how,
                    result.reason,
                )
            )
        # coverage
        out.add(PEER_PAIRS, len(pairs))
        out.add(PEER_PROBES, probes)
        out.add(PEER_PROBES_TOTAL, self.probes_total)
        cycles = rotation.full_round_cycles(len(pairs), settings.probes_per_cycle)
        out.add(PEER_FULL_ROUND, cycles * settings.interval)
        if oldest is not None:
            out.add(PEER_OLDEST, now - oldest)
        # the verdict
        if not peers:
            out.note("peers: none found (only this node, or an empty list)", Req.PEER_REACHABILITY)
            out.observe(Req.PEER_REACHABILITY, None)
        elif probed == 0:
            out.observe(Req.PEER_REACHABILITY, None)
        else:
            out.observe(Req.PEER_REACHABILITY, not failing)
            if probed < len(pairs):
                out.note(
                    f"peers: {probed} of {len(pairs)} pairs probed so far; every pair within "
                    f"{cycles * settings.interval:g}s",
                    Req.PEER_REACHABILITY,
                )
        self._tables(out, rows, len(failing), counts)

    def _tables(
        self,
        out: OutputBuilder,
        rows: list[tuple[str, ...]],
        failing: int,
        counts: dict[tuple[str, int, str], Counter[str]],
    ) -> None:
        left = failing - len(rows)
        out.table(
            Table(
                "peers-blocked",
                "Blocked peer ports (from this node)",
                ("Peer", "Node", "Component", "Port", "State", "How", "Why"),
                tuple(rows),
                f"{left} more not listed (max_items)" if left else "",
            )
        )
        columns = (*(s.value for s in STATES), UNPROBED)
        out.table(
            Table(
                "peers-states",
                "Peers' ports by state (as probed from this node)",
                ("Component", "Port", *columns),
                tuple(
                    (component, f"{port}/{protocol}", *(str(c[s]) for s in columns))
                    for (component, port, protocol), c in sorted(counts.items())
                ),
                "reset: reachable, nothing listens (the peer's own ports check judges it); "
                "unknown: UDP silence where Geneve may listen (see docs/peers.md)",
            )
        )


def one_shot(config: Config) -> Config:
    """The config for one `check` run: every pair is probed in that one run (no rotation),
    bounded by ONE_SHOT_SECONDS, with more probes in flight."""
    settings = config.settings(PeersSettings)
    if not settings.enabled:
        return config
    return config.with_check(
        "peers",
        probes_per_cycle=10**9,
        concurrency=max(settings.concurrency, ONE_SHOT_CONCURRENCY),
        identity=replace(settings.identity, per_cycle=10**9),
        interval=max(settings.interval, ONE_SHOT_SECONDS),
        timeout=max(settings.timeout, ONE_SHOT_SECONDS),
    )
