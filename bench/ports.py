"""The ports check at scale: cycle time with 10, 100 and 1,000 configured ports (loopback
listeners), and scrape latency while those cycles run, against an idle baseline.

    python bench/ports.py            # about a minute
    python bench/ports.py --quick    # seconds; checks that the harness works
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scrape import FIRST_LISTENER_PORT as FIRST_PORT
from scrape import RESULTS, free_port, loopback_listeners, process, wrk

from exporter.spec import PORTS

OTHERS = [
    "--no-collector.kvm",
    "--no-collector.compute",
    "--no-collector.disk",
    "--no-collector.network",
    "--no-collector.ovn",
    "--no-collector.dns",
]


def exporter_cmd(port: int, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exporter",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
        *OTHERS,
    ]


def config_text(count: int) -> str:
    absent = ", ".join(f"{p.component}: absent" for p in PORTS)
    return (
        "node_address: 127.0.0.1\n"
        "checks:\n  ports:\n    interval: 1s\n    timeout: 1s\n"
        f"    expectations: {{{absent}}}\n"
        f"    extra: [{{component: bench, port: {FIRST_PORT}-{FIRST_PORT + count - 1}}}]\n"
    )


def durations(port: int, seconds: float) -> list[float]:
    """kubev_check_duration_seconds{check="ports"} once per cycle for `seconds`."""
    import urllib.request

    found: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        match = re.search(r'^kubev_check_duration_seconds\{check="ports"\} (\S+)$', text, re.M)
        if match and (not found or float(match[1]) != found[-1]):
            found.append(float(match[1]))
        time.sleep(0.25)
    return found


def run(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    config = tmp / f"ports-{count}.yaml"
    config.write_text(config_text(count))
    port = free_port()
    with (
        loopback_listeners(count),
        process(exporter_cmd(port, f"--config.file={config}"), port, "/-/ready"),
    ):
        cycles = durations(port, args.seconds)
        latency = wrk(port, args.seconds, 1)
    return {
        "ports": count,
        "cycle_median_ms": round(statistics.median(cycles) * 1000, 2),
        "cycle_max_ms": round(max(cycles) * 1000, 2),
        "cycles": len(cycles),
        "scrape_p50_ms": latency["p50_ms"],
        "scrape_p99_ms": latency["p99_ms"],
    }


def baseline(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd = exporter_cmd(port, "--no-collector.ports")
    with process(cmd, port, "/-/ready"):
        latency = wrk(port, args.seconds, 1)
    return {"ports": 0, "scrape_p50_ms": latency["p50_ms"], "scrape_p99_ms": latency["p99_ms"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "ports.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 1
    with tempfile.TemporaryDirectory() as tmp:
        rows = [baseline(args)] + [run(n, args, Path(tmp)) for n in (10, 100, 1000)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print("| configured ports | cycle median | cycle max | scrape p50 (c=1) | scrape p99 (c=1) |")
    print("|---|---|---|---|---|")
    for r in rows:
        cycle = (
            f"{r['cycle_median_ms']:.1f} ms | {r['cycle_max_ms']:.1f} ms"
            if r["ports"]
            else "- (ports check off) | -"
        )
        print(
            f"| {r['ports']} | {cycle} | {r['scrape_p50_ms']:.2f} ms | "
            f"{r['scrape_p99_ms']:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
