"""A listening socket whose connections go through the guard (exporter/web/guard.py) from
accept on, TLS included: aiohttp's own TCPSite hands TLS to asyncio, which does the
handshake (and allocates for it) before aiohttp, or any limit, sees the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

#: connections the kernel may queue before accept (the guard decides after accept)
BACKLOG = 1024


class GuardedSite(web.TCPSite):
    __slots__ = ("_factory", "_scheme")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        factory: Callable[[], asyncio.BaseProtocol],
        scheme: str,
    ) -> None:
        super().__init__(runner, host, port, backlog=BACKLOG)
        self._factory = factory
        self._scheme = scheme

    @property
    def name(self) -> str:
        host = self._host or "0.0.0.0"
        host = f"[{host}]" if ":" in host else host
        return f"{self._scheme}://{host}:{self.port}"

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
