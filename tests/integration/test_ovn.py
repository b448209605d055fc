"""The OVN probe against real HTTP servers: Kube-OVN-like endpoints in each of their states,
and servers that answer badly, hugely, slowly, elsewhere."""

from __future__ import annotations

import socket
import ssl
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from exporter.blocking import BlockingGate
from exporter.checks.ovn import FACTS
from exporter.checks.ovnprobe import Plan, Result, State, probe, unverified_context
from tests.helpers import (
    background,
    free_port,
    metrics_when,
    network_namespace,
    only,
    running,
    runs,
    value,
)
from tests.httpstub import (
    BIG_OVN_BYTES,
    FORBIDDEN_TOKEN,
    TOKEN,
    app_for,
    ovn_body_samples,
    serving,
)

MAX_BYTES = 4 * 1024 * 1024


async def probe_stub(
    port: int,
    *,
    token: str | None = None,
    limit: float = 3.0,
    scheme: str = "http",
    metrics_tls: ssl.SSLContext | bool = True,
    required: bool = True,
    listening: frozenset[str] | None = None,
) -> Result:
    plan = Plan(
        scheme=scheme,
        health_tls=unverified_context(),
        metrics_tls=metrics_tls,
        metrics_tls_error=None,
        token_headers={"Authorization": f"Bearer {token}"} if token else {},
        max_bytes=MAX_BYTES,
        limit_seconds=limit,
        wanted=FACTS,
    )
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await probe(
            session,
            "127.0.0.1",
            port,
            plan,
            BlockingGate("test"),
            required=required,
            listening=listening,
        )


async def test_kube_ovn_endpoint_serves_metrics_and_facts() -> None:
    async with serving(app_for("ovn")) as port:
        result = await probe_stub(port)
    assert result.state is State.SERVING and result.status == 200 and result.scheme == "http"
    assert result.scan is not None and result.scan.samples == ovn_body_samples()
    assert [k.labels for k in result.scan.kept["ip_local_port_range"]] == [
        {"end": "60999", "hostname": "node-1", "start": "32768"}
    ]


async def test_metrics_disabled_is_alive() -> None:
    """ENABLE_METRICS=false: the health paths answer, /metrics is 404."""
    async with serving(app_for("ovn-disabled")) as port:
        result = await probe_stub(port)
    assert result.state is State.METRICS_DISABLED and result.state.alive
    assert result.reason == "GET /metrics answered 404: 404: Not Found"


async def test_secure_serving_tokens() -> None:
    """/metrics behind a token (plain HTTP here; TLS in the namespace tests): 401 without
    one or with a wrong one, 403 for an account without the right, 200 with the right one.
    The health path answers all the same, and gets no token (the stub refuses one)."""
    async with serving(app_for("ovn-secure")) as port:
        without = await probe_stub(port)
        wrong = await probe_stub(port, token="not-the-token")
        forbidden = await probe_stub(port, token=FORBIDDEN_TOKEN)
        right = await probe_stub(port, token=TOKEN)
    assert (without.state, without.status) == (State.UNAUTHORIZED, 401)
    assert (wrong.state, wrong.status) == (State.UNAUTHORIZED, 401)
    assert (forbidden.state, forbidden.status) == (State.UNAUTHORIZED, 403)
    assert forbidden.reason == (
        "GET /metrics answered 403: "
        "Authorization denied for user system:serviceaccount:kubev:exporter"
    )
    assert right.state is State.SERVING


async def test_health_failure_is_dead() -> None:
    """kube-ovn-cni's /livez answers 503 when its CNI socket does not."""
    async with serving(app_for("ovn-livez503")) as port:
        result = await probe_stub(port, required=False)
    assert (result.state, result.status) == (State.DEAD, 503)
    assert result.reason == "GET /livez answered 503: probe failed"


async def test_server_error() -> None:
    async with serving(app_for("status500")) as port:
        result = await probe_stub(port)
    assert result.state is State.DEAD and result.status == 500
    assert result.reason == "GET /livez answered 500: internal error"


async def test_nobody_listening_is_absent_unless_required() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    optional = await probe_stub(port, required=False)
    required = await probe_stub(port, required=True, listening=frozenset())
    assert (optional.state, optional.reason) == (State.ABSENT, "connection refused")
    assert (required.state, required.reason) == (State.DEAD, f"nothing listens on port {port}")


