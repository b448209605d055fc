"""Probes of another node's ports: can this node reach them, and if not, what stops it?

TCP: a non-blocking connect. Connected: open. A reset (ECONNREFUSED and nothing on the
socket's error queue): the peer is reachable and nothing listens there. No answer within
the timeout: filtered (a firewall dropped the SYN, or the SYN-ACK).

A refusal is not always a reset: iptables' default REJECT answers a TCP SYN with an ICMP
port unreachable, which the kernel reports as ECONNREFUSED exactly like a reset. With
IP_RECVERR (IPV6_RECVERR) set, the kernel also queues the ICMP message on the socket's
error queue (MSG_ERRQUEUE; struct sock_extended_err in linux/errqueue.h): a refusal with
an ICMP message behind it came from a firewall (a closed TCP port answers with a reset,
never with ICMP), one without came from the peer's TCP stack. The ICMP message also says
who sent it (SO_EE_OFFENDER): this node's own firewall (an output rule), the peer, or a
router or firewall on the path.

UDP (Geneve's 6081): a connected socket with IP_RECVERR sends one small datagram. ICMP
port unreachable proves the path (nothing listens yet, but the datagram arrived); ICMP
prohibited proves a firewall; silence proves nothing where something may listen (Geneve
answers nothing), so it is unknown, unless the peer is known to listen nowhere on the port
(preflight, or the peer says so), where silence means the datagram was dropped.

Every probe runs in one thread with non-blocking sockets and a selector (as the ports
check's sweep does), `concurrency` at a time, each bounded by the timeout.
"""

from __future__ import annotations

import errno
import selectors
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# linux/in.h, linux/in6.h, linux/socket.h, linux/errqueue.h (Python names only some)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
#: struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data;
#: the offender's sockaddr follows it
_EXTENDED_ERR = struct.Struct("=IBBBBII")

#: the datagram sent to a UDP port. Its first byte gives Geneve version 1 (the top two bits
#: of 'k'): a Geneve endpoint drops it as malformed before it reaches the overlay
#: (torvalds/linux drivers/net/geneve.c geneve_udp_encap_recv: GENEVE_VER is 0)
UDP_PAYLOAD = b"kubev-node-exporter peer probe\n"


class State(StrEnum):
    #: TCP connected; UDP: a datagram came back
    OPEN = "open"
    #: reachable, nothing listens: a TCP reset; UDP: ICMP port unreachable from the peer
    RESET = "reset"
    #: a firewall: no answer within the timeout, ICMP prohibited, or a TCP SYN answered
    #: with ICMP port unreachable (iptables' default REJECT)
    FILTERED = "filtered"
    #: no route, or ICMP net/host unreachable: the peer is down or off the network
    UNREACHABLE = "unreachable"
    #: UDP silence where something may listen: the probe cannot tell
    UNKNOWN = "unknown"
    #: the probe could not be made here (no socket, no source address)
    ERROR = "error"


#: states that mean the path from this node to the peer's port is blocked
FAILING = frozenset({State.FILTERED, State.UNREACHABLE})


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    protocol: str  # tcp | udp
    #: UDP: nothing listens there (preflight, or the peer says so): silence is a drop
    silence_is_filtered: bool = False


@dataclass(frozen=True)
class Result:
    state: State
    reason: str
    #: who sent the ICMP error, if one came: this node, the peer, or a hop on the path
    by: str | None = None
    seconds: float = 0.0
    #: nothing came back at all (no answer, no ICMP) within the timeout
    silent: bool = False

    @property
    def how(self) -> str:
        """The reason's opening clause: dropped, rejected by the peer, no route, ..."""
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class IcmpError:
    kind: str  # port-unreachable | prohibited | unreachable
    text: str
    by: str | None


_ICMP4_UNREACH = {
    0: ("unreachable", "net unreachable"),
    1: ("unreachable", "host unreachable"),
    2: ("unreachable", "protocol unreachable"),
    3: ("port-unreachable", "port unreachable"),
    4: ("unreachable", "fragmentation needed"),
    5: ("unreachable", "source route failed"),
    6: ("unreachable", "destination network unknown"),
    7: ("unreachable", "destination host unknown"),
    8: ("unreachable", "source host isolated"),
    9: ("prohibited", "network administratively prohibited"),
    10: ("prohibited", "host administratively prohibited"),
    11: ("unreachable", "network unreachable for TOS"),
    12: ("unreachable", "host unreachable for TOS"),
    13: ("prohibited", "communication administratively prohibited"),
    14: ("prohibited", "host precedence violation"),
    15: ("prohibited", "precedence cutoff"),
}
_ICMP6_UNREACH = {
    0: ("unreachable", "no route to destination"),
    1: ("prohibited", "administratively prohibited"),
    2: ("unreachable", "beyond scope of source address"),
    3: ("unreachable", "address unreachable"),
    4: ("port-unreachable", "port unreachable"),
    5: ("prohibited", "source address failed ingress/egress policy"),
    6: ("prohibited", "reject route to destination"),
}


