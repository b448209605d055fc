"""Connection and request limits. Scrapes come from a handful of Prometheus servers; anything
else that can reach the port (with hostNetwork: anyone who can reach the node) must not be
able to take the scrapes away or grow the exporter past its memory limit.

- Admission at accept (`Gate`, `Connections`): a connection counts from the moment the
  kernel hands it over, before any TLS handshake; a refused one is aborted before anything
  is allocated for it. One client address (an IPv6 client: its /64) holds at most
  `max_connections_per_client`; all together at most `max_connections`. When that is
  full, a newcomer takes the place of a connection of the client that holds the most, if
  that client holds more than the newcomer's does: one client (or a few) cannot fill the
  table and lock Prometheus out.
- Deadlines (`Gate`, `GuardedHandler`, `GuardedTLS`): a TLS client's first bytes, then
  its handshake, each within `handshake_timeout`; a request head within
  `read_header_timeout` of connecting or of the previous response (slow-loris), an idle
  keep-alive connection for at most `idle_timeout`; and a response whose peer stops
  reading (the write buffer stays above its high-water mark) for `write_timeout` is given
  up. Every deadline *aborts* the connection (a reset): a graceful close() would wait for
  the unsent data that the peer never reads.
- Sizes: a request head (whatever a client sends before its request is taken up) of at
  most `max_head_bytes`, or the connection is aborted: what pending heads hold stays
  bounded by the connection cap.
- Requests (`Guard.slots`): at most `max_requests` handled at once; more wait up to
  `queue_seconds`, then get 503. Authentication runs before this (exporter/web/security.py
  bounds its own cost), so bad passwords never hold a request slot.

Memory (measured, docs/security.md): an idle connection ~5 KiB, a silent TLS client ~2
KiB (its TLS state is made when it first sends), a TLS client in its handshake ~65 KiB, a
client that does not read ~16 KiB + its response; the defaults keep the worst case well
inside the pod's 128 MiB.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import ipaddress
import logging
import ssl
import time
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("exporter.web")

#: a response waiting for a slow reader pauses the handler above this many unsent bytes
WRITE_HIGH_WATER = 16 * 1024
#: TLS: bytes read from the socket at once (asyncio allocates 256 KiB per connection)
TLS_READ_BUFFER = 16 * 1024
#: how often, at most, refused and evicted connections are reported (warning)
REPORT_INTERVAL = 60.0
#: after this many closed connections (at most once a RELIEF_INTERVAL), free their memory
RELIEF_AFTER = 256
RELIEF_INTERVAL = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, which hands freed heap pages back to the kernel (None on a C
    library without it)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def relieve_memory() -> None:
    """Free what closed connections left: their reference cycles (the HTTP parser, the
    TLS state and their transports refer to each other, so only the cyclic collector
    frees them, and a connection that lived through a collection waits for an older,
    rarer one), then the heap pages that became free. Without this, a flood of
    connections that come and go grows the process by the garbage between collections
    and keeps it (measured: 160 MiB after 200 addresses opened TLS connections for 20 s,
    67 MiB after one relief)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


