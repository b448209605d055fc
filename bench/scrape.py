"""Scrape latency, throughput and memory: this exporter beside Debian's node_exporter and
beside the floor (a bare aiohttp handler returning a fixed body of the same size), same run,
same machine; then CPU and RSS at default intervals, and the event-loop lag meanwhile.

Latency comes from wrk (--latency) with the headers Prometheus sends, at 1, 10 and 100
connections; RSS is read from /proc/<pid>/status while a keep-alive client makes 10,000
scrapes. Results print as Markdown tables and go to bench/results/scrape.json.

    make bench                      # full run (several minutes)
    PYTHONPATH=. python bench/scrape.py --quick  # seconds; checks that the harness works
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, background

RESULTS = ROOT / "bench" / "results"
PROMETHEUS_HEADERS = [
    "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    "Accept-Encoding: gzip",
]
CONCURRENCY = (1, 10, 100)
#: node_exporter as shipped, and reduced to the collectors that read what our checks read.
NODE_EXPORTER_SETUPS = [
    ("node_exporter (Debian, defaults)", []),
    (
        "node_exporter (cpu, meminfo, diskstats, netclass)",
        [
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.diskstats",
            "--collector.netclass",
        ],
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port}{path} not ready")


@contextlib.contextmanager
def process(cmd: list[str], port: int, ready_path: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_http(port, ready_path)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


#: loopback listeners for the port benches start here, below the ephemeral range
FIRST_LISTENER_PORT = 21000


@contextlib.contextmanager
def loopback_listeners(count: int) -> Iterator[None]:
    """`count` TCP listeners on 127.0.0.1 from FIRST_LISTENER_PORT, in a helper process."""
    ports = range(FIRST_LISTENER_PORT, FIRST_LISTENER_PORT + count)
    with background(["tests.listeners", *(f"tcp:127.0.0.1:{p}" for p in ports)]):
        yield


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(
    port: int, seconds: int, connections: int, path: str = "/metrics", netns: str | None = None
) -> dict[str, float]:
    threads = min(2, connections)
    cmd = ["ip", "netns", "exec", netns] if netns else []
    cmd += ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in PROMETHEUS_HEADERS:
        cmd += ["-H", header]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    assert rps and latency, out
    result = {"requests_per_second": float(rps[1]), "max_ms": _ms(latency[5], latency[6])}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        result[f"p{pct}_ms"] = _ms(match[1], match[2])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors[1]) if errors else 0.0
    return result


def soak(pid: int, port: int, scrapes: int) -> tuple[list[int], int]:
    """RSS (KiB) before and after every tenth of `scrapes` keep-alive scrapes, and how many
    scrapes did not answer 200."""
    time.sleep(2)  # let the server finish what wrk left queued
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = [rss_kib(pid)]
    failed = 0
    for i in range(1, scrapes + 1):
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        response.read()
        failed += response.status != 200
        if i % max(1, scrapes // 10) == 0:
            samples.append(rss_kib(pid))
    return samples, failed


def measure(
    name: str, pid: int, port: int, args: argparse.Namespace, soak_it: bool = True
) -> dict[str, Any]:
    cpu0 = cpu_seconds(pid)
    result: dict[str, Any] = {"name": name}
    for c in CONCURRENCY:
        result[f"c{c}"] = wrk(port, args.seconds, c)
    if soak_it:
        rss, failed = soak(pid, port, args.scrapes)
        result["soak_failed"] = failed
        result["rss_kib"] = rss
        result["rss_growth_pct"] = round(100 * (rss[-1] - rss[1]) / rss[1], 2)
    result["cpu_seconds_during_bench"] = round(cpu_seconds(pid) - cpu0, 2)
    return result


def node_exporter_version() -> str:
    done = subprocess.run(
        ["prometheus-node-exporter", "--version"], capture_output=True, text=True, check=True
    )
    return (done.stdout or done.stderr).splitlines()[0]


@contextlib.contextmanager
def floor_server(plain: bytes, zipped: bytes) -> Iterator[int]:
    """The floor: aiohttp answering the same bytes with no work at all, in a thread."""
    import asyncio

    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(
                body=zipped, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
            )
        return web.Response(body=plain, content_type="text/plain")

    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)

    async def serve() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def lag_p99_ms(port: int) -> float | None:
    """p99 of the exporter's own kubev_exporter_event_loop_lag_seconds histogram."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    buckets = [
        (float("inf") if le == "+Inf" else float(le), float(v))
        for le, v in re.findall(
            r'^kubev_exporter_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M
        )
    ]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= 0.99 * total) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scrapes", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=int, default=120)
    parser.add_argument("--out", type=Path, default=RESULTS / "scrape.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.scrapes, args.idle_seconds = 1, 200, 2

    results: list[dict[str, Any]] = []
    idle: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as storage:
        ours_port = free_port()
        config = Path(storage) / "config.yaml"
        # probes stay on loopback: the node address is 127.0.0.1, DNS resolves localhost
        config.write_text(
            "node_address: 127.0.0.1\n"
            f"checks:\n  disk:\n    storage_paths: [{storage}]\n  dns:\n    names: [localhost]\n"
        )
        ours = [
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address=127.0.0.1:{ours_port}",
            f"--config.file={config}",
            # wrk's 100 connections all come from 127.0.0.1: at the per-client default (16)
            # most would be refused. This measures serving; the caps are measured under
            # attack in tests/integration/test_web_attacks.py and docs/security.md.
            f"--web.max-connections-per-client={max(CONCURRENCY)}",
        ]
        with process(ours, ours_port, "/-/ready") as proc:
            cpu0, started = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            busy = cpu_seconds(proc.pid) - cpu0
            idle = {
                "seconds": round(time.monotonic() - started, 1),
                "cpu_seconds": round(busy, 3),
                "core_percent": round(100 * busy / (time.monotonic() - started), 3),
                "cpu_seconds_per_hour": round(busy * 3600 / args.idle_seconds, 1),
                "rss_mib": round(rss_kib(proc.pid) / 1024, 1),
                # every check running on its interval, no scrape load
                "event_loop_lag_p99_ms": lag_p99_ms(ours_port),
            }
            results.append(measure("kubev-node-exporter", proc.pid, ours_port, args))
            results[-1]["event_loop_lag_p99_ms"] = lag_p99_ms(ours_port)
            conn = http.client.HTTPConnection("127.0.0.1", ours_port, timeout=10)
            conn.request("GET", "/metrics")
            plain = conn.getresponse().read()
        with floor_server(plain, gzip.compress(plain, 6)) as floor_port:
            results.append(
                measure(
                    "floor (aiohttp, fixed body of the same size)",
                    os.getpid(),
                    floor_port,
                    args,
                    soak_it=False,
                )
            )
        for name, flags in NODE_EXPORTER_SETUPS:
            ne_port = free_port()
            node_exporter = [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{ne_port}",
                *flags,
            ]
            with process(node_exporter, ne_port, "/metrics") as proc:
                results.append(measure(name, proc.pid, ne_port, args))

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
        ),
        "node_exporter": node_exporter_version(),
        "wrk_seconds": args.seconds,
        "scrapes": args.scrapes,
        "idle": idle,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['date']}, {report['machine']}, {report['node_exporter']}")
    print("| server | c | p50 | p99 | max | req/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for c in CONCURRENCY:
            m = r[f"c{c}"]
            print(
                f"| {r['name']} | {c} | {m['p50_ms']:.2f} ms | {m['p99_ms']:.2f} ms | "
                f"{m['max_ms']:.2f} ms | {m['requests_per_second']:.0f} |"
            )
    print("\n| server | RSS start | RSS after soak | growth |\n|---|---|---|---|")
    for r in results:
        if "rss_kib" in r:
            print(
                f"| {r['name']} | {r['rss_kib'][1] / 1024:.1f} MiB | "
                f"{r['rss_kib'][-1] / 1024:.1f} MiB | {r['rss_growth_pct']}% |"
            )
    print(f"\nidle at default intervals: {idle}")
    print(
        f"event-loop lag p99 (bucket bound) after the load phases: "
        f"{results[0]['event_loop_lag_p99_ms']} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
