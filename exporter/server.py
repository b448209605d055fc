"""HTTP endpoints: /metrics, / (HTML report), /-/healthy, /-/ready. Reads only the snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter import readiness, report
from exporter.exposition import Exposition, ExtraSamples, Identity
from exporter.runtime import Runtime


def accepts_gzip(header: str) -> bool:
    """True if Accept-Encoding allows gzip (a q=0 refuses it)."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def make_app(
    runtime: Runtime,
    identity: Identity,
    telemetry_path: str = "/metrics",
    middlewares: Sequence[Middleware] = (),
    extra: ExtraSamples | None = None,
) -> web.Application:
    exposition = Exposition(identity, extra)
    runtime.subscribe(exposition.warm)
    page_cache: dict[int, bytes] = {}

    async def metrics(request: web.Request) -> web.Response:
        gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        body, content_type = exposition.render(
            runtime.snapshot, request.headers.get("Accept", ""), gzipped
        )
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def index(request: web.Request) -> web.Response:
        snapshot = runtime.snapshot
        body = page_cache.get(snapshot.generation)
        if body is None:
            page_cache.clear()
            body = report.render(
                readiness.build(snapshot, runtime.config, identity.node), telemetry_path
            ).encode()
            page_cache[snapshot.generation] = body
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def ready(request: web.Request) -> web.Response:
        if runtime.snapshot.ready:
            return web.Response(text="OK\n")
        pending = [n for n, s in runtime.snapshot.states.items() if not s.has_run]
        return web.Response(status=503, text=f"waiting for first run of: {', '.join(pending)}\n")

    # no endpoint reads a body or takes a target from the request: GET/HEAD only, known paths
    app = web.Application(middlewares=list(middlewares), client_max_size=1024)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/", index)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