async def test_listening_but_silent_is_dead() -> None:
    """A listener that never accepts: the kernel completes the handshake, no answer comes.
    It listens, so even an optional endpoint counts, and it is dead."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        result = await probe_stub(s.getsockname()[1], limit=0.5, required=False)
    assert result.state is State.DEAD and result.status == 0
    assert result.reason == "GET /livez: no complete answer within 0.5s"


async def test_garbage_is_not_metrics() -> None:
    async with serving(app_for("garbage")) as port:
        result = await probe_stub(port)
    assert result.state is State.METRICS_FAILING and result.status == 200 and result.scan is None
    assert result.reason is not None
    assert result.reason.startswith("GET /metrics: not Prometheus text: line 1: not a sample")


async def test_fifty_mebibytes_are_cut_off_with_bounded_memory() -> None:
    async with serving(app_for("huge")) as port:
        tracemalloc.start()
        try:
            result = await probe_stub(port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.state is State.METRICS_FAILING
    assert result.reason == f"GET /metrics: body larger than {MAX_BYTES} bytes"
    assert peak < MAX_BYTES, f"peak {peak} bytes while refusing a 50 MiB body"


async def test_four_mebibytes_stream_through_in_bounded_memory() -> None:
    """A body just under the cap is read as it arrives: the Python heap never holds it.
    (The server is a process of its own, so only the client's memory is traced.)"""
    port = free_port()
    with background(["tests.httpstub", f"127.0.0.1:{port}=ovn-big"]):
        tracemalloc.start()
        try:
            result = await probe_stub(port, limit=30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.state is State.SERVING, result.reason
    assert result.scan is not None and result.scan.samples == ovn_body_samples(BIG_OVN_BYTES)
    assert peak < BIG_OVN_BYTES // 2, f"peak {peak} bytes for a {BIG_OVN_BYTES}-byte body"


async def test_trickling_server_hits_the_deadline() -> None:
    """Every path trickles: the health path's first bytes say 200 (alive), /metrics never
    ends."""
    async with serving(app_for("trickle")) as port:
        result = await probe_stub(port, limit=0.5)
    assert result.state is State.METRICS_FAILING and result.status == 200
    assert result.reason == "GET /metrics: no complete answer within 0.5s"
    assert result.seconds < 5  # it gave up at its deadline instead of following the trickle


async def test_redirects() -> None:
    async with serving(app_for("redirect_elsewhere")) as port:
        elsewhere = await probe_stub(port)
    assert elsewhere.state is State.DEAD and elsewhere.status == 302
    assert (
        elsewhere.reason
        == "GET /livez: redirect to another host refused: http://127.0.0.2:1/metrics"
    )
    async with serving(app_for("redirect_here")) as port:
        here = await probe_stub(port)
    assert here.state is State.SERVING and here.scan is not None and here.scan.samples == 3


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1, made by openssl."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=kube-ovn",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    yield cert, key


async def test_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    verify = ssl.create_default_context(cafile=str(cert))
    async with serving(app_for("good"), ssl_context=server_ctx) as port:
        trusted = await probe_stub(port, scheme="https", metrics_tls=verify)
        untrusted = await probe_stub(port, scheme="https")  # system CAs do not know it
        skipped = await probe_stub(port, scheme="https", metrics_tls=unverified_context())
        plain = await probe_stub(port)  # plain HTTP configured for a TLS port
    assert trusted.state is State.SERVING and trusted.scheme == "https"
    # alive either way: the health probe verifies nothing and carries nothing
    assert untrusted.state is State.METRICS_FAILING and untrusted.state.alive
    assert "certificate not trusted" in (untrusted.reason or "")
    assert skipped.state is State.SERVING
    # the health probe found HTTPS; /metrics then fails verification, never goes plain
    assert plain.state is State.METRICS_FAILING and plain.scheme == "https"
    assert "certificate not trusted" in (plain.reason or "")


async def test_metrics_disabled_under_secure_serving_is_plain_http() -> None:
    """ENABLE_METRICS=false serves plain HTTP even with secure serving on: the probe finds
    it there, and the token (meant for HTTPS) is not sent over plain HTTP (the stub would
    answer 400)."""
    async with serving(app_for("ovn-disabled")) as port:
        result = await probe_stub(
            port, scheme="https", token=TOKEN, metrics_tls=unverified_context()
        )
    assert (result.state, result.scheme) == (State.METRICS_DISABLED, "http")


@pytest.mark.root
def test_the_real_ports_in_a_namespace(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """The whole process: 10665 serves (with a token, over TLS), 10660 answers 500 on its
    health path, 10661 is absent. kube-ovn-cni is required; the controller listens, so it
    counts, and it is dead; the monitor is optional and silent, so it does not count."""
    cert, key = certificate
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(  # one run, with room for a busy machine
        f"checks:\n  ovn:\n    scheme: https\n    bearer_token_file: {token}\n"
        f"    tls: {{ca_file: {cert}}}\n    interval: 1h\n    timeout: 1m\n"
    )
    stub = ["tests.httpstub", "--tls", str(cert), str(key), "10665=ovn-secure", "10660=status500"]
    with (
        network_namespace() as ns,
        background(stub, ns),
        running([f"--config.file={config}", *only("ovn")], netns=ns) as e,
    ):
        text = e.metrics()

    def metric(name: str, component: str, port: int) -> float | None:
        return value(text, name, component=component, port=str(port))

    def state(component: str, port: int, name: str) -> float | None:
        return value(
            text, "kubev_ovn_endpoint_state", component=component, port=str(port), state=name
        )

    assert metric("kubev_ovn_endpoint_up", "kube-ovn-cni", 10665) == 1
    assert metric("kubev_ovn_endpoint_metrics_served", "kube-ovn-cni", 10665) == 1
    assert metric("kubev_ovn_endpoint_samples", "kube-ovn-cni", 10665) == ovn_body_samples()
    assert metric("kubev_ovn_endpoint_expected", "kube-ovn-cni", 10665) == 1
    assert state("kube-ovn-cni", 10665, "serving") == 1
    assert state("kube-ovn-cni", 10665, "dead") == 0
    assert metric("kubev_ovn_endpoint_http_status", "kube-ovn-controller", 10660) == 500
    assert metric("kubev_ovn_endpoint_up", "kube-ovn-controller", 10660) == 0
    assert state("kube-ovn-controller", 10660, "dead") == 1
    assert metric("kubev_ovn_endpoint_http_status", "kube-ovn-monitor", 10661) == 0
    assert state("kube-ovn-monitor", 10661, "absent") == 1
    # the facts kube-ovn-cni's /metrics carries
    assert value(text, "kubev_ovn_checksum_errors") == 0
    assert value(text, "kubev_ovn_local_port_range_overlaps_nodeport") == 0
    assert value(text, "kubev_ovn_bridge_nf_call_iptables") == 1
    assert value(text, "kubev_requirement_met", requirement="ovn_endpoints", level="minimum") == 0
    assert (
        "kube-ovn-controller 127.0.0.1:10660: dead: GET /livez answered 500: internal error"
        in e.stderr
    )
    assert "kube-ovn-monitor" not in e.stderr  # optional and silent: not a problem


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.root
def test_a_four_mebibyte_body_reads_up_in_flat_memory(tmp_path: Path) -> None:
    """The exporter process against a 4 MB kube-ovn-cni body (just under the default cap):
    the endpoint reads up, within the check's default timeout, run after run, and the
    process's peak RSS stays within a small bound of the same process reading a small
    body. Parsing with prometheus_client's model took 131-187 MiB and ran past the
    timeout."""
    config = tmp_path / "c.yaml"
    config.write_text("checks:\n  ovn:\n    interval: 6s\n")

    def peak_after_two_runs(behaviour: str) -> tuple[int, str]:
        with (
            network_namespace() as ns,
            background(["tests.httpstub", f"127.0.0.1:10665={behaviour}"], ns),
            running([f"--config.file={config}", *only("ovn")], netns=ns) as e,
        ):
            text = metrics_when(e, lambda t: runs(t, "ovn") >= 2, within=60)
            return peak_rss(e.proc.pid), text

    small_peak, _ = peak_after_two_runs("ovn")
    big_peak, text = peak_after_two_runs("ovn-big")
    assert runs(text, "ovn", "timeout") == 0 and runs(text, "ovn", "failure") == 0
    samples = value(text, "kubev_ovn_endpoint_samples", component="kube-ovn-cni", port="10665")
    assert samples == ovn_body_samples(BIG_OVN_BYTES)
    assert (
        value(
            text,
            "kubev_ovn_endpoint_state",
            component="kube-ovn-cni",
            port="10665",
            state="serving",
        )
        == 1
    )
    growth = big_peak - small_peak
    mib = 2**20
    print(f"peak RSS: {small_peak / mib:.1f} MiB small body, {big_peak / mib:.1f} MiB 4 MB body")
    assert growth < 24 * 2**20, f"peak RSS grew {growth / 2**20:.1f} MiB for a 4 MB body"
