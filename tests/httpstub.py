"""Real HTTP servers that behave like metrics endpoints, well or badly.

In-process: `async with serving(app_for("good")) as url`. As a process (in a network
namespace): python -m tests.httpstub [--tls CERT KEY] 10665=good 10660=status500 ...
binds 0.0.0.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import AsyncIterator

from aiohttp import web

GOOD = (
    "# HELP kube_ovn_cni_up Whether the daemon is up.\n# TYPE kube_ovn_cni_up gauge\n"
    'kube_ovn_cni_up 1\nkube_ovn_pod_count{node="n1"} 17\n'
    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n"
)
TOKEN = "s3cret-token"
BIG = 50 * 1024 * 1024


async def good(request: web.Request) -> web.Response:
    return web.Response(text=GOOD, content_type="text/plain")


async def status500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="internal error\n")


async def garbage(request: web.Request) -> web.Response:
    return web.Response(
        text="<html><body>Welcome to nginx!</body></html>\n", content_type="text/html"
    )


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = BIG
    await response.prepare(request)
    chunk = b"# padding line of a metrics body that never ends\n" * 1300
    sent = 0
    while sent < BIG:
        await response.write(chunk)
        sent += len(chunk)
    return response


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(600):  # a minute at most: the test ends it earlier
        await response.write(b"#")
        await asyncio.sleep(0.1)
    return response


async def redirect_elsewhere(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://127.0.0.2:1/metrics")


async def redirect_here(request: web.Request) -> web.Response:
    if request.path == "/metrics":
        raise web.HTTPFound("/real-metrics")
    return await good(request)


async def needs_token(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.Response(status=401, text="Unauthorized\n")
    return await good(request)


BEHAVIOURS = {
    "good": good,
    "status500": status500,
    "garbage": garbage,
    "huge": huge,
    "trickle": trickle,
    "redirect_elsewhere": redirect_elsewhere,
    "redirect_here": redirect_here,
    "needs_token": needs_token,
}


def app_for(behaviour: str) -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", BEHAVIOURS[behaviour])
    return app


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Serve on a free port; yield the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    (address,) = runner.addresses  # (host, port) of the one socket bound
    try:
        yield int(address[1])
    finally:
        await runner.cleanup()


async def _main(specs: list[str]) -> None:
    context = None
    if specs[:1] == ["--tls"]:  # --tls CERT KEY: serve HTTPS
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(specs[1], specs[2])
        specs = specs[3:]
    runners = []
    for spec in specs:
        port, behaviour = spec.split("=")
        runner = web.AppRunner(app_for(behaviour), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", int(port), ssl_context=context).start()
        runners.append(runner)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
