"""Scrape latency and memory: this exporter beside Debian's node_exporter, same run, same machine.

Latency comes from wrk (--latency) with the headers Prometheus sends; RSS is read from
/proc/<pid>/status while a keep-alive client makes 10,000 scrapes. Results print as a
Markdown table and are written to bench/results/scrape.json.

    make bench                      # full run (about a minute)
    python bench/scrape.py --quick  # seconds; checks that the harness works
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROMETHEUS_HEADERS = [
    "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    "Accept-Encoding: gzip",
]


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
    import socket

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


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, seconds: int, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in PROMETHEUS_HEADERS:
        cmd += ["-H", header]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True, check=True
    ).stdout
    result = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match[2]]
        result[f"p{pct}_ms"] = float(match[1]) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors[1]) if errors else 0.0
    return result


def soak(pid: int, port: int, scrapes: int) -> list[int]:
    """RSS (KiB) before and after every tenth of `scrapes` keep-alive scrapes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = [rss_kib(pid)]
    for i in range(1, scrapes + 1):
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        if i % max(1, scrapes // 10) == 0:
            samples.append(rss_kib(pid))
    return samples


def node_exporter_version() -> str:
    done = subprocess.run(
        ["prometheus-node-exporter", "--version"], capture_output=True, text=True, check=True
    )
    return (done.stdout or done.stderr).splitlines()[0]


def measure(name: str, pid: int, port: int, args: argparse.Namespace) -> dict[str, Any]:
    cpu0 = cpu_seconds(pid)
    latency = wrk(port, args.seconds, 1)
    parallel = wrk(port, args.seconds, 10)
    rss = soak(pid, port, args.scrapes)
    return {
        "name": name,
        "c1": latency,
        "c10": parallel,
        "rss_kib": rss,
        "rss_growth_pct": round(100 * (rss[-1] - rss[1]) / rss[1], 2),
        "cpu_seconds_during_bench": round(cpu_seconds(pid) - cpu0, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="seconds, not a minute")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scrapes", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "scrape.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.scrapes = 1, 200

    results: list[dict[str, Any]] = []
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
        ]
        with process(ours, ours_port, "/-/ready") as proc:
            results.append(measure("kubev-node-exporter", proc.pid, ours_port, args))
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
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['date']}, {report['machine']}, {report['node_exporter']}")
    print(
        "| exporter | c=1 p50 | c=1 p99 | c=10 p50 | c=10 p99 | req/s c=10 | RSS start | "
        f"RSS after {args.scrapes} | growth |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c1, c10, rss = r["c1"], r["c10"], r["rss_kib"]
        print(
            f"| {r['name']} | {c1['p50_ms']:.2f} ms | {c1['p99_ms']:.2f} ms | "
            f"{c10['p50_ms']:.2f} ms | {c10['p99_ms']:.2f} ms | "
            f"{c10['requests_per_second']:.0f} | {rss[1] / 1024:.1f} MiB | "
            f"{rss[-1] / 1024:.1f} MiB | {r['rss_growth_pct']}% |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