def _offender(raw: bytes) -> str | None:
    """The address in the sockaddr after sock_extended_err (AF_UNSPEC: none)."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None


def icmp_error(level: int, kind: int, data: bytes) -> IcmpError | None:
    """One control message of the error queue, if it carries an ICMP error."""
    if (level, kind) not in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
        return None
    if len(data) < _EXTENDED_ERR.size:
        return None
    _, origin, icmp_type, code, _, _, _ = _EXTENDED_ERR.unpack_from(data)
    by = _offender(data[_EXTENDED_ERR.size :])
    if origin == SO_EE_ORIGIN_ICMP:
        if icmp_type == 3:
            found, text = _ICMP4_UNREACH.get(code, ("unreachable", f"unreachable code {code}"))
            return IcmpError(found, f"ICMP {text}", by)
        if icmp_type == 11:
            return IcmpError("unreachable", "ICMP time exceeded", by)
        return IcmpError("unreachable", f"ICMP type {icmp_type} code {code}", by)
    if origin == SO_EE_ORIGIN_ICMP6:
        if icmp_type == 1:
            found, text = _ICMP6_UNREACH.get(code, ("unreachable", f"unreachable code {code}"))
            return IcmpError(found, f"ICMPv6 {text}", by)
        if icmp_type == 3:
            return IcmpError("unreachable", "ICMPv6 time exceeded", by)
        return IcmpError("unreachable", f"ICMPv6 type {icmp_type} code {code}", by)
    return None  # SO_EE_ORIGIN_LOCAL and others: no message from the network


def read_error_queue(sock: socket.socket) -> IcmpError | None:
    """The first ICMP error queued on the socket, or None (never blocks)."""
    for _ in range(4):  # a few entries at most: one probe, one datagram
        try:
            _, ancillary, _, _ = sock.recvmsg(64, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except OSError:  # EAGAIN: the queue is empty
            return None
        for level, kind, data in ancillary:
            found = icmp_error(level, kind, data)
            if found is not None:
                return found
    return None


def _side(by: str | None, target: Target, local: str | None) -> str:
    """Who sent the ICMP error: this node (its own output rules, or its neighbour table),
    the peer, or a router or firewall on the path."""
    if by is None:
        return "somewhere"
    if by == local:
        return "this node"
    if by == target.address:
        return "the peer"
    return f"the path ({by})"


def judge_icmp(found: IcmpError, target: Target, local: str | None, seconds: float) -> Result:
    """An ICMP error that ended a probe: what it says about the path. Every reason opens
    with a short clause (up to the first colon) and then says what came back."""
    side = _side(found.by, target, local)
    said = f"{found.text} from {found.by}" if found.by else found.text
    if found.kind == "prohibited":
        return Result(State.FILTERED, f"rejected by {side}: {said}", found.by, seconds)
    if found.kind == "port-unreachable":
        if target.protocol == "udp":
            return Result(State.RESET, f"nothing listens: {said}", found.by, seconds)
        # a closed TCP port answers with a reset: ICMP means a firewall's REJECT
        return Result(
            State.FILTERED,
            f"rejected by {side}: {said} (iptables' default REJECT; a closed TCP port "
            "answers with a reset)",
            found.by,
            seconds,
        )
    return Result(State.UNREACHABLE, f"unreachable (said {side}): {said}", found.by, seconds)


def judge_errno(code: int, target: Target, seconds: float) -> Result:
    """A probe that failed with no ICMP message behind it."""
    name = errno.errorcode.get(code, str(code))
    if code == errno.ECONNREFUSED:
        if target.protocol == "udp":
            return Result(State.RESET, "nothing listens: refused", None, seconds)
        return Result(State.RESET, "nothing listens: TCP reset", None, seconds)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN):
        return Result(State.UNREACHABLE, f"no route: {name}", None, seconds)
    if code == errno.ETIMEDOUT:
        return Result(State.FILTERED, "dropped: no answer (ETIMEDOUT)", None, seconds)
    if code in (errno.EACCES, errno.EPERM):
        return Result(
            State.FILTERED, f"refused by this node: {name} (an output rule)", None, seconds
        )
    return Result(State.ERROR, f"probe failed: {name}", None, seconds)


def silence(target: Target, limit: float, seconds: float) -> Result:
    """Nothing came back within the timeout."""
    if target.protocol == "tcp":
        return Result(State.FILTERED, f"dropped: no answer within {limit:g}s", None, seconds, True)
    if target.silence_is_filtered:
        return Result(
            State.FILTERED,
            f"dropped: no answer within {limit:g}s where nothing listens (a port the "
            "firewalls let through draws ICMP port unreachable)",
            None,
            seconds,
            True,
        )
    return Result(
        State.UNKNOWN,
        f"silent: no answer within {limit:g}s; Geneve answers nothing, so a listening port "
        "and a dropped one look the same",
        None,
        seconds,
        True,
    )


def _open_socket(target: Target) -> socket.socket:
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    kind = socket.SOCK_STREAM if target.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _local_address(sock: socket.socket) -> str | None:
    try:
        return str(sock.getsockname()[0])
    except OSError:
        return None


@dataclass
class _Flight:
    index: int
    target: Target
    begun: float


def probe_all(
    targets: Sequence[Target],
    limit_seconds: float,
    concurrency: int,
    deadline: float | None = None,
) -> list[Result | None]:
    """Probe every target, `concurrency` at a time, each bounded by `limit_seconds`
    (blocking: run it in a thread). No probe starts after `deadline` (time.monotonic());
    those left out are None, for the next cycle."""
    results: list[Result | None] = [None] * len(targets)
    pending = list(reversed(range(len(targets))))
    selector = selectors.DefaultSelector()
    flying: dict[socket.socket, _Flight] = {}

    def finish(sock: socket.socket, result: Result) -> None:
        results[flying.pop(sock).index] = result
        selector.unregister(sock)
        sock.close()

    def start(index: int) -> None:
        target = targets[index]
        begun = time.perf_counter()
        try:
            sock = _open_socket(target)
        except OSError as e:
            results[index] = judge_errno(e.errno or 0, target, 0.0)
            return
        try:
            if target.protocol == "tcp":
                code = sock.connect_ex((target.address, target.port))
                if code not in (0, errno.EINPROGRESS):
                    found = read_error_queue(sock)
                    seconds = time.perf_counter() - begun
                    sock.close()
                    results[index] = (
                        judge_icmp(found, target, None, seconds)
                        if found
                        else judge_errno(code, target, seconds)
                    )
                    return
                events = selectors.EVENT_WRITE
            else:
                sock.connect((target.address, target.port))
                sock.send(UDP_PAYLOAD)
                events = selectors.EVENT_READ
        except OSError as e:
            sock.close()
            results[index] = judge_errno(e.errno or 0, target, time.perf_counter() - begun)
            return
        flying[sock] = _Flight(index, target, begun)
        selector.register(sock, events)

    def settle(sock: socket.socket) -> None:
        flight = flying[sock]
        target = flight.target
        seconds = time.perf_counter() - flight.begun
        local = _local_address(sock)
        found = read_error_queue(sock)
        if found is not None:
            finish(sock, judge_icmp(found, target, local, seconds))
            return
        if target.protocol == "tcp":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                finish(sock, Result(State.OPEN, "open: connected", None, seconds))
            else:
                finish(sock, judge_errno(code, target, seconds))
            return
        try:
            sock.recv(64)
        except BlockingIOError:
            return  # a spurious wake-up: keep waiting
        except OSError as e:
            finish(sock, judge_errno(e.errno or 0, target, seconds))
            return
        finish(sock, Result(State.OPEN, "open: a datagram came back", None, seconds))

    try:
        while pending or flying:
            while pending and len(flying) < concurrency:
                if deadline is not None and time.monotonic() >= deadline:
                    pending.clear()
                    break
                start(pending.pop())
            if not flying:
                continue
            now = time.perf_counter()
            oldest = min(f.begun for f in flying.values())
            for key, _ in selector.select(timeout=max(0.0, oldest + limit_seconds - now)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in flying:
                    settle(sock)
            now = time.perf_counter()
            for sock, flight in list(flying.items()):
                if now - flight.begun >= limit_seconds:
                    # a last look: an ICMP error may have come with the deadline
                    found = read_error_queue(sock)
                    seconds = now - flight.begun
                    if found is not None:
                        local = _local_address(sock)
                        finish(sock, judge_icmp(found, flight.target, local, seconds))
                    else:
                        finish(sock, silence(flight.target, limit_seconds, seconds))
    finally:
        for sock in list(flying):
            selector.unregister(sock)
            sock.close()
        selector.close()
    return results
