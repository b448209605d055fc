"""A check whose one file is broken: the facts it could read are still served, the run
counts as failed (kubev_check_success 0, the error logged once), and the requirement
that needed the broken file reads ERROR in the report, naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.cli import build_checks
from exporter.config import Config
from exporter.exposition import Exposition, Identity
from exporter.report import model
from exporter.runtime import Runtime
from exporter.verdicts import Outcome
from tests.checkrun import tree_paths
from tests.helpers import make_node_tree, samples


async def test_partial_output_is_served_and_fails_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = make_node_tree("undersized", tmp_path)
    (tree / "proc" / "meminfo").write_text("MemTotal: lots\n")
    config = Config(node_name="n1")
    for name in ("kvm", "devices", "kernel", "disk", "network", "ports", "ovn", "dns"):
        config = config.with_check(name, enabled=False)
    runtime = Runtime(config, build_checks(config, tree_paths(tree)))
    with caplog.at_level(logging.INFO):
        await runtime.run_once(runtime.checks[0])
        await runtime.run_once(runtime.checks[0])
    state = runtime.snapshot.states["compute"]
    assert not state.success and state.runs["failure"] == 2
    assert state.error == f"{tree}/proc/meminfo: no MemTotal line"
    assert [r.message for r in caplog.records].count("check failed") == 1

    body, _ = Exposition(Identity.of(config)).render(runtime.snapshot, "", gzipped=False)
    got = samples(body.decode())
    assert got[("kubev_check_success", (("check", "compute"),))] == 0
    assert got[("kubev_cpu_logical_cores", ())] == 4
    assert ("kubev_memory_total_bytes", ()) not in got

    rows = {r.requirement: r for r in model.build(runtime.snapshot, config).rows}
    assert rows["memory"].verdict is Outcome.ERROR
    assert rows["memory"].detail == f"{tree}/proc/meminfo: no MemTotal line"
    assert rows["cpu_cores"].verdict is Outcome.FAIL  # 4 cores, judged despite meminfo
    # what the fleet report reads through Prometheus: the ERROR row, and only that one
    errors = {labels: v for (name, labels), v in got.items() if name == "kubev_requirement_error"}
    assert errors == {(("requirement", "memory"),): 1}
