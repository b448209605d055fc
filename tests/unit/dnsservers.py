"""Loopback DNS servers for the tests: a UDP and a TCP listener on one port that answer
as a test scripts them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable

from tests.dnsmsg import question_of

#: a server's script: the datagrams (or, over TCP, messages) to send back for a query
Script = Callable[[bytes], list[bytes]]


class Server:
    """A UDP and a TCP listener on one loopback port, answering by `udp` and `tcp`."""

    def __init__(self, udp: Script, tcp: Script | None = None) -> None:
        self.udp, self.tcp = udp, tcp
        self.queries: list[tuple[str, int]] = []  # (transport, qtype) in order
        self.port = 0

    def answer_udp(self, data: bytes, addr: tuple[str, int], sock: socket.socket) -> None:
        self.queries.append(("udp", question_of(data)[2]))
        for datagram in self.udp(data):
            sock.sendto(datagram, addr)

    async def answer_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        data = await reader.readexactly(length)
        self.queries.append(("tcp", question_of(data)[2]))
        assert self.tcp is not None
        for message in self.tcp(data):
            writer.write(message)
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serving(udp: Script, tcp: Script | None = None) -> AsyncIterator[Server]:
    server = Server(udp, tcp)
    loop = asyncio.get_running_loop()
    listener = await asyncio.start_server(server.answer_tcp, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", server.port))  # the same port for UDP: a free one, TCP holds it
    sock.setblocking(False)

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            data, addr = sock.recvfrom(65535)
            server.answer_udp(data, addr, sock)

    loop.add_reader(sock.fileno(), readable)
    try:
        yield server
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
        listener.close()
        await listener.wait_closed()
