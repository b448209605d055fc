"""The port under attack, with the limits at their defaults: the real exporter on loopback,
the attackers from their own loopback addresses (tests/attacks.py), Prometheus-like scrapes
from 127.0.0.1 at the same time. Each attack is bounded in connections and time and stops
by itself.

What a user would check: the scrapes keep being answered (at least 18 of 20, each within
Prometheus's default 10 s timeout), and the exporter stays inside the pod's memory limit
(its peak RSS, VmHWM, under 128 MiB)."""

from __future__ import annotations

import asyncio
import ssl
import statistics
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest

from exporter import logs
from tests import attacks
from tests.helpers import (
    ONLY_COMPUTE,
    PATIENCE,
    Exporter,
    NodeTree,
    eventually,
    fixture_args,
    running,
)

POD_LIMIT_KIB = 128 * 1024

pytestmark = pytest.mark.slow


def serve_tls(tmp_path: Path, tree: Path, pki: Path, extra: str = "") -> Exporter:
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n"
        f"  key_file: {pki / 'server.key'}\n{extra}"
    )
    exporter = Exporter([*fixture_args(tree), *ONLY_COMPUTE, f"--web.config.file={config}"])
    exporter.wait_listening()
    return exporter


def test_slow_read_flood_from_one_client(node_tree: NodeTree) -> None:
    """2,100 connections that pipeline requests and never read their answers."""
    with running([*fixture_args(node_tree("undersized")), *ONLY_COMPUTE]) as exporter:
        outcome = asyncio.run(
            attacks.attack_with_scrapes(
                attacks.slow_reader, exporter.port, exporter.proc.pid, connections=2100
            )
        )
        assert exporter.get("/metrics").status == 200
    assert outcome.answered >= 18, outcome
    assert outcome.peak_rss_kib < POD_LIMIT_KIB, outcome


def test_slow_read_flood_from_many_addresses(node_tree: NodeTree) -> None:
    """The same from 100 addresses: the connection table is full and clients take each
    other's places. Memory stays bounded and the scrapes mostly get through."""
    with running([*fixture_args(node_tree("undersized")), *ONLY_COMPUTE]) as exporter:
        outcome = asyncio.run(
            attacks.attack_with_scrapes(
                attacks.slow_reader,
                exporter.port,
                exporter.proc.pid,
                connections=2100,
                addresses=100,
            )
        )
        assert exporter.get("/metrics").status == 200
    assert outcome.answered >= 15, outcome
    assert outcome.peak_rss_kib < POD_LIMIT_KIB, outcome


def test_large_request_heads_from_many_addresses(node_tree: NodeTree) -> None:
    """512 connections from 64 addresses (every place of the table taken), each sending a
    request head as large as the line and header limits allow (~500 KiB) and never
    finishing it: the head limit aborts them, so what they hold stays small (without it,
    256 such heads took the exporter to 300 MiB)."""
    with running([*fixture_args(node_tree("undersized")), *ONLY_COMPUTE]) as exporter:
        outcome = asyncio.run(
            attacks.attack_with_scrapes(
                attacks.big_head,
                exporter.port,
                exporter.proc.pid,
                connections=512,
                addresses=64,
            )
        )
        assert exporter.get("/metrics").status == 200
    assert outcome.answered >= 18, outcome
    assert outcome.peak_rss_kib < POD_LIMIT_KIB, outcome


def test_silent_tls_flood(tmp_path: Path, node_tree: NodeTree, pki: Path) -> None:
    """2,000 connections to the TLS port that never send a ClientHello."""
    exporter = serve_tls(tmp_path, node_tree("undersized"), pki)
    try:
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        outcome = asyncio.run(
            attacks.attack_with_scrapes(
                attacks.silent_tls,
                exporter.port,
                exporter.proc.pid,
                connections=2000,
                ssl_context=context,
            )
        )
    finally:
        exporter.stop()
    assert exporter.proc.returncode == 0
    assert outcome.answered >= 18, outcome
    assert outcome.peak_rss_kib < POD_LIMIT_KIB, outcome


