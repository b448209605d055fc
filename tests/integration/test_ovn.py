"""The OVN check against real HTTP servers that answer well, badly, hugely, slowly."""

from __future__ import annotations

import ssl
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from exporter.blocking import BlockingGate
from exporter.checks.ovn import Fetched, probe_endpoint
from tests.helpers import background, network_namespace, only, running, value
from tests.httpstub import TOKEN, app_for, serving

MAX_BYTES = 4 * 1024 * 1024


async def probe(
    port: int,
    *,
    headers: dict[str, str] | None = None,
    limit: float = 3.0,
    scheme: str = "http",
    ssl_context: ssl.SSLContext | bool = True,
) -> Fetched:
    connector = aiohttp.TCPConnector(ssl=ssl_context, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await probe_endpoint(
            session,
            f"{scheme}://127.0.0.1:{port}/metrics",
            headers or {},
            MAX_BYTES,
            limit,
            BlockingGate("test"),
        )


async def test_good_endpoint() -> None:
    async with serving(app_for("good")) as port:
        result = await probe(port)
    assert result.up and result.status == 200 and result.samples == 3


async def test_server_error() -> None:
    async with serving(app_for("status500")) as port:
        result = await probe(port)
    assert not result.up and result.status == 500 and result.reason == "HTTP 500"


async def test_garbage_is_not_metrics() -> None:
    async with serving(app_for("garbage")) as port:
        result = await probe(port)
    assert not result.up and result.status == 200 and result.samples is None
    assert result.reason is not None and result.reason.startswith("not Prometheus text")


async def test_fifty_mebibytes_are_cut_off_with_bounded_memory() -> None:
    async with serving(app_for("huge")) as port:
        tracemalloc.start()
        try:
            result = await probe(port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not result.up and result.reason == f"body larger than {MAX_BYTES} bytes"
    assert peak < 3 * MAX_BYTES, f"peak {peak} bytes while refusing a 50 MiB body"


async def test_trickling_server_hits_the_deadline() -> None:
    async with serving(app_for("trickle")) as port:
        result = await probe(port, limit=0.5)
    assert not result.up and result.status == 0
    assert result.reason == "no complete answer within 0.5s"
    assert result.seconds < 5  # it gave up at its deadline instead of following the trickle


async def test_redirects() -> None:
    async with serving(app_for("redirect_elsewhere")) as port:
        elsewhere = await probe(port)
    assert not elsewhere.up and elsewhere.status == 302
    assert elsewhere.reason == "redirect to another host refused: http://127.0.0.2:1/metrics"
    async with serving(app_for("redirect_here")) as port:
        here = await probe(port)
    assert here.up and here.samples == 3


async def test_bearer_token() -> None:
    async with serving(app_for("needs_token")) as port:
        without = await probe(port)
        with_token = await probe(port, headers={"Authorization": f"Bearer {TOKEN}"})
    assert without.status == 401 and not without.up
    assert with_token.up


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
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with serving(app_for("good"), ssl_context=server_ctx) as port:
        trusted = await probe(port, scheme="https", ssl_context=verify)
        untrusted = await probe(port, scheme="https")  # system CAs do not know it
        skipped = await probe(port, scheme="https", ssl_context=insecure)
        plain = await probe(port)  # plain HTTP to a TLS port
    assert trusted.up
    assert not untrusted.up and "certificate verify failed" in (untrusted.reason or "")
    assert skipped.up
    assert not plain.up


@pytest.mark.root
def test_the_real_ports_in_a_namespace(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """The whole process: 10665 serves (with a token, over TLS), 10660 answers 500, 10661 is
    absent. kube-ovn-cni is required; the controller answered, so it counts; the monitor
    is optional and silent, so it does not."""
    cert, key = certificate
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(  # one run, with room for a busy machine
        f"checks:\n  ovn:\n    scheme: https\n    bearer_token_file: {token}\n"
        f"    tls: {{ca_file: {cert}}}\n    interval: 1h\n    timeout: 1m\n"
    )
    stub = ["tests.httpstub", "--tls", str(cert), str(key), "10665=needs_token", "10660=status500"]
    with (
        network_namespace() as ns,
        background(stub, ns),
        running([f"--config.file={config}", *only("ovn")], netns=ns) as e,
    ):
        text = e.metrics()

    def metric(name: str, component: str, port: int) -> float | None:
        return value(text, name, component=component, port=str(port))

    assert metric("kubev_ovn_endpoint_up", "kube-ovn-cni", 10665) == 1
    assert metric("kubev_ovn_endpoint_samples", "kube-ovn-cni", 10665) == 3
    assert metric("kubev_ovn_endpoint_expected", "kube-ovn-cni", 10665) == 1
    assert metric("kubev_ovn_endpoint_http_status", "kube-ovn-controller", 10660) == 500
    assert metric("kubev_ovn_endpoint_up", "kube-ovn-controller", 10660) == 0
    assert metric("kubev_ovn_endpoint_http_status", "kube-ovn-monitor", 10661) == 0
    assert value(text, "kubev_requirement_met", requirement="ovn_endpoints", level="minimum") == 0
    assert "kube-ovn-controller https://127.0.0.1:10660/metrics: HTTP 500" in e.stderr
    assert "kube-ovn-monitor" not in e.stderr  # optional and silent: not a problem
