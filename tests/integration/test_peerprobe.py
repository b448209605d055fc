"""The peer probe on real sockets over loopback (no root): open, reset, and ICMP port
unreachable read from the socket's error queue, v4 and v6. Firewalls (nftables drop and
reject) are in tests/integration/test_peers.py, inside network namespaces."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from exporter.checks.peerprobe import State, Target, probe_all
from tests.helpers import free_port


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)  # never accepted: room for every probe's connection
        yield sock.getsockname()[1]


def closed_port(family: int = socket.AF_INET) -> int:
    """A port nothing listens on (bound and released: free right now)."""
    if family == socket.AF_INET:
        return free_port()
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port: int = sock.getsockname()[1]
        return port


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_open_reset_and_udp_port_unreachable(listener: int) -> None:
    closed = closed_port()
    targets = [
        Target("127.0.0.1", listener, "tcp"),
        Target("127.0.0.1", closed, "tcp"),
        Target("127.0.0.1", closed, "udp"),
    ]
    opened, reset, udp = probe_all(targets, 2.0, 8)
    assert opened is not None and opened.state is State.OPEN
    assert reset is not None and reset.state is State.RESET and reset.by is None
    assert reset.how == "nothing listens"
    # the datagram drew ICMP port unreachable: the path is proven, nothing listens yet
    assert udp is not None and udp.state is State.RESET
    assert udp.by == "127.0.0.1" and "ICMP port unreachable" in udp.reason


def test_udp_silence_is_unknown_unless_nothing_should_listen() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:  # like Geneve: silent
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        unknown, dropped = probe_all(
            [Target("127.0.0.1", port, "udp"), Target("127.0.0.1", port, "udp", True)], 0.2, 8
        )
    assert unknown is not None and unknown.state is State.UNKNOWN and unknown.silent
    assert dropped is not None and dropped.state is State.FILTERED and dropped.how == "dropped"


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_reset_and_icmpv6_port_unreachable() -> None:
    closed = closed_port(socket.AF_INET6)
    reset, udp = probe_all([Target("::1", closed, "tcp"), Target("::1", closed, "udp")], 2.0, 8)
    assert reset is not None and reset.state is State.RESET
    assert udp is not None and udp.state is State.RESET
    assert udp.by == "::1" and "ICMPv6 port unreachable" in udp.reason


def test_no_probe_starts_after_the_deadline(listener: int) -> None:
    targets = [Target("127.0.0.1", listener, "tcp")] * 3
    assert probe_all(targets, 1.0, 8, deadline=time.monotonic() - 1) == [None, None, None]


def test_concurrency_bounds_the_sockets_in_flight(listener: int) -> None:
    """Two hundred probes through eight slots: every one answered."""
    results = probe_all([Target("127.0.0.1", listener, "tcp")] * 200, 2.0, 8)
    assert [r.state if r else None for r in results] == [State.OPEN] * 200