def wrong_passwords(context: ssl.SSLContext) -> attacks.Attacker:
    """An attacker: a keep-alive TLS connection that sends wrong passwords as fast as it is
    answered; it reconnects when dropped. It has made its first attempt once its first
    password is answered or its connection fails."""
    token = b64encode(b"prometheus:guess").decode()
    request = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n"

    async def attacker(port: int, source: str, campaign: attacks.Campaign) -> None:
        first = True
        while campaign.going():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0), ssl=context
                )
            except (OSError, TimeoutError):
                if first:
                    first, campaign.tried = False, campaign.tried + 1
                await asyncio.sleep(0.2)  # an attacker's pace between attempts
                continue
            try:
                while campaign.going():
                    writer.write(request.encode())
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    if first:
                        first, campaign.tried = False, campaign.tried + 1
            except (OSError, TimeoutError, asyncio.IncompleteReadError, IndexError, ValueError):
                if first:
                    first, campaign.tried = False, campaign.tried + 1
            finally:
                writer.close()
            await asyncio.sleep(0.2)  # an attacker's pace between attempts

    return attacker


def test_wrong_passwords_do_not_slow_authenticated_scrapes(
    tmp_path: Path, node_tree: NodeTree, pki: Path
) -> None:
    """400 connections (25 addresses) trying passwords beside Prometheus's scrapes. bcrypt
    at cost 10 takes ~80 ms here: the attackers keep the password checks busy, Prometheus's
    credentials (checked once before) never wait for them."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    exporter = serve_tls(
        tmp_path, node_tree("undersized"), pki, f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    url = f"https://127.0.0.1:{exporter.port}/metrics"
    cafile = str(pki / "ca.crt")
    context = ssl.create_default_context(cafile=cafile)

    async def attack() -> list[tuple[int | str, float]]:
        loop = asyncio.get_running_loop()
        campaign = attacks.Campaign(until=loop.time() + PATIENCE + 20)
        attacker = wrong_passwords(context)
        attackers = [
            asyncio.create_task(attacker(exporter.port, attacks.attacker_address(i % 25), campaign))
            for i in range(400)
        ]

        async def attack_under_way() -> bool:  # every attacker has had a go
            return campaign.tried >= len(attackers)

        try:
            await eventually(attack_under_way, True)
            # Prometheus is another process: timed there, the scrapes wait for the
            # exporter only, not for this event loop's 400 TLS clients
            return await attacks.scrapes_from_another_process(
                url, 20, 0.3, cafile, "prometheus:right"
            )
        finally:
            campaign.until = 0.0
            for task in attackers:
                task.cancel()
            await asyncio.gather(*attackers, return_exceptions=True)

    attacks.raise_fd_limit(1000)
    try:
        # Prometheus was scraping before: its credentials are known good
        assert attacks.scrape_series(url, 1, 0, cafile, "prometheus:right")[0][0] == 200
        results = asyncio.run(attack())
    finally:
        exporter.stop()
    statuses = [status for status, _ in results]
    assert statuses == [200] * 20, results
    median = statistics.median(seconds for _, seconds in results)
    assert median < 1.0, f"median scrape {median:.2f}s: {results}"


BAD_REQUESTS = [
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nBroken header line\r\n\r\n",
]


async def send_bad_requests(port: int, count: int) -> None:
    """`count` malformed requests, 16 connections at a time, from 127.0.0.2."""
    slots = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with slots:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.0.2", 0)
                )
                writer.write(BAD_REQUESTS[i % len(BAD_REQUESTS)])
                await asyncio.wait_for(reader.read(4096), 10)
                writer.close()
            except (OSError, TimeoutError):
                pass

    await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_volume_of_5000_malformed_requests(node_tree: NodeTree, level: str) -> None:
    with running(
        [
            *fixture_args(node_tree("undersized")),
            *ONLY_COMPUTE,
            f"--log.level={level}",
        ]
    ) as exporter:
        asyncio.run(asyncio.wait_for(send_bad_requests(exporter.port, 5000), 120))
        assert exporter.get("/metrics").status == 200
    bad = [line for line in exporter.stderr.splitlines() if 'msg="bad request"' in line]
    dropped = [line for line in exporter.stderr.splitlines() if "dropped by the rate" in line]
    assert "Traceback" not in exporter.stderr
    assert sum(len(line) + 1 for line in bad + dropped) < 4096, bad[:3]
    if level == "info":
        assert bad == [] and dropped == []
    else:  # one line each: the first few of each kind (the parser's error), then counted
        assert 1 <= len(bad) <= logs.BURST * len(BAD_REQUESTS), bad
        assert all("level=debug logger=aiohttp.server" in line for line in bad), bad
        counted = sum(
            int(line.rpartition("suppressed=")[2])
            for line in bad + dropped
            if "suppressed=" in line
        )
        assert counted + len(bad) == 5000, dropped  # every one accounted for