@dataclass(frozen=True)
class Limits:
    #: requests handled at once; more wait up to queue_seconds, then get 503
    max_requests: int = 40
    queue_seconds: float = 5.0
    #: open connections at once, counted from accept (TLS: before the handshake)
    max_connections: int = 256
    #: open connections from one client address (IPv6: one /64); more are refused
    max_connections_per_client: int = 16
    #: a TLS client must finish its handshake within this
    handshake_timeout: float = 5.0
    #: a client must send a whole request head within this, after connecting or after
    #: its previous response (slow-loris protection)
    read_header_timeout: float = 10.0
    #: an idle keep-alive connection is closed after this (longer than scrape intervals)
    idle_timeout: float = 75.0
    #: a response the peer does not read for this long is given up (slow-read protection)
    write_timeout: float = 10.0
    #: request line and each header line, in bytes (aiohttp answers 400 above)
    max_line_bytes: int = 8190
    max_headers: int = 64
    #: a whole request head (and whatever a client sends before its request is answered),
    #: in bytes; above, the connection is aborted. The line and header limits alone let a
    #: head hold ~500 KiB: 256 such clients took 300 MiB (docs/performance.md). A scrape's
    #: head is under 1 KiB; nginx's default allows 32 KiB (4 x 8 KiB buffers).
    max_head_bytes: int = 32 * 1024

    def handler_args(self) -> dict[str, Any]:
        return {
            "max_line_size": self.max_line_bytes,
            "max_field_size": self.max_line_bytes,
            "max_headers": self.max_headers,
        }

    def within_fd_limit(self, fd_limit: int, reserve: int = 128) -> Limits:
        """Each connection is a file descriptor: keep the cap below the process's limit
        (with room for the checks' files and sockets), so accept() never fails."""
        cap = max(1, min(self.max_connections, fd_limit - reserve))
        return replace(
            self,
            max_connections=cap,
            max_connections_per_client=min(self.max_connections_per_client, cap),
        )


def client_of(peername: Any) -> str:
    """The address a connection is counted under: the IPv4 address, or the /64 of an IPv6
    one (a single host is routinely given a whole /64)."""
    if not isinstance(peername, tuple) or not peername:
        return "unknown"
    try:
        address = ipaddress.ip_address(str(peername[0]).partition("%")[0])
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Ticket:
    """One admitted connection: released exactly once (closed or evicted). `busy` while a
    request is being handled: a busy connection is never evicted."""

    __slots__ = ("busy", "client", "released", "transport")

    def __init__(self, client: str, transport: asyncio.Transport) -> None:
        self.client = client
        self.transport = transport
        self.released = False
        self.busy = False


class Connections:
    """The table of open connections, by client address (see the module's docstring)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._by_client: dict[str, dict[Ticket, None]] = {}  # each client's, oldest first
        # clients by how many connections they hold (to find the biggest holders at once)
        self._by_size: dict[int, dict[str, None]] = {}
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self._reported = (0, 0)
        self._report_at = 0.0
        self._closed_since_relief = 0
        self._relief_at = 0.0

    def admit(self, transport: asyncio.Transport) -> Ticket | None:
        client = client_of(transport.get_extra_info("peername"))
        held = self._by_client.get(client)
        count = len(held) if held else 0
        if count >= self.limits.max_connections_per_client:
            self._refuse(client, "per-client limit")
            return None
        if self.open >= self.limits.max_connections:
            victim = self._victim(count)
            if victim is None:
                self._refuse(client, "connection limit")
                return None
            self.release(victim)
            victim.transport.abort()
            self.evicted += 1
            log.debug("connection evicted", extra={"kv": {"client": victim.client, "for": client}})
            self._report()
        ticket = Ticket(client, transport)
        self._resize(client, count, count + 1)
        self._by_client.setdefault(client, {})[ticket] = None
        self.open += 1
        return ticket

    def _victim(self, newcomer_holds: int) -> Ticket | None:
        """Whom a newcomer replaces when the table is full: a connection of the client
        that holds the most (its oldest that is not handling a request), if that client
        holds more than the newcomer's does. None if not: everyone has as many or fewer.
        A client with one or two connections, like Prometheus, loses them only when no
        client holds more."""
        most = max(self._by_size, default=0)
        if most <= newcomer_holds:
            return None
        for client in self._by_size[most]:
            for ticket in self._by_client[client]:
                if not ticket.busy:
                    return ticket
        return None

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self.open -= 1
        held = self._by_client[ticket.client]
        del held[ticket]
        self._resize(ticket.client, len(held) + 1, len(held))
        if not held:
            del self._by_client[ticket.client]
        self._closed_since_relief += 1
        if self._closed_since_relief >= RELIEF_AFTER:
            now = time.monotonic()
            if now >= self._relief_at:
                self._closed_since_relief = 0
                self._relief_at = now + RELIEF_INTERVAL
                # after this connection's own teardown (it is part of what is freed)
                asyncio.get_running_loop().call_soon(relieve_memory)

    def _resize(self, client: str, old: int, new: int) -> None:
        if old:
            clients = self._by_size[old]
            del clients[client]
            if not clients:
                del self._by_size[old]
        if new:
            self._by_size.setdefault(new, {})[client] = None

    def abort_all(self) -> None:
        """At shutdown: connections still in a handshake are not aiohttp's to close."""
        for held in list(self._by_client.values()):
            for ticket in list(held):
                self.release(ticket)
                ticket.transport.abort()

    def _refuse(self, client: str, reason: str) -> None:
        self.refused += 1
        log.debug("connection refused", extra={"kv": {"client": client, "reason": reason}})
        self._report()

    def _report(self) -> None:
        """A warning at most every REPORT_INTERVAL while connections are being refused."""
        now = time.monotonic()
        if now < self._report_at:
            return
        self._report_at = now + REPORT_INTERVAL
        refused, evicted = self.refused - self._reported[0], self.evicted - self._reported[1]
        self._reported = (self.refused, self.evicted)
        most = max(self._by_size, default=0)
        log.warning(
            "connections refused or evicted: too many from one client or in all",
            extra={
                "kv": {
                    "refused": refused,
                    "evicted": evicted,
                    "open": self.open,
                    "busiest_client": next(iter(self._by_size.get(most, {})), ""),
                    "its_connections": most,
                }
            },
        )


