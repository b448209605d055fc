"""A real monitoring stack for the tests: Prometheus with the generated rules, Alertmanager
with the example routing, a webhook receiver that records what it is sent. Loopback only."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from alerts.generate import RULES
from tests.helpers import PATIENCE, ROOT, answers, free_port, http_get, wait_until

EXAMPLE_ALERTMANAGER = ROOT / "deploy" / "prometheus" / "alertmanager.yml"


class Webhook:
    """Records every notification POSTed to it, by path (one path per receiver)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(
        self, path: str, alertname: str, status: str, timeout: float = 150.0 + PATIENCE
    ) -> dict[str, Any]:
        """The first notification of `alertname` in `status` sent to `path`. The alert
        fires after its `for:` (1m) and Alertmanager's group wait: the bound is generous."""

        def sent() -> dict[str, Any] | None:
            for got_path, payload in list(self.received):
                for alert in payload["alerts"]:
                    if (
                        got_path == path
                        and alert["labels"].get("alertname") == alertname
                        and alert["status"] == status
                    ):
                        return dict(alert)
            return None

        try:
            return wait_until(sent, f"{status} {alertname} at {path}", timeout, every=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; got {self.received}") from None


@contextlib.contextmanager
def served(cmd: list[str], port: int) -> Iterator[str]:
    """A server process on a loopback port; its URL once /-/ready answers; stopped after."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/-/ready"), f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def alertmanager(tmp: Path, hook: Webhook) -> Iterator[str]:
    """The example routing with every receiver pointed at the test's webhook, by name."""
    config = yaml.safe_load(EXAMPLE_ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [
            {"url": f"http://127.0.0.1:{hook.port}/{receiver['name']}", "send_resolved": True}
        ]
    config["route"].update(group_wait="1s", group_interval="1s")
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with served(
        [
            "prometheus-alertmanager",
            f"--config.file={path}",
            f"--storage.path={tmp / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port,
    ) as url:
        yield url


@contextlib.contextmanager
def prometheus(
    tmp: Path,
    exporter: str,
    alertmanager_url: str | None,
    target_labels: dict[str, str] | None = None,
) -> Iterator[str]:
    """Scrapes the exporter (job kubev-node-exporter) every second with the generated rules;
    sends alerts to the Alertmanager if one is given; `target_labels` are added to every
    series scraped (as a multi-cluster setup adds `cluster`)."""
    target: dict[str, object] = {"targets": [exporter]}
    if target_labels:
        target["labels"] = target_labels
    config: dict[str, object] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "kubev-node-exporter", "static_configs": [target]}],
    }
    if alertmanager_url:
        am = urllib.parse.urlsplit(alertmanager_url).netloc
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [am]}]}]}
    with running_prometheus(tmp, config) as url:
        yield url


@contextlib.contextmanager
def running_prometheus(tmp: Path, config: dict[str, Any]) -> Iterator[str]:
    """Prometheus with this configuration on a free loopback port; its URL once ready."""
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with served(
        [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
    ) as url:
        yield url


def query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    response = http_get(f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    payload = json.loads(response.body)
    assert payload["status"] == "success", (expr, payload)
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result
