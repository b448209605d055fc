"""`fleet` reaching Prometheus: a real Prometheus behind TLS and basic auth (its own
--web.config.file), and real HTTP servers that answer as Prometheus never should (too big,
a redirect, not the API, an error, too slow). Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from aiohttp import web

from exporter.report.promapi import (
    HttpConfig,
    Prometheus,
    PrometheusError,
    Sample,
    load_http_config,
)
from tests.helpers import ROOT, free_port
from tests.httpstub import serving

VECTOR_1 = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]},
}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a certificate for 127.0.0.1 it signs."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-days", "2", "-subj", "/CN=kubev-fleet-test-ca")  # fmt: skip
    openssl("req", *ec, "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
            "-subj", "/CN=prometheus")  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"),
            "-days", "2", "-extfile", str(d / "server.ext"))  # fmt: skip
    return d


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "fleet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def protected_prometheus(tmp: Path, pki: Path) -> Iterator[tuple[str, HttpConfig]]:
    """Prometheus serving HTTPS with basic auth; its URL and the client config that gets in."""
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web_config = write(
        tmp / "web.yml",
        {
            "tls_server_config": {
                "cert_file": str(pki / "server.crt"),
                "key_file": str(pki / "server.key"),
            },
            "basic_auth_users": {"fleet": hashed},
        },
    )
    config = write(tmp / "prometheus.yml", {"global": {"scrape_interval": "1s"}})
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web_config}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    client = load_http_config(
        write(
            tmp / "client.yml",
            {
                "basic_auth": {"username": "fleet", "password": "s3cret"},
                "tls_config": {"ca_file": str(pki / "ca.crt")},
            },
        )
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                Prometheus(url, client, timeout=2).query("vector(1)")
                break
            except PrometheusError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url, client
    finally:
        proc.terminate()
        proc.wait()


def test_fleet_reaches_a_prometheus_behind_tls_and_basic_auth(tmp_path: Path, pki: Path) -> None:
    with protected_prometheus(tmp_path, pki) as (url, client):
        assert Prometheus(url, client).query("vector(1)") == [Sample({}, 1.0)]
        # in: the answers hold no exporter, which is what it says (exit 2 as for a wrong URL)
        done = fleet(f"--prometheus={url}", f"--http.config.file={tmp_path / 'client.yml'}")
        assert done.returncode == 2
        assert "holds no kubev_node_info" in done.stderr
        # an unknown CA
        done = fleet(f"--prometheus={url}")
        assert done.returncode == 2
        assert "TLS failed" in done.stderr and "certificate verify failed" in done.stderr
        # the CA, no credentials
        no_auth = write(tmp_path / "no-auth.yml", {"tls_config": {"ca_file": str(pki / "ca.crt")}})
        done = fleet(f"--prometheus={url}", f"--http.config.file={no_auth}")
        assert done.returncode == 2
        assert f"{url} refused access (HTTP 401): give credentials with --http.config.file" in (
            done.stderr
        )
        # the certificate not checked, a wrong password
        wrong = write(
            tmp_path / "wrong.yml",
            {
                "basic_auth": {"username": "fleet", "password": "guess"},
                "tls_config": {"insecure_skip_verify": True},
            },
        )
        done = fleet(f"--prometheus={url}", f"--http.config.file={wrong}")
        assert "refused access (HTTP 401)" in done.stderr


# --- servers that are not quite Prometheus --------------------------------------------------

TOKEN = "fleet-token"


async def bearer(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.Response(status=401)
    return web.json_response(VECTOR_1)


async def huge(request: web.Request) -> web.Response:
    return web.Response(body=b"{" + b" " * 4096 + b"}", content_type="application/json")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://127.0.0.1:9/api/v1/query")


async def nginx(request: web.Request) -> web.Response:
    return web.Response(
        text="<html><body>Welcome to nginx!</body></html>", content_type="text/html"
    )


async def bad_data(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query"'},
        status=400,
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response(VECTOR_1)


@contextlib.asynccontextmanager
async def answering(handler: object) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)  # type: ignore[arg-type]
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


async def ask(url: str, http: HttpConfig | None = None, **kwargs: float) -> list[Sample]:
    # the client blocks: off the event loop that serves the stub
    return await asyncio.to_thread(lambda: Prometheus(url, http, **kwargs).query("up"))  # type: ignore[arg-type]


async def test_a_bearer_token_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    http = load_http_config(
        write(tmp_path / "c.yml", {"authorization": {"credentials_file": str(tmp_path / "token")}})
    )
    async with answering(bearer) as url:
        assert await ask(url, http) == [Sample({}, 1.0)]
        with pytest.raises(PrometheusError, match=r"refused access \(HTTP 401\)"):
            await ask(url)


@pytest.mark.parametrize(
    ("handler", "kwargs", "message"),
    [
        (huge, {"max_bytes": 1024}, r"the answer is larger than 1024 bytes: not read"),
        (redirect, {}, r"answered with a redirect \(HTTP 302\) to http://127.0.0.1:9/api/v1/query"),
        (nginx, {}, r"is not Prometheus' API: the query up answered b'<html>"),
        (bad_data, {}, r"the query up failed \(HTTP 400\): bad_data: invalid parameter"),
        (slow, {"timeout": 0.5}, r"no answer within 0.5s"),
    ],
    ids=["too-big", "redirect", "not-the-api", "error", "too-slow"],
)
async def test_answers_prometheus_never_gives_are_one_clear_error(
    handler: object, kwargs: dict[str, Any], message: str
) -> None:
    async with answering(handler) as url:
        with pytest.raises(PrometheusError, match=message):
            await ask(url, **kwargs)