class Gate(asyncio.Protocol):
    """What a listener's connection starts with. It admits the connection (or aborts it at
    once, having allocated nothing but this object) and hands the transport to the
    protocol that serves it. Under TLS it waits for the client's first bytes (at most
    `handshake_timeout`) before it makes the TLS state: a client that connects and says
    nothing costs ~2 KiB, not the ~65 KiB of an OpenSSL connection and its buffers."""

    __slots__ = ("_guard", "_make", "_ticket", "_timer", "_transport")

    def __init__(self, guard: Guard, make: Callable[[Ticket], GuardedHandler | GuardedTLS]):
        self._guard = guard
        self._make = make
        self._ticket: Ticket | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        self._ticket = self._guard.connections.admit(stream)
        if self._ticket is None:
            stream.abort()
            return
        if not self._guard.tls_listener:
            self._hand_over(stream, self._ticket)
            return
        self._transport = stream
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.handshake_timeout, stream.abort)

    def data_received(self, data: bytes) -> None:
        # the first bytes of a TLS client (a refused connection's until its abort is done)
        if self._transport is None or self._ticket is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        transport, ticket = self._transport, self._ticket
        self._transport = self._ticket = None  # from now on the TLS protocol owns them
        tls = cast(GuardedTLS, self._hand_over(transport, ticket))
        rest = memoryview(data)
        while rest:  # through the TLS protocol's own buffer, at most 16 KiB at a time
            buffer = tls.get_buffer(len(rest))
            size = min(len(buffer), len(rest))
            buffer[:size] = rest[:size]
            tls.buffer_updated(size)
            rest = rest[size:]

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ticket is not None and self._transport is not None:
            self._guard.connections.release(self._ticket)  # a TLS client gone before a byte

    def _hand_over(self, transport: asyncio.Transport, ticket: Ticket) -> asyncio.BaseProtocol:
        protocol = self._make(ticket)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return protocol


