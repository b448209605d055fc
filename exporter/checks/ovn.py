"""OVN: are Kube-OVN's metrics endpoints (10660, 10661, 10665) serving real metrics?

Up means HTTP 200 and a body that parses as Prometheus text. Every fetch is bounded:
a timeout over the whole exchange, a maximum body size, and redirects followed only to
the same host and port (at most three).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from exporter.blocking import BlockingGate
from exporter.checks.base import Check, RequirementRow, samples_of
from exporter.checks.nodeaddr import resolve
from exporter.checks.ports import port_expectation
from exporter.fsread import read_text
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput
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
from exporter.spec import PORTS, Expectation, Req
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from exporter.config import Config

COMPONENTS = ("kube-ovn-controller", "kube-ovn-monitor", "kube-ovn-cni")
MAX_REDIRECTS = 3
MAX_TOKEN_BYTES = 64 * 1024

METRICS = MetricGroup("ovn")
OVN_UP = METRICS.gauge(
    "kubev_ovn_endpoint_up",
    "1 if GET /metrics answered 200 with a body that parses as Prometheus text.",
    ("component", "port"),
)
OVN_EXPECTED = METRICS.gauge(
    "kubev_ovn_endpoint_expected",
    "1 if this node's role requires the endpoint (kube-ovn-cni on every node).",
    ("component", "port"),
)
OVN_STATUS = METRICS.gauge(
    "kubev_ovn_endpoint_http_status",
    "HTTP status of the last fetch; 0 when no HTTP response came.",
    ("component", "port"),
)
OVN_RESPONSE_SECONDS = METRICS.gauge(
    "kubev_ovn_endpoint_response_seconds",
    "Time from request to the whole body (or to the failure).",
    ("component", "port"),
)
OVN_SAMPLES = METRICS.gauge(
    "kubev_ovn_endpoint_samples",
    "Samples in the endpoint's last parseable answer.",
    ("component", "port"),
)


@dataclass(frozen=True)
class OvnTls:
    ca_file: str | None = setting(
        None, parse=parse_optional_abs_path, doc="CA bundle that signed the endpoints' certificates"
    )
    insecure_skip_verify: bool = setting(
        False, parse=parse_bool, doc="accept any certificate (the connection stays encrypted)"
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
    tls: OvnTls = section(OvnTls, "TLS for scheme https")
    max_body_bytes: int = setting(
        4 * 1024 * 1024,
        parse=parse_positive_int,
        doc="a larger answer is cut off and counts as down",
    )


@dataclass(frozen=True)
class Endpoint:
    component: str
    port: int
    expectation: Expectation


@dataclass(frozen=True)
class Fetched:
    status: int  # 0: no HTTP response
    seconds: float
    samples: int | None  # None: the body is not Prometheus text (or none came)
    reason: str | None

    @property
    def up(self) -> bool:
        return self.status == 200 and self.samples is not None


def count_samples(body: bytes) -> int:
    """Samples in a Prometheus text body; ValueError when it is not one."""
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    count = 0
    for family in text_string_to_metric_families(text):
        count += len(family.samples)
    if count == 0 and text.strip() and not text.lstrip().startswith("#"):
        raise ValueError("no samples")
    return count


async def fetch(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], max_bytes: int
) -> tuple[int, bytes | None, str | None]:
    """GET with redirects kept on the same host; (status, body or None, reason)."""
    origin = urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                target = urljoin(url, response.headers["Location"])
                if urlsplit(target).netloc != origin:
                    return response.status, None, f"redirect to another host refused: {target}"
                url = target
                continue
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    return response.status, None, f"body larger than {max_bytes} bytes"
            return response.status, bytes(body), None
    return 0, None, f"more than {MAX_REDIRECTS} redirects"


async def probe_endpoint(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    limit_seconds: float,
    gate: BlockingGate,
) -> Fetched:
    """Fetch and judge one metrics endpoint; the body is parsed in a thread via `gate`."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_seconds):
            status, body, reason = await fetch(session, url, headers, max_bytes)
    except TimeoutError:
        return Fetched(
            0,
            time.perf_counter() - started,
            None,
            f"no complete answer within {limit_seconds:.3g}s",
        )
    except aiohttp.ClientError as e:
        return Fetched(0, time.perf_counter() - started, None, str(e) or type(e).__name__)
    seconds = time.perf_counter() - started
    if body is None:
        return Fetched(status, seconds, None, reason)
    if status != 200:
        return Fetched(status, seconds, None, f"HTTP {status}")
    try:
        samples = await gate.run(lambda: count_samples(body))
    except ValueError as e:
        return Fetched(status, seconds, None, f"not Prometheus text: {e}")
    except CheckError as e:
        return Fetched(status, seconds, None, str(e))
    return Fetched(status, seconds, samples, None)


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
            "Restart the failing Kube-OVN pod; with secure serving, configure "
            "checks.ovn bearer_token_file and tls.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        bad = [
            f"{c} :{p}" for s in samples_of(output, OVN_UP) if s.value == 0 for c, p in [s.labels]
        ]
        return f"not serving: {', '.join(bad)}" if bad else "all endpoints serve"

    def __init__(self, config: Config, paths: Paths) -> None:
        super().__init__(config, paths)
        self._parse_gates: dict[int, BlockingGate] = {}

    def endpoints(self) -> list[Endpoint]:
        found = []
        for row in PORTS:
            if row.component in COMPONENTS:
                expectation = port_expectation(self.config, row)
                if expectation is not Expectation.ABSENT:
                    found.append(Endpoint(row.component, row.first, expectation))
        return found

    def _ssl(self) -> ssl.SSLContext | bool:
        settings = self.settings
        if settings.scheme != "https":
            return True
        if settings.tls.insecure_skip_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=settings.tls.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise CheckError(f"{settings.tls.ca_file}: cannot load CA: {e}") from None

    def _prepare(self) -> tuple[str, dict[str, str], ssl.SSLContext | bool]:
        """Blocking part: node address, token file, CA file."""
        headers = {"Accept": "text/plain;version=0.0.4"}
        token_file = self.settings.bearer_token_file
        if token_file:
            # the exporter's own file (a projected token), not a host path: not re-rooted
            token = read_text(Path(token_file), MAX_TOKEN_BYTES).strip()
            headers["Authorization"] = f"Bearer {token}"
        return resolve(self.config.node_address).address, headers, self._ssl()

    async def run(self) -> CheckOutput:
        address, headers, ssl_context = await self.gate.run(self._prepare)
        host = f"[{address}]" if ":" in address else address
        base = f"{self.settings.scheme}://{host}"
        endpoints = self.endpoints()
        connector = aiohttp.TCPConnector(
            ssl=ssl_context, limit=len(endpoints) or 1, force_close=True
        )
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            results = await asyncio.gather(
                *(
                    probe_endpoint(
                        session,
                        f"{base}:{e.port}/metrics",
                        headers,
                        self.settings.max_body_bytes,
                        # leave time to report: a slow endpoint must not time the check out
                        self.settings.timeout * 0.9,
                        self._parse_gates.setdefault(e.port, BlockingGate(f"ovn-{e.port}")),
                    )
                    for e in endpoints
                )
            )
        out = self.output()
        healthy = True
        for endpoint, result in zip(endpoints, results, strict=True):
            labels = {"component": endpoint.component, "port": str(endpoint.port)}
            out.add(OVN_UP, result.up, **labels)
            out.add(OVN_EXPECTED, endpoint.expectation is Expectation.REQUIRED, **labels)
            out.add(OVN_STATUS, result.status, **labels)
            out.add(OVN_RESPONSE_SECONDS, result.seconds, **labels)
            if result.samples is not None:
                out.add(OVN_SAMPLES, result.samples, **labels)
            # a required endpoint must serve; an optional one only counts once it answers
            counts = endpoint.expectation is Expectation.REQUIRED or result.status != 0
            if counts and not result.up:
                healthy = False
                out.note(
                    f"{endpoint.component} {base}:{endpoint.port}/metrics: {result.reason}",
                    Req.OVN_ENDPOINTS,
                )
        out.observe(Req.OVN_ENDPOINTS, healthy)
        return out.build()
