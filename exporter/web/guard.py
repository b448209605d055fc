"""Request limits: how many requests run at once, how big a request head may be, and how
long a client may take to send one. Scrapes come from a handful of Prometheus servers;
anything else that connects must not be able to hold the exporter's resources.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("exporter.web")


@dataclass(frozen=True)
class Limits:
    #: requests handled at once; more wait up to queue_seconds, then get 503
    max_requests: int = 40
    queue_seconds: float = 5.0
    #: open connections at once; more are closed on arrival
    max_connections: int = 2048
    #: a client must send a whole request head within this, after connecting or after
    #: its previous response (slow-loris protection)
    read_header_timeout: float = 10.0
    #: an idle keep-alive connection is closed after this (longer than scrape intervals)
    idle_timeout: float = 75.0
    #: request line and each header line, in bytes (aiohttp answers 400 above)
    max_line_bytes: int = 8190
    max_headers: int = 64

    def handler_args(self) -> dict[str, Any]:
        return {
            "max_line_size": self.max_line_bytes,
            "max_field_size": self.max_line_bytes,
            "max_headers": self.max_headers,
        }


class Guard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.max_requests)
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._open = 0

    def attach(self, server: web.Server) -> None:
        """Watch every connection of the server (its connection hooks, per instance)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._open += 1
            if self._open > self.limits.max_connections:
                transport.close()
                return
            self._arm(handler)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._open -= 1
            self._disarm(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _arm(self, handler: RequestHandler, seconds: float | None = None) -> None:
        self._disarm(handler)
        loop = asyncio.get_running_loop()
        self._timers[handler] = loop.call_later(
            seconds or self.limits.read_header_timeout, self._expire, handler
        )

    def _disarm(self, handler: RequestHandler) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, handler: RequestHandler) -> None:
        self._timers.pop(handler, None)
        if handler.transport is not None:
            handler.transport.close()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        protocol = request.protocol
        self._disarm(protocol)  # a whole request head arrived
        try:
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
        finally:
            if protocol.transport is not None and not protocol.transport.is_closing():
                # idle, then the next request head: bounded too
                self._arm(protocol, self.limits.idle_timeout + self.limits.read_header_timeout)
