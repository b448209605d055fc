"""A stand-in for kube-state-metrics and CDI's controller: a loopback HTTP server that serves
a fixed exposition of each at its own path.

Why a stand-in: both exporters only report what a Kubernetes API server tells them (Nodes,
StorageClasses, StorageProfiles), and this machine runs no API server. What they would serve
is written with alerts/catalog/cluster_series.py, which follows their source (label names,
order, HELP texts): the same shapes the promtool cases use.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Expositions:
    """Serves {path: body} as Prometheus text; 404 elsewhere."""

    def __init__(self, bodies: dict[str, str]) -> None:
        encoded = {path: body.encode() for path, body in bodies.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = encoded.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Expositions:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
