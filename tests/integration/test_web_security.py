"""TLS, mTLS and basic auth with a real TLS client; reload on SIGHUP; request limits; a flood.
Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from base64 import b64encode
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from tests.helpers import (
    ONLY_COMPUTE,
    ROOT,
    Exporter,
    NodeTree,
    eventually,
    fixture_args,
    running,
    wait_until,
)


def web_config(
    path: Path,
    pki: Path,
    password: str | None,
    client_auth: str | None = None,
    client_ca: str = "ca",
) -> Path:
    lines = [
        "tls_server_config:",
        f"  cert_file: {pki / 'server.crt'}",
        f"  key_file: {pki / 'server.key'}",
    ]
    if client_auth:
        lines += [
            f"  client_auth_type: {client_auth}",
            f"  client_ca_file: {pki / (client_ca + '.crt')}",
        ]
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
    client_cert: bool | str = False,
    path: str = "/metrics",
) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client_cert:
        name = client_cert if isinstance(client_cert, str) else "client"
        context.load_cert_chain(pki / f"{name}.crt", pki / f"{name}.key")
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
    exporter.wait_listening()
    return exporter


def test_tls_and_basic_auth(tmp_path: Path, node_tree: NodeTree, pki: Path) -> None:
    config = web_config(tmp_path / "web.yml", pki, "right")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
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


def test_peers_fetch_the_identity_with_the_same_tls_and_credentials(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    """/-/identity sits behind the same TLS and basic auth as /metrics; the peers check
    fetches it with its configured CA and credentials, and without them gets a 401 (the
    peer is then probed for what every node serves)."""
    from exporter.checks.peers import PeersCheck
    from exporter.config import from_mapping
    from exporter.paths import Paths
    from tests.checkrun import run, values

    config = web_config(tmp_path / "web.yml", pki, "right")
    password = tmp_path / "password"
    password.write_text("right\n")
    exporter = start(
        [f"--web.config.file={config}", "--role=control-plane"], node_tree("undersized")
    )

    def peers_check(password_file: Path) -> PeersCheck:
        identity = {
            "port": exporter.port,
            "scheme": "https",
            "username": "prometheus",
            "password_file": str(password_file),
            "tls": {"ca_file": str(pki / "ca.crt")},
        }
        cfg = from_mapping(
            {
                "node_address": "127.0.0.2",  # the prober; its peer is the exporter
                "checks": {"peers": {"static": ["127.0.0.1"], "identity": identity}},
            }
        )
        return PeersCheck(cfg, Paths())

    try:
        assert https_get(exporter.port, pki, path="/-/identity")[0] == 401
        assert https_get(exporter.port, pki, "prometheus", "right", path="/-/identity")[0] == 200
        told = run(peers_check(password))
        wrong = tmp_path / "wrong"
        wrong.write_text("wrong\n")
        refused = run(peers_check(wrong))
    finally:
        exporter.stop()
    assert values(told)[("kubev_peer_identities", ("identity",))] == 1
    # a control plane tells it serves the API server, so it is probed (reset: nothing
    # listens here, or open if something on this machine does); a peer that told nothing
    # is probed only for what every node serves
    apiserver = ("kube-apiserver", "6443", "tcp")
    reached = {
        s for s in ("open", "reset") if values(told).get(("kubev_peer_ports", (*apiserver, s)))
    }
    assert len(reached) == 1
    assert values(refused)[("kubev_peer_identities", ("failed",))] == 1
    assert any("no identity (HTTP 401)" in n.text for n in refused.notes)
    assert ("kubev_peer_ports", (*apiserver, "unprobed")) not in values(refused)


def test_mutual_tls(tmp_path: Path, node_tree: NodeTree, pki: Path) -> None:
    config = web_config(tmp_path / "web.yml", pki, None, "RequireAndVerifyClientCert")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        assert https_get(exporter.port, pki, client_cert=True)[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
            https_get(exporter.port, pki)  # no client certificate
    finally:
        exporter.stop()


def test_sighup_reloads_without_dropping_the_listener(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    config = web_config(tmp_path / "web.yml", pki, "first")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        assert https_get(exporter.port, pki, "prometheus", "first")[0] == 200
        web_config(config, pki, "second")
        exporter.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: https_get(exporter.port, pki, "prometheus", "second")[0] == 200,
            "the new password accepted",
        )
        assert https_get(exporter.port, pki, "prometheus", "first")[0] == 401
        config.write_text("basic_auth_users: [not, a, mapping]\n")  # a broken file
        exporter.proc.send_signal(signal.SIGHUP)
        exporter.wait_for_log('msg="web config not reloaded"')
        assert https_get(exporter.port, pki, "prometheus", "second")[0] == 200  # kept
        assert exporter.proc.poll() is None
    finally:
        log = exporter.stop()
    assert 'msg="web config reloaded"' in log
    assert 'msg="web config not reloaded"' in log


def test_a_removed_client_ca_is_trusted_no_more_after_sighup(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    """Rotating client_ca_file: a certificate from the CA that was removed is refused."""
    config = web_config(tmp_path / "web.yml", pki, None, "RequireAndVerifyClientCert", "ca")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        assert https_get(exporter.port, pki, client_cert="client")[0] == 200
        web_config(config, pki, None, "RequireAndVerifyClientCert", "ca2")
        exporter.proc.send_signal(signal.SIGHUP)

        def new_ca_accepted() -> bool:  # the reload is done
            with contextlib.suppress(ssl.SSLError, ConnectionResetError, OSError):
                return https_get(exporter.port, pki, client_cert="client2")[0] == 200
            return False

        wait_until(new_ca_accepted, "the new CA's client certificate accepted")
        with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
            https_get(exporter.port, pki, client_cert="client")  # the removed CA's
    finally:
        exporter.stop()
    assert exporter.proc.returncode == 0


def test_a_first_burst_larger_than_the_tls_read_buffer(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    """40 KB of garbage before any handshake: the connection is dropped, nothing is logged
    as an error, TLS goes on."""
    config = web_config(tmp_path / "web.yml", pki, None)
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as raw:
            raw.sendall(os.urandom(40_000))
            with contextlib.suppress(ConnectionResetError):
                while raw.recv(4096):  # perhaps an alert, then closed by the server
                    pass
        assert https_get(exporter.port, pki)[0] == 200
    finally:
        log = exporter.stop()
    assert "level=error" not in log, log


def test_probes_answer_without_basic_auth(tmp_path: Path, node_tree: NodeTree, pki: Path) -> None:
    """The kubelet's probes carry no password: /-/healthy and /-/ready answer without one
    (over TLS still); everything else (the report, /report.json, /-/identity) asks for it."""
    config = web_config(tmp_path / "web.yml", pki, "right")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        assert https_get(exporter.port, pki, path="/-/healthy")[0] == 200
        wait_until(lambda: https_get(exporter.port, pki, path="/-/ready")[0] == 200, "ready")
        for path in ("/metrics", "/", "/report.json", "/-/identity"):
            assert https_get(exporter.port, pki, path=path)[0] == 401, path
            assert https_get(exporter.port, pki, "prometheus", "right", path=path)[0] == 200, path
        for path in ("/-/healthy/../metrics", "/-/healthy/"):
            assert https_get(exporter.port, pki, path=path)[0] in (401, 404), path
    finally:
        exporter.stop()


def test_a_password_longer_than_bcrypt_reads_is_401(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    long = "p" * 100  # bcrypt reads 72 bytes; bcrypt 5 raises beyond
    config = web_config(tmp_path / "web.yml", pki, "right")
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    try:
        assert https_get(exporter.port, pki, "prometheus", long)[0] == 401
        assert https_get(exporter.port, pki, "nobody", long)[0] == 401
        assert https_get(exporter.port, pki, "prometheus", "right")[0] == 200
    finally:
        log = exporter.stop()
    assert "Traceback" not in log and "level=error" not in log


def basic_auth_config(path: Path, password: str, rounds: int) -> Path:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    path.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return path


def test_timing_does_not_tell_which_users_exist(tmp_path: Path, node_tree: NodeTree) -> None:
    """A wrong password for the known user and any password for an unknown user take as
    long (both cost a bcrypt): medians within a factor of two of each other."""
    config = basic_auth_config(tmp_path / "web.yml", "right", rounds=10)
    exporter = start([f"--web.config.file={config}"], node_tree("undersized"))
    conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    took: dict[str, list[float]] = {"prometheus": [], "nobody": []}
    try:
        for _ in range(15):
            for user in took:  # interleaved: load on the machine hits both alike
                token = b64encode(f"{user}:wrong".encode()).decode()
                started = time.perf_counter()
                conn.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
                response = conn.getresponse()
                response.read()
                took[user].append(time.perf_counter() - started)
                assert response.status == 401
    finally:
        conn.close()
        exporter.stop()
    known, unknown = (statistics.median(took[user]) for user in ("prometheus", "nobody"))
    assert 0.5 < unknown / known < 2, (
        f"median known {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms"
    )


@pytest.mark.parametrize(
    ("content", "message", "reason"),
    [
        (  # the key, and the reason the operating system gave (in Python's words around it)
            "tls_server_config: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}\n",
            "tls_server_config: ",
            os.strerror(errno.ENOENT),
        ),
        (
            "basic_auth_users: {prometheus: secret}\n",
            "basic_auth_users.prometheus: must be a bcrypt hash ($2y$...)",
            "",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, min_version: TLS14}\n",
            "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'",
            "",
        ),
        ("tls_srever_config: {}\n", "tls_srever_config: unknown key", ""),
        (
            "basic_auth_users: {prometheus: $2y$10$x}\nbasic_auth_users: {}\n",
            "not valid YAML at line 2, column 1: key 'basic_auth_users' is given twice",
            "",
        ),
    ],
)
def test_bad_web_config_exits_2(tmp_path: Path, content: str, message: str, reason: str) -> None:
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
    assert reason in done.stderr.splitlines()[0], done.stderr


def test_request_limits(node_tree: NodeTree) -> None:
    with running(
        [
            *fixture_args(node_tree("undersized")),
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
        # a head of 24 KiB in lines within the limit is served; one over 32 KiB is cut off
        padded = {f"X-Padding-{i}": "a" * 3_000 for i in range(8)}
        assert exporter.get("/metrics", padded).status == 200
        huge = {f"X-Padding-{i}": "a" * 3_000 for i in range(12)}
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            exporter.get("/metrics", huge)
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


@pytest.mark.slow
def test_flood(node_tree: NodeTree) -> None:
    """500 concurrent scrapes beside 1,000 malformed or slow requests: no scrape fails.
    All of them come from 127.0.0.1, one client: the connection limits are raised here
    (this test is about requests; tests/integration/test_web_attacks.py tests the
    connection limits at their defaults)."""
    with running(
        [
            *fixture_args(node_tree("compliant", kvm_device=False)),
            *ONLY_COMPUTE,
            "--web.read-header-timeout=2s",
            "--web.max-connections=2048",
            "--web.max-connections-per-client=2048",
        ]
    ) as exporter:
        exporter.metrics()
        before = rss_kib(exporter.proc.pid)

        settled = 0  # attackers whose bad request is in (or whose connection failed)

        async def attack(i: int) -> None:
            nonlocal settled
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
                if i % 2:
                    writer.write(b"\x16\x03\x01garbage that is no HTTP\r\n\r\n")
                else:
                    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never ends
                await writer.drain()
            finally:
                settled += 1
            await reader.read(1024)  # until the server answers or closes
            writer.close()

        async def all_settled() -> bool:
            return settled == 1000

        async def scrape(session: aiohttp.ClientSession) -> int:
            async with session.get(exporter.url + "/metrics") as response:
                await response.read()
                return response.status

        async def flood() -> list[int]:
            attackers = [asyncio.create_task(attack(i)) for i in range(1000)]
            await eventually(all_settled, True)  # the bad requests are in before the scrapes
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
    assert exporter.proc.returncode == 0
