"""Attacks on the exporter's port, for the tests and for measuring (loopback only).

Each attack is bounded in connections and time and stops by itself. An attacker connects
from its own loopback address (127.0.0.2 and up: the whole of 127.0.0.0/8 is loopback on
Linux), so the scrapes it competes with (from 127.0.0.1) come from another peer, as
Prometheus would.

    python -m tests.attacks slow-read PORT PID [CONNECTIONS [ADDRESSES]]
    python -m tests.attacks silent-tls PORT PID CONNECTIONS ADDRESSES CAFILE

prints the scrapes answered, the exporter's peak RSS (VmHWM) and RSS at the end.

    python -m tests.attacks scrape URL COUNT INTERVAL [CAFILE [USER:PASSWORD]]   ("": none)

scrapes as Prometheus would, from a process of their own (so that a test's timing of
them is the exporter's, not that of an event loop busy with the attackers), and prints
[[status or error, seconds], ...] as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import resource
import socket
import ssl
import sys
import time
from base64 import b64encode
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import PATIENCE, ROOT, eventually

#: one pipelined request; the attacker never reads the answers
VERBOSE = False
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"


@dataclass
class Campaign:
    """What the attackers share: when they stop by themselves (a time of the event loop;
    moved up when the scrapes are done, so that an attacker whose cancellation asyncio's
    wait_for swallowed still ends), and how many have made their first attempt."""

    until: float
    tried: int = 0

    def going(self) -> bool:
        return asyncio.get_running_loop().time() < self.until

    def left(self) -> float:
        return max(0.0, self.until - asyncio.get_running_loop().time())


#: an attacker: (port, its source address, the campaign) -> runs until the campaign ends
Attacker = Callable[[int, str, Campaign], Coroutine[Any, Any, None]]


def attacker_address(i: int) -> str:
    """127.0.0.2, 127.0.0.3, ... (never 127.0.0.1, the scrapers' address)."""
    return f"127.0.{(i + 2) // 254}.{(i + 2) % 254 or 254}"


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def status_kib(pid: int, field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert match, field
    return int(match.group(1))


async def _connect(port: int, source: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    # a reader that reads nothing keeps its window small: the server holds the rest
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
    except BaseException:
        sock.close()
        raise
    return sock


async def _keep_connecting(
    port: int,
    source: str,
    campaign: Campaign,
    hold: Callable[[socket.socket], Coroutine[Any, Any, None]],
) -> None:
    """Connect and `hold` the connection until the server drops it (or the campaign ends);
    then again, at an attacker's pace. The first attempt, made or refused, counts."""
    first = True
    while campaign.going():
        try:
            sock = await _connect(port, source)
        except (OSError, TimeoutError):
            if first:
                first, campaign.tried = False, campaign.tried + 1
            await asyncio.sleep(0.2)  # an attacker's pace between attempts
            continue
        if first:
            first, campaign.tried = False, campaign.tried + 1
        try:
            with contextlib.suppress(TimeoutError):
                await hold(sock)
        except OSError:  # reset by the server
            pass
        finally:
            sock.close()
        await asyncio.sleep(0.2)


async def slow_reader(port: int, source: str, campaign: Campaign) -> None:
    """Connect, pipeline requests, never read a byte; reconnect when dropped."""
    loop = asyncio.get_running_loop()

    async def pipeline(sock: socket.socket) -> None:
        while campaign.going():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.sock_sendall(sock, REQUEST * 16), 1)
                await asyncio.sleep(0.5)

    await _keep_connecting(port, source, campaign, pipeline)


#: a request head at the line and header limits (62 headers of 8,000 bytes), without its
#: final blank line: ~500 KiB a server must refuse before it holds it
BIG_HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(
    b"X-H%d: " % i + b"a" * 8000 + b"\r\n" for i in range(62)
)


async def big_head(port: int, source: str, campaign: Campaign) -> None:
    """Connect, send a request head as large as the line limits allow, never finish it;
    reconnect when dropped."""
    loop = asyncio.get_running_loop()

    async def send_and_wait(sock: socket.socket) -> None:
        await asyncio.wait_for(loop.sock_sendall(sock, BIG_HEAD), campaign.left())
        await asyncio.wait_for(loop.sock_recv(sock, 1), campaign.left())

    await _keep_connecting(port, source, campaign, send_and_wait)


async def silent_tls(port: int, source: str, campaign: Campaign) -> None:
    """Connect to a TLS port and never send a ClientHello; reconnect when dropped."""
    loop = asyncio.get_running_loop()

    async def wait(sock: socket.socket) -> None:
        # until the server drops it (its handshake deadline) or the campaign ends
        await asyncio.wait_for(loop.sock_recv(sock, 1), campaign.left())

    await _keep_connecting(port, source, campaign, wait)


@dataclass
class Outcome:
    statuses: list[str]
    peak_rss_kib: int
    end_rss_kib: int

    @property
    def answered(self) -> int:
        return self.statuses.count("200")

    def __str__(self) -> str:
        return (
            f"{self.answered}/{len(self.statuses)} scrapes answered, "
            f"peak RSS {self.peak_rss_kib / 1024:.0f} MiB, at the end "
            f"{self.end_rss_kib / 1024:.0f} MiB; statuses {self.statuses}"
        )


async def _scrape(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], verbose: bool = False
) -> str:
    try:
        async with session.get(url, headers=headers) as response:
            await response.read()
            return str(response.status)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return f"{type(e).__name__}: {str(e)[:60]}" if verbose else type(e).__name__


async def attack_with_scrapes(
    attacker: Attacker,
    port: int,
    pid: int,
    *,
    connections: int,
    addresses: int = 1,
    scrapes: int = 20,
    interval: float = 0.5,
    url: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Outcome:
    """`connections` attackers (spread over `addresses` source addresses) for as long as
    `scrapes` scrapes take, one every `interval` seconds, each with Prometheus's default
    10 s timeout, once every attacker has made its first attempt. Returns the scrapes'
    statuses and the exporter's RSS. The attackers stop by themselves at the latest when
    the scrapes could be done on a slow machine, and are cancelled when they are."""
    raise_fd_limit(connections + 256)
    loop = asyncio.get_running_loop()
    campaign = Campaign(until=loop.time() + PATIENCE + scrapes * interval + 10)
    attackers = [
        asyncio.create_task(attacker(port, attacker_address(i % addresses), campaign))
        for i in range(connections)
    ]

    async def attack_in_place() -> bool:  # the attack takes hold before the scrapes
        return campaign.tried >= connections

    await eventually(attack_in_place, True)
    scheme = "https" if ssl_context else "http"
    target = url or f"{scheme}://127.0.0.1:{port}/metrics"
    connector = aiohttp.TCPConnector(ssl=ssl_context or False, force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for _ in range(scrapes):
            tasks.append(asyncio.create_task(_scrape(session, target, headers or {}, VERBOSE)))
            await asyncio.sleep(interval)  # Prometheus's pace, compressed
        statuses = await asyncio.gather(*tasks)
    outcome = Outcome(list(statuses), status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"))
    campaign.until = 0.0
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, return_exceptions=True)
    return outcome


def scrape_series(
    url: str, count: int, interval: float, cafile: str | None = None, auth: str | None = None
) -> list[tuple[int | str, float]]:
    """`count` scrapes of `url`, one every `interval` seconds, each on a connection of its
    own with Prometheus's default 10 s timeout: (status or the error's name, seconds)."""
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    headers = {"Accept-Encoding": "gzip"}
    if auth is not None:
        headers["Authorization"] = "Basic " + b64encode(auth.encode()).decode()
    results: list[tuple[int | str, float]] = []
    for _ in range(count):
        if scheme == "https":
            context = ssl.create_default_context(cafile=cafile)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, int(port), timeout=10, context=context
            )
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        started = time.monotonic()
        try:
            conn.request("GET", "/" + path, headers=headers)
            response = conn.getresponse()
            response.read()
            results.append((response.status, time.monotonic() - started))
        except OSError as e:
            results.append((type(e).__name__, time.monotonic() - started))
        finally:
            conn.close()
        time.sleep(interval)  # Prometheus's pace, compressed
    return results


async def scrapes_from_another_process(
    url: str, count: int, interval: float, cafile: str | None = None, auth: str | None = None
) -> list[tuple[int | str, float]]:
    """scrape_series in a child process (`python -m tests.attacks scrape`), awaited."""
    args = ["scrape", url, str(count), str(interval), cafile or "", auth or ""]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.attacks",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(child.communicate(), count * (interval + 10) + PATIENCE)
    assert child.returncode == 0, child.returncode
    return [(status, seconds) for status, seconds in json.loads(out)]


def main(argv: list[str]) -> None:
    global VERBOSE
    VERBOSE = True
    if argv[0] == "scrape":
        cafile = argv[4] or None if len(argv) > 4 else None
        auth = argv[5] or None if len(argv) > 5 else None
        print(json.dumps(scrape_series(argv[1], int(argv[2]), float(argv[3]), cafile, auth)))
        return
    kind, port, pid = argv[0], int(argv[1]), int(argv[2])
    connections = int(argv[3]) if len(argv) > 3 else 2100
    addresses = int(argv[4]) if len(argv) > 4 else 1
    context = ssl.create_default_context(cafile=argv[5]) if kind == "silent-tls" else None
    attacker = silent_tls if kind == "silent-tls" else slow_reader
    started = time.monotonic()
    outcome = asyncio.run(
        attack_with_scrapes(
            attacker, port, pid, connections=connections, addresses=addresses, ssl_context=context
        )
    )
    print(f"{kind}: {outcome} ({time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    main(sys.argv[1:])
