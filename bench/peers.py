"""The peers check at 10, 100 and 1,000 peers: probe cost and series per node.

One network namespace runs the exporter with only the peers check; another holds the peer
addresses (routed through it, one neighbour entry for the prober), with the listeners
every node runs (kubelet 10250, kube-proxy 10256, kube-ovn-cni 10665 on every address)
and a stub answering /-/identity as a worker whose Geneve listens (so 6081/udp is the
silent, unknown case of a running cluster). Settings are the defaults (256 probes a run,
1 s probe timeout, 64 in flight) but the interval, 4 s instead of 15 s, to see more runs.

Per size: CPU per run and per probe (utime + stime of the exporter, less the same process
with no peer: the baseline row), the run's duration,
probes per run, the series the check adds, the time a full round takes at the default
interval, RSS, and scrape latency (wrk, one connection) while the runs go on.

    sudo PYTHONPATH=. python bench/peers.py            # about two minutes
    sudo PYTHONPATH=. python bench/peers.py --quick    # 10 and 100 peers, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scrape import RESULTS, cpu_seconds, rss_kib, wrk

from tests.cluster import cluster
from tests.helpers import Exporter, RootMarker, background, only, samples, value

DEFAULT_INTERVAL = 15.0
BUDGET = 256


def peer_addresses(count: int) -> list[str]:
    return [f"10.221.{i // 250}.{1 + i % 250}" for i in range(count)]


def series(text: str) -> tuple[int, int]:
    """Series the peers check adds, and all series served."""
    names = [name for name, _ in samples(text)]
    return sum(1 for n in names if n.startswith("kubev_peer")), len(names)


def run(count: int, seconds: float, interval: float, tmp: Path) -> dict[str, Any]:
    peers = peer_addresses(count)
    with cluster("10.220.0", (("p", "worker"), ("q", "worker"))) as c:
        p, q = c.nodes["p"], c.nodes["q"]
        batch = "".join(f"addr add {a}/32 dev eth0\n" for a in peers)
        subprocess.run(["ip", "-n", q.ns, "-batch", "-"], input=batch, text=True, check=True)
        subprocess.run(
            ["ip", "-n", p.ns, "route", "add", "10.221.0.0/16", "via", q.address], check=True
        )
        # one kernel answers for every peer: no shared ICMP rate limit, as real nodes
        subprocess.run(
            ["ip", "netns", "exec", q.ns, "sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0",
             "net.ipv4.icmp_msgs_per_sec=1000000", "net.ipv4.icmp_msgs_burst=1000000"],
            check=True,
        )  # fmt: skip
        peers_file = tmp / f"peers-{count}.txt"
        peers_file.write_text("\n".join(peers) + "\n")
        config = tmp / f"peers-{count}.yaml"
        config.write_text(
            f"checks:\n  peers:\n    file: {peers_file}\n    interval: {interval:g}s\n"
            f"    timeout: {interval * 0.9:g}s\n"
        )
        listeners = [f"tcp:0.0.0.0:{port}" for port in (10250, 10256, 10665)]
        listeners.append("udp:0.0.0.0:6081")  # Geneve listens: every UDP probe is silent
        with (
            background(["tests.listeners", *listeners], q.ns),
            background(["tests.httpstub", "19100=identity"], q.ns),
        ):
            exporter = Exporter(
                [f"--config.file={config}", "--role=worker", *only("peers")],
                netns=p.ns,
                env={"NODE_IP": p.address},
            )
            try:
                exporter.wait_ready()
                text = warm(exporter, count)
                runs0 = value(text, "kubev_check_runs_total", check="peers", result="success")
                cpu0, t0 = cpu_seconds(exporter.proc.pid), time.monotonic()
                durations, probes = [], []
                seen = runs0
                while time.monotonic() - t0 < seconds:
                    text = exporter.metrics()
                    now = value(text, "kubev_check_runs_total", check="peers", result="success")
                    if now != seen:
                        seen = now
                        durations.append(
                            value(text, "kubev_check_duration_seconds", check="peers") or 0.0
                        )
                        probes.append(value(text, "kubev_peer_run_probes") or 0.0)
                    time.sleep(1.0)  # few scrapes: their cost is in the CPU figure
                cpu = cpu_seconds(exporter.proc.pid) - cpu0
                runs = (seen or 0) - (runs0 or 0)
                latency = wrk(exporter.port, 5, 1, netns=p.ns)
                text = exporter.metrics()
                rss = rss_kib(exporter.proc.pid) / 1024
            finally:
                exporter.stop()
    pairs = value(text, "kubev_peer_pairs") or 0
    peer_series, all_series = series(text)
    per_run = cpu / max(1, runs)
    return {
        "seconds": round(seconds, 1),
        "cpu_s": round(cpu, 3),
        "peers": count,
        "pairs": int(pairs),
        "runs": int(runs),
        "probes_per_run": statistics.median(probes) if probes else 0,
        "run_median_ms": round(statistics.median(durations) * 1000, 1) if durations else None,
        "run_max_ms": round(max(durations) * 1000, 1) if durations else None,
        "cpu_ms_per_run": round(per_run * 1000, 2),
        "cpu_us_per_probe": None,
        "cpu_share_at_15s": None,
        "full_round_s_at_15s": math.ceil(pairs / BUDGET) * DEFAULT_INTERVAL,
        "peer_series": peer_series,
        "all_series": all_series,
        "rss_mib": round(rss, 1),
        "scrape_p50_ms": latency["p50_ms"],
        "scrape_p99_ms": latency["p99_ms"],
    }


def warm(exporter: Exporter, count: int) -> str:
    """Until every identity is known and every pair has been probed once."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = exporter.metrics()
        unprobed = sum(
            v
            for (name, labels), v in samples(text).items()
            if name == "kubev_peer_ports" and ("state", "unprobed") in labels
        )
        known = value(text, "kubev_peer_identities", result="identity")
        if unprobed == 0 and known == count:
            return text
        time.sleep(0.5)
    raise RuntimeError(f"{count} peers: never warmed up")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    args = parser.parse_args()
    # a benchmark run as root by `make bench`, not a test: the namespaces need no marker
    RootMarker.marked = True
    sizes: tuple[int, ...] = (0, 10, 100, 1000)  # 0: the same process with no peer, the baseline
    if args.quick:
        sizes, args.seconds = (0, 10, 100), 8.0
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args.seconds, args.interval, Path(tmp)) for n in sizes]
    base = rows[0]["cpu_ms_per_run"]
    for r in rows:  # what the probes cost above an exporter that has no peer to probe
        r["cpu_ms_per_run_above_baseline"] = round(max(0.0, r["cpu_ms_per_run"] - base), 2)
        if r["probes_per_run"]:
            r["cpu_us_per_probe"] = round(
                r["cpu_ms_per_run_above_baseline"] * 1000 / r["probes_per_run"], 1
            )
            r["cpu_share_at_15s"] = round(
                r["cpu_ms_per_run_above_baseline"] / 1000 / DEFAULT_INTERVAL * 100, 3
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(
        "| peers | pairs | probes/run | run median (max) | CPU/run above baseline | CPU/probe "
        "| CPU at 15 s "
        "| full round at 15 s | peer series | RSS | scrape p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['peers']} | {r['pairs']} | {r['probes_per_run']:g} | {r['run_median_ms']} ms "
            f"({r['run_max_ms']} ms) | {r['cpu_ms_per_run_above_baseline']} ms | "
            f"{r['cpu_us_per_probe']} us | "
            f"{r['cpu_share_at_15s']}% | {r['full_round_s_at_15s']:g} s | {r['peer_series']} | "
            f"{r['rss_mib']} MiB | {r['scrape_p50_ms']} / {r['scrape_p99_ms']} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
