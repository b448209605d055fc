"""TLS, mTLS and basic auth with a real TLS client; reload on SIGHUP; request limits; a flood.
Loopback only."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from tests.helpers import ROOT, Exporter, fixture_args, node_tree, running

ONLY_COMPUTE = [
    "--no-collector.kvm",
    "--no-collector.disk",
    "--no-collector.network",
    "--no-collector.ports",
    "--no-collector.ovn",
]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, by openssl."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=kubev-test-ca",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl(
            "req",
            *ec,
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
            "-subj",
            f"/CN={name}",
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-out",
            str(d / f"{name}.crt"),
            "-days",
            "2",
            "-extfile",
            str(d / f"{name}.ext"),
        )
    yield d


def web_config(path: Path, pki: Path, password: str | None, client_auth: str | None = None) -> Path:
    lines = [
        "tls_server_config:",
        f"  cert_file: {pki / 'server.crt'}",
        f"  key_file: {pki / 'server.key'}",
    ]
    if client_auth:
        lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {pki / 'ca.crt'}"]
    if password:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        lines += ["basic_auth_users:", f"  prometheus: '{hashed}'"]
    path.write_text("\n".join(lines) + "\n")
    return path


def https_get(
    port: int,
    pki: Path,
    user: str | None = None,
    password: str | None = None,
    client_cert: bool = False,
    path: str = "/metrics",
) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client_cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.headers)
    finally:
        conn.close()


def start(args: list[str], tree: Path) -> Exporter:
    """The exporter with a web config: ready is probed by the TCP port (it speaks TLS)."""
    exporter = Exporter([*fixture_args(tree), *ONLY_COMPUTE, *args])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", exporter.port), timeout=1).close()
            return exporter
        except OSError:
            assert exporter.proc.poll() is None, exporter.stop()
            time.sleep(0.05)
    raise AssertionError(exporter.stop())


def test_tls_and_basic_auth(tmp_path: Path, pki: Path) -> None:
    config = web_config(tmp_path / "web.yml", pki, "right")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized", tmp_path))
    try:
        assert https_get(exporter.port, pki, "prometheus", "right")[0] == 200
        status, headers = https_get(exporter.port, pki, "prometheus", "wrong")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert https_get(exporter.port, pki)[0] == 401
        assert https_get(exporter.port, pki, "someone", "right")[0] == 401
        # plain HTTP to the TLS port: refused cleanly, and TLS still works afterwards
        plain = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
        with pytest.raises(
            (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)
        ):
            plain.request("GET", "/metrics")
            plain.getresponse()
        plain.close()
        assert https_get(exporter.port, pki, "prometheus", "right")[0] == 200
    finally:
        exporter.stop()
    assert exporter.proc.returncode == 0


def test_mutual_tls(tmp_path: Path, pki: Path) -> None:
    config = web_config(tmp_path / "web.yml", pki, None, "RequireAndVerifyClientCert")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized", tmp_path))
    try:
        assert https_get(exporter.port, pki, client_cert=True)[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
            https_get(exporter.port, pki)  # no client certificate
    finally:
        exporter.stop()


def test_sighup_reloads_without_dropping_the_listener(tmp_path: Path, pki: Path) -> None:
    config = web_config(tmp_path / "web.yml", pki, "first")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized", tmp_path))
    try:
        assert https_get(exporter.port, pki, "prometheus", "first")[0] == 200
        web_config(config, pki, "second")
        exporter.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while https_get(exporter.port, pki, "prometheus", "second")[0] != 200:
            assert time.monotonic() < deadline, "new password never accepted"
            time.sleep(0.1)
        assert https_get(exporter.port, pki, "prometheus", "first")[0] == 401
        config.write_text("basic_auth_users: [not, a, mapping]\n")  # a broken file
        exporter.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert https_get(exporter.port, pki, "prometheus", "second")[0] == 200  # kept
        assert exporter.proc.poll() is None
    finally:
        log = exporter.stop()
    assert 'msg="web config reloaded"' in log
    assert 'msg="web config not reloaded"' in log


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "tls_server_config: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}\n",
            "tls_server_config: [Errno 2] No such file or directory",
        ),
        (
            "basic_auth_users: {prometheus: secret}\n",
            "basic_auth_users.prometheus: must be a bcrypt hash ($2y$...)",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, min_version: TLS14}\n",
            "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'",
        ),
        ("tls_srever_config: {}\n", "tls_srever_config: unknown key"),
        (
            "basic_auth_users: {prometheus: $2y$10$x}\nbasic_auth_users: {}\n",
            "not valid YAML at line 2, column 1: key 'basic_auth_users' is given twice",
        ),
    ],
)
def test_bad_web_config_exits_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--web.config.file={path}",
            "--web.listen-address=127.0.0.1:0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"kubev-node-exporter: {path}: {message}"), done.stderr


def test_request_limits(tmp_path: Path) -> None:
    with running(
        [
            *fixture_args(node_tree("undersized", tmp_path)),
            *ONLY_COMPUTE,
            "--web.read-header-timeout=1s",
        ]
    ) as exporter:
        assert exporter.get("/nope").status == 404
        conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
        conn.request("POST", "/metrics", body=b"x")
        assert conn.getresponse().status == 405
        conn.close()
        big = exporter.get("/metrics", {"X-Padding": "a" * 10_000})
        assert big.status == 400
        # a slow client that never finishes its request head is cut off
        slow = socket.create_connection(("127.0.0.1", exporter.port), timeout=5)
        slow.sendall(b"GET /metr")
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 4
        slow.close()
        assert exporter.get("/metrics").status == 200


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1))


def test_flood(tmp_path: Path) -> None:
    """500 concurrent scrapes beside 1,000 malformed or slow requests: no scrape fails.
    All of them come from 127.0.0.1, one client: the connection limits are raised here
    (this test is about requests; tests/integration/test_web_attacks.py tests the
    connection limits at their defaults)."""
    with running(
        [
            *fixture_args(node_tree("compliant", tmp_path)),
            *ONLY_COMPUTE,
            "--web.read-header-timeout=2s",
            "--web.max-connections=2048",
            "--web.max-connections-per-client=2048",
        ]
    ) as exporter:
        exporter.metrics()
        before = rss_kib(exporter.proc.pid)

        async def attack(i: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
            if i % 2:
                writer.write(b"\x16\x03\x01garbage that is no HTTP\r\n\r\n")
            else:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never ends
            await writer.drain()
            await reader.read(1024)  # until the server answers or closes
            writer.close()

        async def scrape(session: aiohttp.ClientSession) -> int:
            async with session.get(exporter.url + "/metrics") as response:
                await response.read()
                return response.status

        async def flood() -> list[int]:
            attackers = [asyncio.create_task(attack(i)) for i in range(1000)]
            await asyncio.sleep(0.2)
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                statuses = await asyncio.gather(*(scrape(session) for _ in range(500)))
            await asyncio.wait_for(asyncio.gather(*attackers, return_exceptions=True), 30)
            return list(statuses)

        statuses = asyncio.run(flood())
        assert statuses == [200] * 500
        after = rss_kib(exporter.proc.pid)
        assert after - before < 40 * 1024, f"RSS grew {(after - before) / 1024:.1f} MiB"
        assert exporter.get("/metrics").status == 200
        assert exporter.proc.poll() is None
    assert os.path.exists("/proc") and exporter.proc.returncode == 0
