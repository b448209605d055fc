"""Scale: how each check's cycle time and the scrape latency grow with the node.

A fixture node with 64 disks and 256 NICs and a config with 1,000 ports (loopback
listeners), against the compliant fixture node (2 disks, 2 NICs, the spec's ports). Every
check runs every 2 seconds, so cycles overlap the scrapes wrk makes. The baselines: the
compliant node with every check off (the same server with nothing running beside it), and
with every check at its default interval.

    PYTHONPATH=. python bench/scale.py            # about a minute
    PYTHONPATH=. python bench/scale.py --quick
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import statistics
import string
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from scrape import FIRST_LISTENER_PORT as FIRST_PORT
from scrape import RESULTS, floor_server, free_port, loopback_listeners, process, wrk

from exporter.checks import CHECKS as REGISTRY
from exporter.spec import PORTS
from tests.fixtures.build import block_device, diskstat, net_device
from tests.helpers import ROOT

#: every registered check (a new one is measured too)
CHECKS = tuple(REGISTRY)


def big_node(target: Path, disks: int, nics: int) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "nodes" / "compliant", target)
    tree: dict[str, str] = {}
    names = [f"sd{a}{b}" for a in string.ascii_lowercase for b in string.ascii_lowercase][:disks]
    lines = []
    for i, name in enumerate(names):
        block_device(tree, name, "0", f"SSD model {i}")
        lines.append(diskstat(8, i * 16, name, 1000 + i, 500, 2000 + i, 900))
    for i in range(nics):
        net_device(
            tree,
            f"ens{i}",
            speed="10000",
            operstate="up",
            mtu=9000,
            carrier_changes=i % 5,
            physical=True,
        )
    for rel, text in tree.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    with (target / "proc" / "diskstats").open("a") as f:
        f.write("\n".join(lines) + "\n")
    (target / "dev").mkdir(exist_ok=True)


#: the two baselines' configs: every check off; every check at its default interval
OFF = "checks:\n" + "".join(f"  {c}: {{enabled: false}}\n" for c in CHECKS)
DEFAULT = "node_address: 127.0.0.1\nchecks:\n  dns: {names: [localhost]}\n"


def config(path: Path, ports: int | str) -> None:
    """Every check every 2 s, with `ports` extra loopback ports; or a baseline's config."""
    if isinstance(ports, str):
        path.write_text(ports)
        return
    absent = ", ".join(f"{p.component}: absent" for p in PORTS)
    extra = (
        f"    expectations: {{{absent}}}\n"
        f"    extra: [{{component: bench, port: {FIRST_PORT}-{FIRST_PORT + ports - 1}}}]\n"
        if ports
        else ""
    )
    every = "".join(
        f"  {c}: {{interval: 2s, timeout: 2s}}\n" for c in CHECKS if c not in ("ports", "dns")
    )
    path.write_text(
        "node_address: 127.0.0.1\nchecks:\n"
        + every
        + "  dns: {interval: 2s, timeout: 2s, names: [localhost]}\n"
        + "  ports:\n    interval: 2s\n    timeout: 2s\n"
        + extra
    )


def cycle_times(port: int, seconds: float) -> dict[str, float]:
    seen: dict[str, list[float]] = {c: [] for c in CHECKS}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        for check, value in re.findall(
            rb'^kubev_check_duration_seconds\{check="(\w+)"\} (\S+)$', text, re.M
        ):
            values = seen[check.decode()]
            if not values or values[-1] != float(value):
                values.append(float(value))
        time.sleep(0.5)
    return {c: round(statistics.median(v) * 1000, 2) for c, v in seen.items() if v}


def run(
    name: str, tree: Path, ports: int | str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    cfg = tmp / f"{name}.yaml"
    config(cfg, ports)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "exporter",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--config.file={cfg}",
        f"--path.procfs={tree}/proc",
        f"--path.sysfs={tree}/sys",
        f"--path.rootfs={tree}/root",
        f"--path.dev={tree}/dev",
    ]
    listeners = ports if isinstance(ports, int) else 0
    with loopback_listeners(listeners), process(cmd, port, "/-/ready"):
        cycles = cycle_times(port, args.seconds)
        latency = wrk(port, args.seconds, 1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
        # the floor, in this process, scraped while the exporter's checks keep running:
        # what the machine's load alone does to a server with no interpreter lock to share
        with floor_server(body, gzip.compress(body, 6)) as floor_port:
            floor = wrk(floor_port, args.seconds, 1)
    return {
        "node": name,
        "floor_beside": floor,
        "cycle_median_ms": cycles,
        "scrape": latency,
        "samples": body.count(b"\n") - body.count(b"\n#"),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        small = tmp / "compliant"
        shutil.copytree(ROOT / "tests" / "fixtures" / "nodes" / "compliant", small)
        (small / "dev").mkdir()
        big = tmp / "big"
        big_node(big, disks=64, nics=256)
        rows = [
            run("compliant, every check off (baseline)", small, OFF, args, tmp),
            run("compliant, default intervals", small, DEFAULT, args, tmp),
            run("compliant, every check every 2 s", small, 0, args, tmp),
            run(
                "scaled (64 disks, 256 NICs, 1,000 ports), every check every 2 s",
                big,
                1000,
                args,
                tmp,
            ),
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(
        "| node | samples | "
        + " | ".join(CHECKS)
        + " | scrape p50 | p99 | max | floor p99 beside |"
    )
    print("|---" * (len(CHECKS) + 6) + "|")
    for r in rows:
        cycles = " | ".join(
            f"{r['cycle_median_ms'][c]:.1f} ms" if c in r["cycle_median_ms"] else "-"
            for c in CHECKS
        )
        s = r["scrape"]
        print(
            f"| {r['node']} | {r['samples']} | {cycles} | {s['p50_ms']:.2f} ms | "
            f"{s['p99_ms']:.2f} ms | {s['max_ms']:.2f} ms | {r['floor_beside']['p99_ms']:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
