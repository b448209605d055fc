"""Ask one DNS server directly for a name's addresses, as a pod's resolver would.

The node's resolver (getaddrinfo) can only ask the servers in the node's resolv.conf; the
cluster DNS service (kubelet's clusterDNS, the address pods are given) is asked with this
small client instead. One query over UDP from a fresh socket (a random source port from
the kernel and a random transaction ID), the reply's ID and question checked, datagrams
that answer something else ignored; a truncated reply is asked again over TCP. The whole
lookup (A, then AAAA when the name has no A records, then TCP if needed) is bounded by
one timeout. Parsing is bounded by exporter/checks/dnswire.py.

Why not dnspython: a check needs one question and the address records of its answer;
the ~400 lines here and in dnswire.py, with their bounds visible and property-tested against hostile
replies, are less to trust in a privileged DaemonSet on every node than a general DNS
library and its dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import struct
from dataclasses import dataclass

from exporter.checks.dnswire import (
    MAX_MESSAGE,
    MalformedReply,
    NotOurReply,
    Query,
    Rcode,
    Reply,
    RRType,
    make_query,
    parse_reply,
    rcode_reason,
)

DNS_PORT = 53
_ERRNO_REASONS = {
    errno.ECONNREFUSED: "nothing answers on port {port} there (ICMP port unreachable)",
    errno.EHOSTUNREACH: "the server's address is unreachable (no route or no neighbour)",
    errno.ENETUNREACH: "no route to the server's network",
}


class LookupFailed(Exception):
    """The server gave no usable answer; the message says why, for a person."""


@dataclass(frozen=True)
class Answer:
    addresses: tuple[str, ...]
    transport: str  # "udp" or "tcp": how the last reply came


class _Datagrams(asyncio.DatagramProtocol):
    """Waits for the datagram that answers the query; any other is dropped, as a stub
    resolver does (an off-path packet must not end the wait)."""

    def __init__(self, query: Query, reply: asyncio.Future[Reply]) -> None:
        self.query = query
        self.reply = reply

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.reply.done():
            return
        try:
            self.reply.set_result(parse_reply(data, self.query))
        except NotOurReply:
            pass
        except MalformedReply as e:
            self.reply.set_exception(e)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc or ConnectionError("the socket closed"))


async def _udp(server: str, port: int, name: str, qtype: RRType) -> Reply:
    query = make_query(name, qtype, secrets.randbits(16))
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[Reply] = loop.create_future()
    # connected: the kernel drops datagrams from any other address or port
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Datagrams(query, reply), remote_addr=(server, port)
    )
    try:
        transport.sendto(query.wire())
        return await reply
    finally:
        transport.close()


async def _tcp(server: str, port: int, name: str, qtype: RRType) -> Reply:
    query = make_query(name, qtype, secrets.randbits(16))
    reader, writer = await asyncio.open_connection(server, port, limit=MAX_MESSAGE + 2)
    try:
        wire = query.wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        data = await reader.readexactly(length)  # at most 65535: the prefix is 16 bits
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        return parse_reply(data, query)
    except NotOurReply as e:  # on a connection of our own there is nobody else to answer
        raise MalformedReply(f"over TCP: {e}") from None


async def _ask(server: str, port: int, name: str, qtype: RRType) -> tuple[Reply, str]:
    reply = await _udp(server, port, name, qtype)
    if not reply.truncated:
        return reply, "udp"
    return await _tcp(server, port, name, qtype), "tcp"


async def resolve(server: str, name: str, within: float, port: int = DNS_PORT) -> Answer:
    """The addresses `server` gives for `name` (A records, or AAAA when there are none),
    within `within` seconds. LookupFailed with the reason otherwise."""
    try:
        async with asyncio.timeout(within):
            transport = "udp"
            for qtype in (RRType.A, RRType.AAAA):
                reply, transport = await _ask(server, port, name, qtype)
                if reply.rcode != Rcode.NOERROR:
                    raise LookupFailed(rcode_reason(reply.rcode))
                if reply.addresses:
                    return Answer(reply.addresses, transport)
            raise LookupFailed("the name exists but has no A or AAAA records (NODATA)")
    except ValueError as e:  # a name DNS cannot carry
        raise LookupFailed(str(e)) from None
    except TimeoutError:
        raise LookupFailed(f"no answer within {within:g}s") from None
    except MalformedReply as e:
        raise LookupFailed(f"malformed reply: {e}") from None
    except asyncio.IncompleteReadError:
        raise LookupFailed("the TCP connection closed before the whole reply came") from None
    except OSError as e:
        template = _ERRNO_REASONS.get(e.errno or 0)
        reason = template.format(port=port) if template else (e.strerror or str(e))
        raise LookupFailed(reason) from None