class GuardedHandler(RequestHandler):
    """aiohttp's HTTP protocol with the deadlines of the module's docstring. Its ticket is
    released here on a plain listener, by the GuardedTLS around it under TLS."""

    __slots__ = ("_guard", "_owns_ticket", "_pending", "_read_timer", "_write_timer", "ticket")

    def __init__(
        self, manager: web.Server, guard: Guard, ticket: Ticket, owns_ticket: bool, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self.ticket = ticket
        self._owns_ticket = owns_ticket
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        #: bytes received since the last request was taken up (the head being read)
        self._pending = 0

    def data_received(self, data: bytes) -> None:
        self._pending += len(data)
        if self._pending > self._guard.limits.max_head_bytes:
            self._expire("request head too large")
            return
        super().data_received(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).set_write_buffer_limits(high=WRITE_HIGH_WATER)
        super().connection_made(transport)
        self._read_timer = self._arm(
            self._guard.limits.read_header_timeout, "no request head in time"
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._read_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        if self._owns_ticket:
            self._guard.connections.release(self.ticket)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self._arm(
                self._guard.limits.write_timeout, "the client does not read its response"
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def request_started(self) -> None:
        self._pending = 0
        self.ticket.busy = True
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def request_finished(self) -> None:
        self.ticket.busy = False
        if self.transport is not None and not self.transport.is_closing():
            limits = self._guard.limits
            # idle, then the next request head: bounded too
            self._read_timer = self._arm(
                limits.idle_timeout + limits.read_header_timeout, "idle for too long"
            )

    def _arm(self, seconds: float, why: str) -> asyncio.TimerHandle:
        return self._loop.call_later(seconds, self._expire, why)

    def _expire(self, why: str) -> None:
        if self.transport is not None:
            log.debug(
                "connection aborted", extra={"kv": {"client": self.ticket.client, "reason": why}}
            )
            self.transport.abort()


class GuardedTLS(sslproto.SSLProtocol):
    """asyncio's TLS protocol for an admitted connection, with a handshake deadline and a
    16 KiB read buffer instead of 256 KiB."""

    max_size = TLS_READ_BUFFER

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: GuardedHandler,
        context: ssl.SSLContext,
        connections: Connections,
    ) -> None:
        limits = connections.limits
        super().__init__(
            loop,
            app,
            context,
            None,  # type: ignore[arg-type]  # no waiter: nobody awaits the handshake
            server_side=True,
            ssl_handshake_timeout=limits.handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=limits.handshake_timeout,
        )
        self._connections = connections
        self._ticket = app.ticket

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connections.release(self._ticket)
        super().connection_lost(exc)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Guard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.connections = Connections(limits)
        self.tls_listener = False
        self._slots = asyncio.Semaphore(limits.max_requests)

    def protocol_factory(
        self,
        server: web.Server,
        handler_args: dict[str, Any],
        tls: Callable[[], ssl.SSLContext | None],
    ) -> Callable[[], asyncio.BaseProtocol]:
        """Protocols for a listener; `tls()` is asked for every TLS connection (when its
        first bytes arrive), so a reloaded certificate or CA applies to the next one."""
        loop = asyncio.get_running_loop()
        self.tls_listener = tls() is not None

        def make(ticket: Ticket) -> GuardedHandler | GuardedTLS:
            context = tls()
            handler = GuardedHandler(
                server, self, ticket, owns_ticket=context is None, loop=loop, **handler_args
            )
            if context is None:
                return handler
            return GuardedTLS(loop, handler, context, self.connections)

        return lambda: Gate(self, make)

    @web.middleware
    async def deadlines(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost: a request head has arrived (stop the header deadline) and, once it is
        answered, the connection may idle (start the idle deadline)."""
        protocol = request.protocol
        if isinstance(protocol, GuardedHandler):
            protocol.request_started()
        try:
            return await handler(request)
        finally:
            if isinstance(protocol, GuardedHandler):
                protocol.request_finished()

    @web.middleware
    async def slots(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._slots.locked():  # only then is there a wait worth a deadline
            try:
                async with asyncio.timeout(self.limits.queue_seconds):
                    await self._slots.acquire()
            except TimeoutError:
                return web.Response(status=503, text="too many requests at once\n")
        else:
            await self._slots.acquire()
        try:
            return await handler(request)
        finally:
            self._slots.release()
