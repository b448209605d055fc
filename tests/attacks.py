"""Attacks on the exporter's port, for the tests and for measuring (loopback only).

Each attack is bounded in connections and time and stops by itself. An attacker connects
from its own loopback address (127.0.0.2 and up: the whole of 127.0.0.0/8 is loopback on
Linux), so the scrapes it competes with (from 127.0.0.1) come from another peer, as
Prometheus would.

    python -m tests.attacks slow-read PORT PID [CONNECTIONS [ADDRESSES]]
    python -m tests.attacks silent-tls PORT PID CONNECTIONS ADDRESSES CAFILE

prints the scrapes answered, the exporter's peak RSS (VmHWM) and RSS at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

#: one pipelined request; the attacker never reads the answers
VERBOSE = False
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"


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


async def slow_reader(port: int, source: str, until: float) -> None:
    """Connect, pipeline requests, never read a byte; reconnect when dropped."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            sock = await _connect(port, source)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        try:
            while loop.time() < until:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(loop.sock_sendall(sock, REQUEST * 16), 1)
                    await asyncio.sleep(0.5)
        except OSError:  # reset by the server
            pass
        finally:
            sock.close()
        await asyncio.sleep(0.2)


async def silent_tls(port: int, source: str, until: float) -> None:
    """Connect to a TLS port and never send a ClientHello; reconnect when dropped."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            sock = await _connect(port, source)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(sock, 1), until - loop.time())
        except OSError:
            pass
        finally:
            sock.close()
        await asyncio.sleep(0.2)


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
    attacker: Callable[[int, str, float], Awaitable[None]],
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
    10 s timeout. Returns the scrapes' statuses and the exporter's RSS."""
    raise_fd_limit(connections + 256)
    loop = asyncio.get_running_loop()
    warmup = 2.0
    until = loop.time() + warmup + scrapes * interval + 10
    attackers = [
        asyncio.create_task(attacker(port, attacker_address(i % addresses), until))
        for i in range(connections)
    ]
    await asyncio.sleep(warmup)  # let the attack take hold first
    scheme = "https" if ssl_context else "http"
    target = url or f"{scheme}://127.0.0.1:{port}/metrics"
    connector = aiohttp.TCPConnector(ssl=ssl_context or False, force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for _ in range(scrapes):
            tasks.append(asyncio.create_task(_scrape(session, target, headers or {}, VERBOSE)))
            await asyncio.sleep(interval)
        statuses = await asyncio.gather(*tasks)
    outcome = Outcome(list(statuses), status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"))
    for task in attackers:
        task.cancel()
    await asyncio.gather(*attackers, return_exceptions=True)
    return outcome


def main(argv: list[str]) -> None:
    global VERBOSE
    VERBOSE = True
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
