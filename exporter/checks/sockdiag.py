"""Listening sockets from the kernel's sock_diag netlink interface (what `ss -l` reads).

Only the family, bound address and port of each socket are needed, so the reply is read
with struct at fixed offsets instead of a general netlink parser: a dump of a thousand
listeners costs about a millisecond of the interpreter lock instead of the ~50 ms a full
message decode takes.
Blocking; run it in a thread. Bounded: a receive timeout and a cap on reply bytes.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
NLMSG_ERROR = 2
NLMSG_DONE = 3

TCP_LISTEN = 10
UDP_UNCONNECTED = 7  # TCP_CLOSE: how sock_diag reports a bound, unconnected UDP socket

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
#: struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed sockid (48)
_REQUEST = struct.Struct("=BBBxI48x")
#: inet_diag_msg: family, state, timer, retrans, then the socket id: sport, dport (big
#: endian), src and dst (16 bytes each; IPv4 uses the first 4)
_ID = struct.Struct("=B3x")
_SPORT = struct.Struct("!H")
_SPORT_AT, _SRC_AT = 4, 8
_ERRNO = struct.Struct("=i")  # nlmsgerr.error, and NLMSG_DONE's payload: -errno or 0
_MSG_MIN = 72  # sizeof(struct inet_diag_msg)
_RECV = 65536

#: replies beyond this many bytes (about 160,000 listening sockets) are refused
MAX_REPLY_BYTES = 16 << 20


class SockDiagError(OSError):
    pass


@dataclass
class Dump:
    """What one dump's datagrams said so far."""

    seq: int
    #: (family, bound address bytes, port) of each socket
    sockets: set[tuple[int, bytes, int]] = field(default_factory=set)
    done: bool = False
    #: NLM_F_DUMP_INTR: sockets changed during the dump, which may have missed some
    interrupted: bool = False


def _errno_at(data: bytes, offset: int, length: int, what: str) -> int:
    if length < _HEADER.size + 4:
        raise SockDiagError(errno.EBADMSG, f"truncated netlink {what} message")
    code: int = _ERRNO.unpack_from(data, offset + _HEADER.size)[0]
    return abs(code)


def parse_reply(data: bytes, dump: Dump) -> None:
    """Read one netlink datagram of a sock_diag dump into `dump`: the source ports of its
    sockets, whether it ends the dump. Anything malformed raises SockDiagError, and so does
    an error the kernel reports (in NLMSG_ERROR, or in NLMSG_DONE's payload, which is how
    a dump that fails midway, such as a protocol without its diag module, ends)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, flags, seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise SockDiagError(errno.EBADMSG, "truncated sock_diag message")
        if seq == dump.seq:
            dump.interrupted |= bool(flags & NLM_F_DUMP_INTR)
            if kind == NLMSG_DONE:
                code = _errno_at(data, offset, length, "done")
                if code:
                    raise SockDiagError(code, f"sock_diag dump: {os.strerror(code)}")
                dump.done = True
                return
            if kind == NLMSG_ERROR:
                code = _errno_at(data, offset, length, "error")
                if code:
                    raise SockDiagError(code, f"sock_diag: {os.strerror(code)}")
            elif kind == SOCK_DIAG_BY_FAMILY and length >= _HEADER.size + _MSG_MIN:
                msg = offset + _HEADER.size
                family = _ID.unpack_from(data, msg)[0]
                port = _SPORT.unpack_from(data, msg + _SPORT_AT)[0]
                size = 4 if family == socket.AF_INET else 16
                dump.sockets.add((family, data[msg + _SRC_AT : msg + _SRC_AT + size], port))
        offset += (length + 3) & ~3


class _Socket:
    """One sock_diag socket: numbered requests, one byte budget for all replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 0
        self.budget = MAX_REPLY_BYTES

    def dump(self, family: int, protocol: int, state: int) -> Dump:
        """One dump; once more if the kernel says sockets changed during it."""
        for _ in range(2):
            self.seq += 1
            dump = Dump(self.seq)
            payload = _REQUEST.pack(family, protocol, 0, 1 << state)
            flags = NLM_F_REQUEST | NLM_F_DUMP
            size = _HEADER.size + len(payload)
            self.sock.send(_HEADER.pack(size, SOCK_DIAG_BY_FAMILY, flags, self.seq, 0) + payload)
            while not dump.done:
                data = self.sock.recv(_RECV)
                self.budget -= len(data)
                if self.budget < 0:
                    raise SockDiagError(
                        errno.EMSGSIZE, f"sock_diag reply over {MAX_REPLY_BYTES} bytes"
                    )
                parse_reply(data, dump)
            if not dump.interrupted:
                break
        return dump


@dataclass(frozen=True)
class Listeners:
    """Who listens where: protocol -> port -> the addresses bound ("0.0.0.0" and "::" for
    every address)."""

    by_port: dict[str, dict[int, frozenset[str]]]

    def ports(self, protocol: str) -> set[int]:
        return set(self.by_port.get(protocol, {}))

    def addresses(self, protocol: str, port: int) -> frozenset[str]:
        return self.by_port.get(protocol, {}).get(port, frozenset())

    @classmethod
    def of(cls, sockets: Iterable[tuple[str, int, bytes, int]]) -> Listeners:
        found: dict[str, dict[int, set[str]]] = {"tcp": {}, "udp": {}}
        for protocol, family, raw, port in sockets:
            address = str(ipaddress.ip_address(raw)) if family in _FAMILIES else "?"
            found.setdefault(protocol, {}).setdefault(port, set()).add(address)
        return cls(
            {p: {port: frozenset(a) for port, a in ports.items()} for p, ports in found.items()}
        )


_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def listeners(timeout: float = 2.0) -> Listeners:
    """Listening TCP sockets and bound, unconnected UDP sockets, with their addresses, IPv4
    and IPv6, in this process's network namespace. `timeout` bounds each receive; the
    check's own timeout bounds the whole."""
    found: list[tuple[str, int, bytes, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        diag = _Socket(sock)
        for family in _FAMILIES:
            for name, protocol, state in (
                ("tcp", socket.IPPROTO_TCP, TCP_LISTEN),
                ("udp", socket.IPPROTO_UDP, UDP_UNCONNECTED),
            ):
                for fam, raw, port in diag.dump(family, protocol, state).sockets:
                    found.append((name, fam, raw, port))
    return Listeners.of(found)


def listening_ports(timeout: float = 2.0) -> dict[str, set[int]]:
    """Ports with a listener on any address (see listeners())."""
    found = listeners(timeout)
    return {protocol: found.ports(protocol) for protocol in ("tcp", "udp")}
