"""The benchmark harness works (numbers are for docs/performance.md, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_quick_bench_runs_and_reports_both_exporters(tmp_path: Path) -> None:
    out = tmp_path / "scrape.json"
    quick_bench("scrape", out)
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == [
        "kubev-node-exporter",
        "floor (aiohttp, fixed body of the same size)",
        "node_exporter (Debian, defaults)",
        "node_exporter (cpu, meminfo, diskstats, netclass)",
    ]
    for result in report["results"]:
        for c in (1, 10, 100):
            assert result[f"c{c}"]["requests_per_second"] > 0
            # node_exporter answers 503 beyond its --web.max-requests (40): counted, not ours
            if not result["name"].startswith("node_exporter"):
                assert result[f"c{c}"]["errors"] == 0, result["name"]
    soaked = [r for r in report["results"] if "rss_kib" in r]
    assert len(soaked) == 3 and all(len(r["rss_kib"]) == 11 for r in soaked)
    assert report["idle"]["cpu_seconds"] >= 0 and report["idle"]["rss_mib"] > 0


def quick_bench(name: str, out: Path) -> None:
    """bench/<name>.py in its quick mode, as `make bench` runs it (PYTHONPATH=.)."""
    subprocess.run(
        [sys.executable, f"bench/{name}.py", "--quick", f"--out={out}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_quick_memory_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    quick_bench("memory", out)
    rows = json.loads(out.read_text())
    assert len(rows) == 6
    assert all(r["peak_mib"] >= r["ready_mib"] > 0 for r in rows)


@pytest.mark.slow
def test_quick_ports_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "ports.json"
    quick_bench("ports", out)
    rows = json.loads(out.read_text())["rows"]
    assert [r["ports"] for r in rows] == [0, 10, 100, 1000]
    assert all(r["cycles"] >= 1 for r in rows[1:])


@pytest.mark.root
@pytest.mark.slow
def test_quick_scale_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    quick_bench("scale", out)
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 4
    off, default, small, big = rows
    assert off["cycle_median_ms"] == {}  # every check off
    assert set(default["cycle_median_ms"]) == set(small["cycle_median_ms"])
    assert big["samples"] > 5 * small["samples"]  # 64 disks, 256 NICs, 1,000 ports are there
    assert set(big["cycle_median_ms"]) >= {"disk", "network", "ports"}


@pytest.mark.root
@pytest.mark.slow
def test_quick_netlink_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "netlink.json"
    quick_bench("netlink", out)
    rows = json.loads(out.read_text())["rows"]
    # every veth reported and asked for its speed; then only listed (physical_only)
    assert [(r["interfaces"], r["with_speed"]) for r in rows] == [(2, 2), (8, 0)]


def test_encode_bench_runs(tmp_path: Path) -> None:
    """pytest-benchmark's run of both encoders in both formats, each once
    (--benchmark-disable): every benchmark `make bench` times runs and passes."""
    report = tmp_path / "encode.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/test_encode.py",
            "--benchmark-disable",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cases = ET.parse(report).getroot().iter("testcase")
    bad = ("failure", "error", "skipped")
    outcomes = {case.attrib["name"]: [c.tag for c in case if c.tag in bad] for case in cases}
    assert outcomes == {
        f"test_encode_4000_samples[{encoder}-{fmt}]": []
        for encoder in ("exporter", "prometheus_client")
        for fmt in ("text", "openmetrics")
    }


@pytest.mark.root
@pytest.mark.slow
def test_quick_peers_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    quick_bench("peers", out)
    rows = json.loads(out.read_text())["rows"]
    assert [r["peers"] for r in rows] == [0, 10, 100]
    assert [r["pairs"] for r in rows] == [0, 40, 400]
    assert all(r["runs"] >= 1 for r in rows)
