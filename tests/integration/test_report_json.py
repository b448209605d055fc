"""/report.json: the served exporter's readiness report, the same document as
`check --output json`, valid against docs/check-output.schema.json, built from the snapshot
the exporter already holds (no check runs for a request)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from exporter.spec import Level, Profile, Req, requirements
from tests.helpers import ROOT, fixture_args, make_node_tree, running, samples

SCHEMA = json.loads((ROOT / "docs" / "check-output.schema.json").read_text())
HOST_CHECKS_ONLY = ["--no-collector.ports", "--no-collector.ovn"]
#: every check runs once at start, then not again while the test looks
ONCE = """\
node_name: json-node
profile: testing
role: worker
checks:
  kvm: {interval: 1h}
  compute: {interval: 1h}
  disk: {interval: 1h}
  network: {interval: 1h}
"""


@pytest.fixture
def tree() -> Iterator[Path]:
    """The undersized node on tmpfs (its fsync probe is fast on any machine)."""
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        yield make_node_tree("undersized", base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def runs(metrics: str) -> float:
    return sum(
        value for (name, _), value in samples(metrics).items() if name == "kubev_check_runs_total"
    )


def enabled_checks(metrics: str) -> int:
    return sum(1 for name, _ in samples(metrics) if name == "kubev_check_success")


def test_report_json_is_the_check_document_and_runs_no_check(tree: Path) -> None:
    config = tree.parent / "config.yaml"
    config.write_text(ONCE)
    args = [*fixture_args(tree, config), *HOST_CHECKS_ONLY]
    with running(args) as exporter:
        # every enabled check's first run counted, then none runs again for an hour
        checks = enabled_checks(exporter.metrics())
        deadline = time.monotonic() + 30
        while (before := runs(exporter.metrics())) < checks and time.monotonic() < deadline:
            time.sleep(0.05)
        first = exporter.get("/report.json")
        second = exporter.get("/report.json")
        after = runs(exporter.metrics())

    assert first.status == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    served = json.loads(first.body)
    jsonschema.validate(served, SCHEMA)
    # read from the snapshot: no check ran for either request, and the second is the
    # cached copy of the same generation
    assert checks >= 4 and after == before == checks
    assert second.body == first.body

    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            *args,
            "--no-collector.dns",
            "--output=json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 1, checked.stderr
    document = json.loads(checked.stdout)
    # the same document: the same keys, rows and verdicts (times and durations differ)
    assert served.keys() == document.keys()
    assert served["node"] == document["node"] == "json-node"
    assert served["exit_code"] == document["exit_code"] == 1
    assert served["summary"] == document["summary"]
    keep = ("area", "requirement", "verdict", "minimum", "minimum_value", "hint", "runbook_url")
    assert [{k: r[k] for k in keep} for r in served["rows"]] == [
        {k: r[k] for k in keep} for r in document["rows"]
    ]
    # the observed values too, but the fsync p99, which differs from run to run
    assert [r["observed"] for r in served["rows"] if r["requirement"] != "disk_latency"] == [
        r["observed"] for r in document["rows"] if r["requirement"] != "disk_latency"
    ]

    # thresholds as numbers beside the text
    rows = {r["requirement"]: r for r in served["rows"]}
    cores = requirements(Profile.TESTING)[Req.CPU_CORES].thresholds
    assert rows["cpu_cores"]["minimum"] == ">= 8 cores"
    assert rows["cpu_cores"]["minimum_value"] == cores[Level.MINIMUM]
    assert rows["cpu_cores"]["recommended_value"] == cores[Level.RECOMMENDED]
    assert rows["kvm"]["minimum_value"] == 1
    assert rows["storage_solid_state"]["minimum_value"] is None


def test_report_json_is_reserved_for_the_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--web.telemetry-path=/report.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "'/report.json' must start with / and not be" in done.stderr
