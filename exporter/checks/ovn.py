"""OVN: are Kube-OVN's endpoints (10660, 10661, 10665) alive, and do they serve metrics?

Each endpoint is in one of the states of exporter/checks/ovnprobe.py: alive (its health
path answers 200) and serving metrics, alive with metrics disabled, alive but refusing
our token (secure serving), alive with /metrics failing otherwise; dead; or absent.
Only a dead endpoint fails the requirement. kube-ovn-cni runs on every node, so it is
required; kube-ovn-controller and kube-ovn-monitor run only where their Deployments are
scheduled (kube-ovn/role=master nodes; the monitor on one of them): an endpoint nobody
listens on is absent there, one that listens must be alive ("alive where found").

Whether a port listens comes from the kernel (sock_diag, exporter/checks/sockdiag.py),
which also tells where: Kube-OVN binds the node's addresses (ENABLE_BIND_LOCAL_IP), and
with metrics disabled only the first of them (pkg/metrics/servers.go: addrs[0]), so an
endpoint is probed at the node address, or where it listens when that is elsewhere.

While reading kube-ovn-cni's /metrics, three node facts are kept (the daemon's own
metrics, named without a kube_ovn_ prefix: kubeovn/kube-ovn pkg/daemon/metrics.go, set in
pkg/daemon/exporter_metric.go): UDP checksum errors, the local port range (compared here
with the NodePort range), and bridge-nf-call-iptables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from exporter.blocking import BlockingGate
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.checks.nodeaddr import NodeAddress, resolve
from exporter.checks.ovnprobe import Plan, Result, State, probe, unverified_context
from exporter.checks.ports import WILDCARDS, port_expectation, where_it_listens
from exporter.checks.promtext import Kept, Scan
from exporter.checks.sockdiag import Listeners, listeners
from exporter.fsread import read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.paths import Paths
from exporter.settings import (
    CheckSettings,
    choice,
    parse_bool,
    parse_optional_abs_path,
    parse_positive_int,
    section,
    setting,
)
from exporter.spec import PORTS, Expectation, Req, port_row
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

COMPONENTS = ("kube-ovn-controller", "kube-ovn-monitor", "kube-ovn-cni")
#: the daemon whose /metrics carries the node facts
CNI = "kube-ovn-cni"
MAX_TOKEN_BYTES = 64 * 1024
#: kube-ovn-cni's node facts (pkg/daemon/metrics.go: metricCheckSumErr,
#: metricIPLocalPortRange, metricBridgeNfCallIptables)
CHECKSUM_ERR = "checksum_err_count"
LOCAL_PORT_RANGE = "ip_local_port_range"
BRIDGE_NF_CALL_IPTABLES = "bridge_nf_call_iptables"
FACTS = (CHECKSUM_ERR, LOCAL_PORT_RANGE, BRIDGE_NF_CALL_IPTABLES)
NODEPORT = port_row("nodeport")

METRICS = MetricGroup("ovn")
OVN_UP = METRICS.gauge(
    "kubev_ovn_endpoint_up",
    "1 if the endpoint is alive: its health path (/livez) answered 200, whatever /metrics does.",
    ("component", "port"),
)
OVN_METRICS_SERVED = METRICS.gauge(
    "kubev_ovn_endpoint_metrics_served",
    "1 if GET /metrics answered 200 with a body that parses as Prometheus text.",
    ("component", "port"),
)
OVN_STATE = METRICS.gauge(
    "kubev_ovn_endpoint_state",
    "1 for the endpoint's state, 0 for the others: serving (alive, metrics served), "
    "metrics_disabled (alive, /metrics 404: ENABLE_METRICS=false), unauthorized (alive, "
    "/metrics 401/403: secure serving refused the token), metrics_failing (alive, /metrics "
    "fails otherwise), dead (it listens, or must, and /livez does not answer 200: fails "
    "ovn_endpoints), absent (nothing listens and nothing must: not on this node).",
    ("component", "port", "state"),
)
OVN_EXPECTED = METRICS.gauge(
    "kubev_ovn_endpoint_expected",
    "1 if this node's role requires the endpoint (kube-ovn-cni on every node); the others "
    "must be alive only where they listen.",
    ("component", "port"),
)
OVN_STATUS = METRICS.gauge(
    "kubev_ovn_endpoint_http_status",
    "HTTP status of the last fetch (/metrics once the health path answered 200, else the "
    "health path); 0 when no HTTP response came.",
    ("component", "port"),
)
OVN_RESPONSE_SECONDS = METRICS.gauge(
    "kubev_ovn_endpoint_response_seconds",
    "Time from the health request to the whole /metrics body (or to the failure).",
    ("component", "port"),
)
OVN_SAMPLES = METRICS.gauge(
    "kubev_ovn_endpoint_samples",
    "Samples in the endpoint's last parseable answer.",
    ("component", "port"),
)
CHECKSUM_ERRORS = METRICS.gauge(
    "kubev_ovn_checksum_errors",
    "UDP checksum errors since boot, as kube-ovn-cni reports them (its checksum_err_count: "
    "InCsumErrors of netstat -us); above 0, packets arrive corrupted.",
)
PORT_RANGE_OVERLAP = METRICS.gauge(
    "kubev_ovn_local_port_range_overlaps_nodeport",
    f"1 if net.ipv4.ip_local_port_range, as kube-ovn-cni reports it (ip_local_port_range), "
    f"overlaps the NodePort range {NODEPORT.first}-{NODEPORT.last}.",
)
BRIDGE_NF = METRICS.gauge(
    "kubev_ovn_bridge_nf_call_iptables",
    "net.bridge.bridge-nf-call-iptables as kube-ovn-cni reports it (bridge_nf_call_iptables; "
    "absent without br_netfilter); Kube-OVN recommends 1 for overlay, 0 for underlay.",
)

#: what each state means for the people reading a note, and what to do about it
WORDS = {
    State.SERVING: "alive, serves metrics",
    State.METRICS_DISABLED: "alive, metrics disabled",
    State.UNAUTHORIZED: "alive, /metrics refused",
    State.METRICS_FAILING: "alive, metrics not served",
    State.DEAD: "dead",
    State.ABSENT: "not on this node",
}
HINTS = {
    State.DEAD: "restart the Kube-OVN pod on this node (kubectl -n kube-system get pods -o wide "
    "| grep kube-ovn) and read its log; kube-ovn-cni's /livez fails while its CNI socket "
    "does not answer",
    State.METRICS_DISABLED: "Kube-OVN runs with ENABLE_METRICS=false (health paths only): "
    "nothing to fix unless its metrics are wanted (set ENABLE_METRICS=true)",
    State.METRICS_FAILING: "read the Kube-OVN pod's log",
}
HINT_401 = (
    "secure serving wants a bearer token it can verify (TokenReview): set "
    "checks.ovn.bearer_token_file to a projected ServiceAccount token (docs/ports.md)"
)
HINT_403 = (
    "the token's account may not get /metrics (SubjectAccessReview): bind it a ClusterRole "
    'with nonResourceURLs ["/metrics"], verbs ["get"] (docs/ports.md)'
)
HINT_CERTIFICATE = (
    "Kube-OVN signs its serving certificate with a CA it makes in memory at start, so no CA "
    "file can verify it: set checks.ovn.scheme: https and tls.insecure_skip_verify: true "
    "(docs/ports.md)"
)


@dataclass(frozen=True)
class OvnTls:
    ca_file: str | None = setting(
        None,
        parse=parse_optional_abs_path,
        doc="CA bundle that signed the endpoints' certificates (not Kube-OVN's own: its CA "
        "lives in its memory)",
    )
    insecure_skip_verify: bool = setting(
        False,
        parse=parse_bool,
        doc="accept any certificate (the connection stays encrypted); needed for Kube-OVN's "
        "secure serving",
    )


@dataclass(frozen=True, kw_only=True)
class OvnSettings(CheckSettings):
    scheme: str = setting(
        "http", parse=choice(("http", "https")), doc="https for Kube-OVN's secure serving"
    )
    bearer_token_file: str | None = setting(
        None,
        parse=parse_optional_abs_path,
        doc="read on every run (rotated tokens); not under --path.rootfs",
    )
    tls: OvnTls = section(OvnTls, "TLS for /metrics over https (health probes verify nothing)")
    max_body_bytes: int = setting(
        4 * 1024 * 1024,
        parse=parse_positive_int,
        doc="a larger /metrics answer is cut off: metrics not served",
    )


@dataclass(frozen=True)
class Endpoint:
    component: str
    port: int
    expectation: Expectation

    @property
    def required(self) -> bool:
        return self.expectation is Expectation.REQUIRED


@dataclass(frozen=True)
class Prepared:
    """The blocking part of a run: the node address, the token, TLS, the listeners."""

    node: NodeAddress
    plan: Plan
    found: Listeners | None  # None: sock_diag failed
    notes: tuple[str, ...]


def target(node: str, addresses: frozenset[str] | None) -> tuple[str, str | None]:
    """Where to probe a port: the node address, unless the kernel says it listens only on
    other, non-loopback addresses (a health-only server binds the first of the node's
    addresses); then the first of those. Also why a refused connection at the node address
    is no surprise, when it listens elsewhere."""
    if not addresses or node in addresses or addresses & WILDCARDS:
        return node, None
    elsewhere = sorted(
        (a for a in addresses if a != "?" and not ipaddress.ip_address(a).is_loopback),
        key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)),
    )
    if elsewhere:
        return elsewhere[0], None
    return node, where_it_listens(addresses, node)


def overlaps_nodeport(start: int, end: int) -> bool:
    return start <= NODEPORT.last and end >= NODEPORT.first


class OvnCheck(Check[OvnSettings]):
    name = "ovn"
    area = ("ovn", "OVN")
    settings_type = OvnSettings
    defaults = OvnSettings(interval=30.0, timeout=5.0)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.OVN_ENDPOINTS,
            "KubevOVNEndpointDown",
            "Restart the dead Kube-OVN pod on this node; an endpoint that is alive but "
            "serves no metrics does not fail this (the detail says why and what to set).",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        """Every endpoint's state: the notes for those not simply serving or absent (with
        their reason and hint), then the rest in a few words."""
        states = [
            (c, p, State(state))
            for s in samples_of(output, OVN_STATE)
            if s.value == 1
            for c, p, state in [s.labels]
        ]
        quiet = [
            f"{c} :{p} {WORDS[state]}"
            for c, p, state in states
            if state in (State.SERVING, State.ABSENT)
        ]
        parts = [*output.notes_about(requirement), *quiet]
        return "; ".join(parts) if parts else "no Kube-OVN endpoint probed"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._parse_gates: dict[int, BlockingGate] = {}

    def endpoints(self) -> list[Endpoint]:
        found = []
        for row in PORTS:  # the port table's order
            if row.component in COMPONENTS:
                expectation = port_expectation(self.config, row)
                if expectation is not Expectation.ABSENT:
                    found.append(Endpoint(row.component, row.first, expectation))
        return found

    def _metrics_tls(self) -> tuple[ssl.SSLContext | bool | None, str | None]:
        """TLS for /metrics over https: the CA file, no verification, or the system CAs
        (True); None and why when the CA file cannot be loaded."""
        tls = self.settings.tls
        if tls.insecure_skip_verify:
            return unverified_context(), None
        if tls.ca_file is None:
            return True, None
        try:
            return ssl.create_default_context(cafile=tls.ca_file), None
        except (OSError, ssl.SSLError) as e:
            return None, f"{tls.ca_file}: cannot load the CA: {e}"

    def _prepare(self) -> Prepared:
        """Blocking: node address, token file, CA file, listening sockets."""
        settings = self.settings
        notes = []
        token_headers = {}
        if settings.bearer_token_file:
            # the exporter's own file (a projected token), not a host path: not re-rooted
            try:
                token = read_text(Path(settings.bearer_token_file), MAX_TOKEN_BYTES).strip()
                token_headers["Authorization"] = f"Bearer {token}"
            except CheckError as e:
                notes.append(f"bearer token not read, /metrics asked without one: {e}")
        metrics_tls, tls_error = self._metrics_tls()
        try:
            found: Listeners | None = listeners()
        except OSError as e:
            found = None
            notes.append(
                f"sock_diag: {e}: an endpoint counts as present only once it accepts connections"
            )
        plan = Plan(
            scheme=settings.scheme,
            health_tls=unverified_context(),
            metrics_tls=metrics_tls,
            metrics_tls_error=tls_error,
            token_headers=token_headers,
            max_bytes=settings.max_body_bytes,
            # leave time to report: a slow endpoint must not time the check out
            limit_seconds=settings.timeout * 0.9,
        )
        return Prepared(resolve(self.config.node_address), plan, found, tuple(notes))

    async def _probe(
        self, session: aiohttp.ClientSession, prepared: Prepared, endpoint: Endpoint
    ) -> tuple[str, Result]:
        found = prepared.found
        addresses = None if found is None else found.addresses("tcp", endpoint.port)
        host, not_here = target(prepared.node.address, addresses)
        plan = prepared.plan
        if endpoint.component == CNI:
            plan = dataclasses.replace(plan, wanted=FACTS)
        result = await probe(
            session,
            f"[{host}]" if ":" in host else host,
            endpoint.port,
            plan,
            self._parse_gates.setdefault(endpoint.port, BlockingGate(f"ovn-{endpoint.port}")),
            required=endpoint.required,
            listening=addresses,
            not_here=not_here,
        )
        return host, result

    async def run(self) -> CheckOutput:
        prepared = await self.gate.run(self._prepare)
        endpoints = self.endpoints()
        connector = aiohttp.TCPConnector(limit=len(endpoints) or 1, force_close=True)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            results = await asyncio.gather(*(self._probe(session, prepared, e) for e in endpoints))
        out = self.output()
        out.notes(prepared.notes, Req.OVN_ENDPOINTS)
        healthy = True
        described = []
        for endpoint, (host, result) in zip(endpoints, results, strict=True):
            labels = {"component": endpoint.component, "port": str(endpoint.port)}
            out.add(OVN_UP, result.state.alive, **labels)
            out.add(OVN_METRICS_SERVED, result.state is State.SERVING, **labels)
            for state in State:
                out.add(OVN_STATE, result.state is state, state=state.value, **labels)
            out.add(OVN_EXPECTED, endpoint.required, **labels)
            out.add(OVN_STATUS, result.status, **labels)
            out.add(OVN_RESPONSE_SECONDS, result.seconds, **labels)
            if result.scan is not None:
                out.add(OVN_SAMPLES, result.scan.samples, **labels)
                if endpoint.component == CNI:
                    self._facts(out, result.scan)
            healthy &= result.state is not State.DEAD
            if result.state not in (State.SERVING, State.ABSENT):
                described.append((result.state is not State.DEAD, describe(endpoint, host, result)))
        # the dead first: the report's detail leads with what fails
        out.notes([text for _, text in sorted(described, key=lambda d: d[0])], Req.OVN_ENDPOINTS)
        out.observe(Req.OVN_ENDPOINTS, healthy)
        return out.build()

    def _facts(self, out: OutputBuilder, scan: Scan) -> None:
        """kube-ovn-cni's node facts, as our own metrics, with a note where one deserves
        attention. Facts, not requirements: none fails a verdict."""

        def first(name: str) -> Kept | None:
            kept = scan.kept.get(name)
            return kept[0] if kept else None

        checksum = first(CHECKSUM_ERR)
        if checksum is not None:
            out.add(CHECKSUM_ERRORS, checksum.value)
            if checksum.value > 0:
                out.note(
                    f"kube-ovn-cni reports {checksum.value:g} UDP checksum errors since boot "
                    "(netstat -us InCsumErrors): packets arrive corrupted, often through a "
                    "NIC's checksum offload on tunnel traffic; Kube-OVN turns TX checksum off "
                    "on genev_sys_6081 for this (ethtool -K genev_sys_6081 tx off)",
                    Req.OVN_ENDPOINTS,
                )
        port_range = first(LOCAL_PORT_RANGE)
        if port_range is not None:
            try:
                start, end = int(port_range.labels["start"]), int(port_range.labels["end"])
            except (KeyError, ValueError):
                out.note(f"kube-ovn-cni's {LOCAL_PORT_RANGE} has no numeric start and end labels")
            else:
                overlap = overlaps_nodeport(start, end)
                out.add(PORT_RANGE_OVERLAP, overlap)
                if overlap:
                    out.note(
                        f"net.ipv4.ip_local_port_range {start}-{end} overlaps the NodePort "
                        f"range {NODEPORT.first}-{NODEPORT.last}: an outgoing connection can "
                        "take a port a NodePort Service needs; start the local range above "
                        f"{NODEPORT.last}, or list {NODEPORT.first}-{NODEPORT.last} in "
                        "net.ipv4.ip_local_reserved_ports",
                        Req.OVN_ENDPOINTS,
                    )
        bridge = first(BRIDGE_NF_CALL_IPTABLES)
        if bridge is not None:
            out.add(BRIDGE_NF, bridge.value)
            if bridge.value != 1:
                out.note(
                    f"net.bridge.bridge-nf-call-iptables is {bridge.value:g}: Kube-OVN "
                    "recommends 1 for an overlay network (0 for underlay)",
                    Req.OVN_ENDPOINTS,
                )


def describe(endpoint: Endpoint, host: str, result: Result) -> str:
    """A note for an endpoint that is not simply serving: its state, why, what to do."""
    where = f"[{host}]:{endpoint.port}" if ":" in host else f"{host}:{endpoint.port}"
    if result.scheme:
        where = f"{result.scheme}://{where}"
    hint = HINTS.get(result.state, "")
    reason = result.reason or ""
    if result.state is State.UNAUTHORIZED:
        hint = HINT_403 if result.status == 403 else HINT_401
    elif result.state is State.METRICS_FAILING and "certificate not trusted" in reason:
        hint = HINT_CERTIFICATE
    text = f"{endpoint.component} {where}: {WORDS[result.state]}: {reason}"
    return f"{text} ({hint})" if hint else text
