"""Peak memory under load and under connection attacks: what the pod's memory limit and the
systemd unit's MemoryMax= must hold (docs/performance.md, "Memory limits").

Each scenario runs against a fresh exporter (the compliant fixture node, the network
checks off) on loopback; the number is the process's peak resident memory (VmHWM) after
the scenario, beside its resident memory once ready.

    PYTHONPATH=. python bench/memory.py            # full run (about a minute)
    PYTHONPATH=. python bench/memory.py --quick    # seconds; checks that the harness works
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import FIXTURES, ROOT, free_port, http_get

RESULTS = ROOT / "bench" / "results"


def status(pid: int, key: str) -> float:
    """MiB of /proc/<pid>/status's key (VmRSS, VmHWM)."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    assert found, key
    return int(found[1]) / 1024


def exporter(port: int) -> subprocess.Popen[bytes]:
    tree = FIXTURES / "compliant"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("kubev-node-exporter")),
            f"--web.listen-address=127.0.0.1:{port}",
            f"--path.procfs={tree}/proc",
            f"--path.sysfs={tree}/sys",
            f"--path.rootfs={tree}/root",
            f"--path.dev={tree}/dev",
            "--no-collector.dns",
            "--no-collector.ports",
            "--no-collector.ovn",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            if http_get(f"http://127.0.0.1:{port}/-/ready").status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the exporter did not get ready")


def hold(port: int, count: int, payload: bytes, seconds: float, addresses: int = 1) -> int:
    """Open `count` connections, send `payload` on each (no more), hold them; how many
    the server kept open. From `addresses` source addresses (127.0.0.2, .3, ...: each is
    a client of its own to the per-client cap)."""
    held = []
    for i in range(count):
        s = socket.socket()
        s.settimeout(2)
        try:
            if addresses > 1:
                s.bind((f"127.0.0.{2 + i % addresses}", 0))
            s.connect(("127.0.0.1", port))
            if payload:
                s.sendall(payload)
        except OSError:
            s.close()
            continue
        held.append(s)
    time.sleep(seconds)
    kept = 0
    for s in held:
        s.setblocking(False)
        try:
            kept += s.recv(1) != b""
        except BlockingIOError:
            kept += 1
        except OSError:
            pass
        s.close()
    return kept


def scrapes(port: int, count: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
        reader = s.makefile("rb")
        for _ in range(count):
            s.sendall(request)
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)


def wrk(port: int, connections: int, seconds: int) -> None:
    subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            "Accept-Encoding: gzip",
            f"http://127.0.0.1:{port}/metrics",
        ],
        capture_output=True,
        check=True,
    )


def partial_head(headers: int, value_bytes: int) -> bytes:
    """A request head without its final blank line: the server must hold it."""
    lines = b"".join(b"X-H%d: " % i + b"a" * value_bytes + b"\r\n" for i in range(headers))
    return b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + lines


def scenarios(quick: bool) -> list[tuple[str, Callable[[int], object]]]:
    n = 100 if quick else 2000
    over = 50 if quick else 2600
    seconds = 1.0 if quick else 3.0
    clients = 8 if quick else 64
    return [
        ("10,000 keep-alive scrapes" if not quick else "200 scrapes",
         lambda p: scrapes(p, 200 if quick else 10000)),
        ("wrk, 200 connections, 10 s" if not quick else "wrk, 20 connections, 1 s",
         lambda p: wrk(p, 20 if quick else 200, 1 if quick else 10)),
        (f"{over} idle connections, one client",
         lambda p: hold(p, over, b"", seconds)),
        (f"{n} slow request heads, 1 KiB each",
         lambda p: hold(p, n, partial_head(10, 100), seconds)),
        (f"{n} slow request heads at the size limits (62 x 8,000-byte headers, ~500 KiB)",
         lambda p: hold(p, n, partial_head(62, 8000), seconds)),
        (f"the same from {clients} client addresses (every place of the table taken)",
         lambda p: hold(p, n, partial_head(62, 8000), seconds, clients)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    for name, run in scenarios(args.quick):
        port = free_port()
        proc = exporter(port)
        try:
            ready = status(proc.pid, "VmRSS")
            run(port)
            peak = status(proc.pid, "VmHWM")
            alive = proc.poll() is None
        finally:
            proc.kill()
            proc.wait()
        rows.append({"scenario": name, "ready_mib": ready, "peak_mib": peak, "alive": alive})
    print("| scenario | RSS when ready | peak RSS |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['ready_mib']:.1f} MiB | {r['peak_mib']:.1f} MiB |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
