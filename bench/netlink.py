"""The network check on the live path (netlink and the ethtool API through pyroute2) as
the interface count grows: veth pairs in a network namespace this bench creates and
deletes, the exporter and wrk run inside it. Needs root.

veths are virtual: with `physical_only: false` every one is reported (the cost per reported
link); with the default `physical_only: true` none is (the veths and taps of a node's pods
and VMs, which the check only lists). Only the network check runs, every 2 seconds, so
that cycles overlap the scrapes; cycle time is kubev_check_duration_seconds{check="network"},
scrape latency is wrk's (-c1).

    PYTHONPATH=. python bench/netlink.py            # about a minute
    PYTHONPATH=. python bench/netlink.py --quick
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scrape import RESULTS, wrk

from tests.helpers import ROOT

PORT = 19100
OTHERS = ("kvm", "compute", "disk", "ports", "ovn", "dns")


@contextmanager
def namespace(pairs: int) -> Iterator[str]:
    """A fresh namespace with lo up and `pairs` veth pairs (both ends inside, up)."""
    name = f"kvbench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        batch = ["link set lo up"]
        for i in range(pairs):
            batch += [f"link add va{i} type veth peer name vb{i}", f"link set va{i} up"]
            batch.append(f"link set vb{i} up")
        subprocess.run(
            ["ip", "-n", name, "-batch", "-"], input="\n".join(batch), text=True, check=True
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def get(ns: str, path: str) -> str:
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "curl",
            "-sf",
            "--max-time",
            "5",
            f"http://127.0.0.1:{PORT}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def run(pairs: int, physical_only: bool, seconds: int, tmp: Path) -> dict[str, Any]:
    cfg = tmp / f"netlink-{pairs}-{physical_only}.yaml"
    cfg.write_text(
        "checks:\n  network: {interval: 2s, timeout: 2s, source: netlink, "
        f"physical_only: {str(physical_only).lower()}}}\n"
        + "".join(f"  {c}: {{enabled: false}}\n" for c in OTHERS)
    )
    with namespace(pairs) as ns:
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "exporter"]
        cmd += [f"--web.listen-address=127.0.0.1:{PORT}", f"--config.file={cfg}"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    get(ns, "/-/ready")
                    break
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("exporter not ready in the namespace") from None
                    time.sleep(0.2)
            cycles: list[float] = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                found = re.search(
                    r'^kubev_check_duration_seconds\{check="network"\} (\S+)$',
                    get(ns, "/metrics"),
                    re.M,
                )
                if found and (not cycles or cycles[-1] != float(found[1])):
                    cycles.append(float(found[1]))
                time.sleep(0.5)
            speeds = re.findall(r"^kubev_network_speed_bytes\{", get(ns, "/metrics"), re.M)
            latency = wrk(PORT, seconds, 1, netns=ns)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return {
        "interfaces": 2 * pairs,
        "physical_only": physical_only,
        "with_speed": len(speeds),
        "cycle_median_ms": round(statistics.median(cycles) * 1000, 2),
        "cycles": len(cycles),
        "scrape": latency,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS / "netlink.json")
    args = parser.parse_args()
    #: (veth pairs, physical_only): every veth reported (the cost per reported link), and
    #: 256 veths present but the default physical_only (a node's pods and VMs)
    setups = (
        [(1, False), (4, True)]
        if args.quick
        else [(1, False), (32, False), (128, False), (128, True)]
    )
    if args.quick:
        args.seconds = 3
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(pairs, physical, args.seconds, Path(tmp)) for pairs, physical in setups]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print("| veth interfaces | reported | cycle median | scrape p50 (c=1) | p99 | max |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        s = r["scrape"]
        print(
            f"| {r['interfaces']} | {r['with_speed']} | {r['cycle_median_ms']:.1f} ms | "
            f"{s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['max_ms']:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
