"""HTTP endpoints: /metrics, / (HTML report), /report.json (the `check --output json`
document), /-/healthy, /-/ready, /-/identity (what this node tells its peers:
exporter/checks/peerid.py). Reads only the snapshot."""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.checks.peerid import IDENTITY_PATH, IdentityDocument
from exporter.exposition import Exposition, ExtraSamples, Identity
from exporter.report import html, model
from exporter.runtime import Runtime

INDEX, HEALTHY, READY = "/", "/-/healthy", "/-/ready"
REPORT_JSON = "/report.json"
#: the paths of the server's own routes: the telemetry path must be none of them
RESERVED_PATHS = (INDEX, REPORT_JSON, HEALTHY, READY, IDENTITY_PATH)


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
    telemetry_path: str = "/metrics",
    middlewares: Sequence[Middleware] = (),
    extra: ExtraSamples | None = None,
) -> web.Application:
    exposition = Exposition(Identity.of(runtime.config), extra)
    runtime.subscribe(exposition.warm)
    identity = IdentityDocument(runtime.config)
    identity.update(runtime.snapshot)
    runtime.subscribe(identity.update)
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
            body = html.render(model.build(snapshot, runtime.config), telemetry_path).encode()
            page_cache[snapshot.generation] = body
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    report_cache: dict[int, bytes] = {}

    async def report_json(request: web.Request) -> web.Response:
        # the document `check --output json` prints, from the latest snapshot: no check runs
        snapshot = runtime.snapshot
        body = report_cache.get(snapshot.generation)
        if body is None:
            report_cache.clear()
            report = model.build(snapshot, runtime.config).to_json()
            body = (json.dumps(report, indent=2) + "\n").encode()
            report_cache[snapshot.generation] = body
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def ready(request: web.Request) -> web.Response:
        # ready means: what /metrics serves now holds every enabled check's first result
        snapshot = runtime.snapshot
        if exposition.serves_ready(snapshot):
            return web.Response(text="OK\n")
        pending = [n for n, s in snapshot.states.items() if not s.has_run]
        waiting = f"first run of: {', '.join(pending)}" if pending else "the encoder"
        return web.Response(status=503, text=f"waiting for {waiting}\n")

    async def identify(request: web.Request) -> web.Response:
        # built when a snapshot changes it (IdentityDocument.update), never here
        return web.Response(body=identity.body, content_type="application/json")

    # no endpoint reads a body or takes a target from the request: GET/HEAD only, known paths
    app = web.Application(middlewares=list(middlewares), client_max_size=1024)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get(INDEX, index)
    app.router.add_get(REPORT_JSON, report_json)
    app.router.add_get(HEALTHY, healthy)
    app.router.add_get(READY, ready)
    app.router.add_get(IDENTITY_PATH, identify)
    return app
