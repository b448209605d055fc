"""The benchmark harness works (numbers are for docs/performance.md, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_quick_bench_runs_and_reports_both_exporters(tmp_path: Path) -> None:
    out = tmp_path / "scrape.json"
    subprocess.run(
        [sys.executable, "bench/scrape.py", "--quick", f"--out={out}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == [
        "kubev-node-exporter",
        "node_exporter (Debian, defaults)",
        "node_exporter (cpu, meminfo, diskstats, netclass)",
    ]
    for result in report["results"]:
        assert result["c1"]["errors"] == 0 and result["c10"]["errors"] == 0
        assert result["c1"]["requests_per_second"] > 0
        assert len(result["rss_kib"]) == 11 and all(kib > 0 for kib in result["rss_kib"])


def test_quick_ports_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "ports.json"
    subprocess.run(
        [sys.executable, "bench/ports.py", "--quick", f"--out={out}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    rows = json.loads(out.read_text())["rows"]
    assert [r["ports"] for r in rows] == [0, 10, 100, 1000]
    assert all(r["cycles"] >= 1 for r in rows[1:])
