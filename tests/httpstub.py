"""Real HTTP servers that behave like metrics endpoints, well or badly, and like Kube-OVN's.

In-process: `async with serving(app_for("good")) as port`. As a process (in a network
namespace): python -m tests.httpstub [--tls CERT KEY | --plain] [HOST:]PORT=BEHAVIOUR ...
(HOST defaults to 0.0.0.0; --tls and --plain apply to the specs after them).

The `ovn*` behaviours serve what Kube-OVN's servers serve (kubeovn/kube-ovn
pkg/metrics/server.go, servers.go; controller-runtime pkg/metrics/filters/filters.go):
/livez, /readyz, /healthz beside /metrics; health-only (ENABLE_METRICS=false: /metrics
404); secure serving (/metrics wants TOKEN: 401 without it or with another, 403 for
FORBIDDEN_TOKEN, health paths exempt). As test oracles they also refuse what a careful
client never sends: credentials on a health path, or over plain HTTP to a health-only
server (a 400 that turns the state the test expects into another).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

GOOD = (
    "# HELP kube_ovn_cni_up Whether the daemon is up.\n# TYPE kube_ovn_cni_up gauge\n"
    'kube_ovn_cni_up 1\nkube_ovn_pod_count{node="n1"} 17\n'
    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n"
)
TOKEN = "s3cret-token"
#: a token that authenticates, for an account the SubjectAccessReview turns down
FORBIDDEN_TOKEN = "token-of-an-account-without-metrics-rights"
BIG = 50 * 1024 * 1024
#: kube-ovn-cni's node facts as it exports them (pkg/daemon/metrics.go: no kube_ovn_ prefix)
FACTS_TEMPLATE = (
    "# HELP checksum_err_count Value of InCsumErrors for cmd `netstat -us`, checksum is error "
    "when value is greater than 0\n# TYPE checksum_err_count gauge\n"
    'checksum_err_count{{hostname="node-1"}} {checksum}\n'
    "# HELP ip_local_port_range value of system parameter /proc/sys/net/ipv4/ip_local_port_range, "
    "which should not conflict with the nodeport range\n# TYPE ip_local_port_range gauge\n"
    'ip_local_port_range{{end="{end}",hostname="node-1",start="{start}"}} 1\n'
    "# HELP bridge_nf_call_iptables value of system parameter "
    "/proc/sys/net/bridge/bridge-nf-call-iptables. The recommended value is 1 for overlay, "
    "and 0 for underlay network\n# TYPE bridge_nf_call_iptables gauge\n"
    'bridge_nf_call_iptables{{hostname="node-1"}} {bridge}\n'
)
GOOD_FACTS = FACTS_TEMPLATE.format(checksum=0, start=32768, end=60999, bridge=1)
BAD_FACTS = FACTS_TEMPLATE.format(checksum=7, start=30000, end=60999, bridge=0)
#: a body just under the exporter's default max_body_bytes (4 MiB)
BIG_OVN_BYTES = 4 * 1024 * 1024 - 64 * 1024
HEALTH_PATHS = ("/livez", "/readyz", "/healthz")


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


def ovn_body(size: int = 0) -> str:
    """A kube-ovn-cni /metrics body: GOOD, the node facts, and per-pod samples up to
    `size` bytes."""
    head = GOOD + GOOD_FACTS
    lines = [head, "# HELP kube_ovn_ip_info pod IPs\n# TYPE kube_ovn_ip_info gauge\n"]
    total = sum(map(len, lines))
    i = 0
    while True:
        line = (
            f'kube_ovn_ip_info{{pod="virt-launcher-vm-{i}",namespace="tenant-{i % 40}",'
            f'ip="10.16.{i // 250 % 250}.{i % 250}",node="node-{i % 7}",subnet="ovn-default"}} 1\n'
        )
        if total + len(line) > size:
            break
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)


@functools.cache
def ovn_body_samples(size: int = 0) -> int:
    """How many samples ovn_body(size) holds (every non-comment line is one)."""
    return sum(1 for line in ovn_body(size).splitlines() if line and not line.startswith("#"))


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def kube_ovn_app(
    *, metrics: str | None, secure: bool = False, livez_status: int = 200
) -> web.Application:
    """Kube-OVN's endpoint: the health paths, and /metrics serving `metrics` (None: the
    health-only server of ENABLE_METRICS=false), behind a token when `secure`."""

    @web.middleware
    async def oracle(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        credentials = "Authorization" in request.headers
        if credentials and request.path in HEALTH_PATHS:
            return web.Response(status=400, text="a health probe carried credentials\n")
        if credentials and metrics is None and not request.secure:
            return web.Response(status=400, text="a bearer token came over plain HTTP\n")
        return await handler(request)

    async def livez(request: web.Request) -> web.Response:
        if livez_status != 200:  # kube-ovn-cni's LivezHandler when a probe fails
            return web.Response(status=livez_status, text="probe failed\n")
        return web.Response(text="ok")

    async def serve_metrics(request: web.Request) -> web.Response:
        assert metrics is not None
        if secure:
            given = request.headers.get("Authorization", "")
            if given == f"Bearer {FORBIDDEN_TOKEN}":
                return web.Response(
                    status=403,
                    text="Authorization denied for user system:serviceaccount:kubev:exporter\n",
                )
            if given != f"Bearer {TOKEN}":
                return web.Response(status=401, text="Unauthorized\n")
        return web.Response(text=metrics, content_type="text/plain")

    app = web.Application(middlewares=[oracle])
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", health)
    app.router.add_get("/healthz", health)
    if metrics is not None:
        app.router.add_get("/metrics", serve_metrics)
    return app


OVN_APPS: dict[str, Callable[[], web.Application]] = {
    "ovn": lambda: kube_ovn_app(metrics=ovn_body()),
    "ovn-bad-facts": lambda: kube_ovn_app(metrics=GOOD + BAD_FACTS),
    "ovn-disabled": lambda: kube_ovn_app(metrics=None),
    "ovn-secure": lambda: kube_ovn_app(metrics=ovn_body(), secure=True),
    "ovn-big": lambda: kube_ovn_app(metrics=ovn_body(BIG_OVN_BYTES)),
    "ovn-livez503": lambda: kube_ovn_app(metrics=ovn_body(), livez_status=503),
}


async def identity(request: web.Request) -> web.Response:
    """A worker's /-/identity, for whatever address it was asked at (many peer addresses
    in one namespace share one stub)."""
    document = {
        "kind": "kubev-node-exporter/identity",
        "version": 1,
        "node": f"node-{request.host.rsplit(':', 1)[0]}",
        "role": "worker",
        "address": request.host.rsplit(":", 1)[0].strip("[]"),
        "source": "ports-check",
        "serves": [
            {"component": c, "port": p, "protocol": proto, "listening": True}
            for c, p, proto in (
                ("kubelet", 10250, "tcp"),
                ("kube-proxy", 10256, "tcp"),
                ("kube-ovn-cni", 10665, "tcp"),
                ("geneve", 6081, "udp"),
            )
        ],
    }
    return web.json_response(document)


BEHAVIOURS = {
    "good": good,
    "status500": status500,
    "garbage": garbage,
    "huge": huge,
    "trickle": trickle,
    "redirect_elsewhere": redirect_elsewhere,
    "redirect_here": redirect_here,
    "needs_token": needs_token,
    "identity": identity,
}


def app_for(behaviour: str) -> web.Application:
    if behaviour in OVN_APPS:
        return OVN_APPS[behaviour]()
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


def ca_signed_certificate(directory: Path, *ips: str) -> tuple[Path, Path, Path]:
    """A CA made by openssl, and a serving certificate it signs for `ips`, as Kube-OVN
    makes them (pkg/metrics/dynamic_cert_key.go: CA "self-signed-ca", certificate for
    localhost with the pod IPs). Returns (certificate, key, CA certificate): a test that
    plays Kube-OVN deletes the CA, which Kube-OVN keeps only in memory."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, request, cert = directory / "tls.key", directory / "tls.csr", directory / "tls.pem"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips) + "\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
         "-subj", "/CN=self-signed-ca", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign"],
        ["req", *ec, "-keyout", key, "-out", request, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", extensions],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    ca_key.unlink()
    return cert, key, ca_cert


async def _main(specs: list[str]) -> None:
    context = None
    runners = []
    while specs:
        if specs[0] == "--tls":  # --tls CERT KEY: the specs after it serve HTTPS
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(specs[1], specs[2])
            specs = specs[3:]
            continue
        if specs[0] == "--plain":
            context, specs = None, specs[1:]
            continue
        address, behaviour = specs.pop(0).split("=")
        host, _, port = address.rpartition(":")
        runner = web.AppRunner(app_for(behaviour), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port), ssl_context=context)
        await site.start()
        runners.append(runner)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
