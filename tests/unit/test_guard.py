"""Connection admission (exporter/web/guard.py) as a table: per-client and global caps, and
who gives way when the table is full. The real listener under attack is tested in
tests/integration/test_web_attacks.py; here stand-in transports only record abort(), which
is all the table does to them."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from exporter.web.guard import Connections, Limits, Ticket, client_of


class FakeTransport:
    def __init__(self, address: str) -> None:
        self.address = address
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return (self.address, 40000) if name == "peername" else None

    def abort(self) -> None:
        self.aborted = True


def connect(table: Connections, address: str) -> tuple[FakeTransport, Ticket | None]:
    transport = FakeTransport(address)
    return transport, table.admit(cast(asyncio.Transport, transport))


@pytest.mark.parametrize(
    ("peername", "client"),
    [
        (("192.0.2.7", 1234), "192.0.2.7"),
        (("::ffff:192.0.2.7", 1234, 0, 0), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 1234, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 1234, 0, 0), "2001:db8:1:2::/64"),
        (("fe80::1%eth0", 1234, 0, 2), "fe80::/64"),
        (None, "unknown"),
    ],
)
def test_client_of(peername: Any, client: str) -> None:
    assert client_of(peername) == client


def test_one_client_is_capped() -> None:
    table = Connections(Limits(max_connections=100, max_connections_per_client=3))
    tickets = [connect(table, "192.0.2.1")[1] for _ in range(4)]
    assert [t is not None for t in tickets] == [True, True, True, False]
    assert connect(table, "192.0.2.2")[1] is not None  # another client is not
    assert table.open == 4 and table.refused == 1


def test_a_newcomer_takes_the_place_of_the_biggest_holder() -> None:
    table = Connections(Limits(max_connections=6, max_connections_per_client=4))
    attacker = [connect(table, "192.0.2.66") for _ in range(4)]
    others = [connect(table, f"192.0.2.{i}") for i in (1, 2)]
    assert table.open == 6
    prometheus, ticket = connect(table, "192.0.2.10")  # full: the attacker gives way
    assert ticket is not None and table.evicted == 1
    assert [t.aborted for t, _ in attacker] == [True, False, False, False]  # its oldest
    assert not any(t.aborted for t, _ in others) and not prometheus.aborted
    assert table.open == 6


def test_equal_holders_do_not_evict_each_other() -> None:
    table = Connections(Limits(max_connections=4, max_connections_per_client=4))
    first = [connect(table, f"192.0.2.{i}")[0] for i in range(4)]
    _transport, ticket = connect(table, "192.0.2.3")  # holds one, as does everyone: fair
    assert ticket is None and table.refused == 1
    # a client with none takes a place (the longest-held one) from a client with one
    assert connect(table, "192.0.2.99")[1] is not None
    assert [t.aborted for t in first] == [True, False, False, False]


def test_a_busy_connection_is_not_evicted() -> None:
    table = Connections(Limits(max_connections=2, max_connections_per_client=2))
    first, busy = connect(table, "192.0.2.66")
    second, idle = connect(table, "192.0.2.66")
    assert busy is not None and idle is not None
    busy.busy = True
    assert connect(table, "192.0.2.1")[1] is not None
    assert not first.aborted and second.aborted


def test_release_is_idempotent_and_frees_the_place() -> None:
    table = Connections(Limits(max_connections=1, max_connections_per_client=1))
    _, ticket = connect(table, "192.0.2.1")
    assert ticket is not None
    table.release(ticket)
    table.release(ticket)  # evicted, then its connection_lost: counted once
    assert table.open == 0
    assert connect(table, "192.0.2.1")[1] is not None


def test_the_cap_stays_below_the_file_descriptor_limit() -> None:
    limits = Limits(max_connections=256, max_connections_per_client=16).within_fd_limit(200)
    assert limits.max_connections == 72 and limits.max_connections_per_client == 16
    assert Limits().within_fd_limit(1 << 20) == Limits()
