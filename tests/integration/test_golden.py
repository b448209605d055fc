"""End to end: the real process on each fixture node, /metrics diffed against a golden file.

Samples that depend on this machine or on time (durations, timestamps, fsync timings,
filesystem sizes of the test directory, the kernel's vCPU limit) are masked. To accept a
deliberate change: UPDATE_GOLDEN=1 pytest tests/integration/test_golden.py
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    SHAPE_PROFILES,
    NodeTree,
    fixture_args,
    network_namespace,
    only,
    running,
    value,
)

GOLDEN = ROOT / "tests" / "golden"
MASKED = {
    "kubev_check_duration_seconds",
    "kubev_check_last_success_timestamp_seconds",
    "kubev_storage_fsync_latency_seconds_bucket",
    "kubev_storage_fsync_latency_seconds_sum",
    "kubev_storage_fsync_p99_seconds",
    "kubev_filesystem_avail_bytes",
    "kubev_filesystem_size_bytes",
    "kubev_kvm_max_vcpus",
    # the compliant node's /dev/vhost-net (10:238) opens only where this machine's kernel
    # has the vhost-net driver
    "kubev_vm_device_opened",
    "kubev_port_connect_duration_seconds",
    "kubev_ovn_endpoint_response_seconds",
    "kubev_dns_resolution_duration_seconds",
    "kubev_exporter_event_loop_lag_seconds_bucket",
    "kubev_exporter_event_loop_lag_seconds_sum",
    # the process's own figures differ on every run
    "process_cpu_seconds_total",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
    "kubev_exporter_event_loop_lag_seconds_count",
}
#: fsync timing of the test machine decides these verdicts, not the fixture
MASKED_REQUIREMENTS = ('requirement="disk_latency"',)

# One run of every check: the scrape sees exactly the first results (timeouts with room
# for a busy machine). The process runs in a network namespace of its own: no listener
# but its own, no route, so the ports and OVN checks see the same closed node every time,
# and the probes target 127.0.0.1.
CONFIG = """\
node_name: fixture-node
profile: {profile}
checks:
  kvm: {{interval: 1h, timeout: 1m}}
  compute: {{interval: 1h, timeout: 1m}}
  disk: {{interval: 1h, timeout: 1m, fsync_samples: 3}}
  network: {{interval: 1h, timeout: 1m}}
  ports: {{interval: 1h, timeout: 1m, connect_timeout: 500ms}}
  ovn: {{interval: 1h, timeout: 1m}}
  dns: {{interval: 1h, timeout: 1m, names: [localhost]}}
"""


def normalize(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            masked = name in MASKED or (
                name in ("kubev_requirement_met", "kubev_requirement_observed")
                and any(m in line for m in MASKED_REQUIREMENTS)
            )
            if masked:
                line = line.rsplit(" ", 1)[0] + " <masked>"
            if name == "kubev_exporter_build_info":
                line = re.sub(r'="[^"]*"', '="<masked>"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def scrape_shape(shape: str, tree: Path, tmp_path: Path) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(profile=SHAPE_PROFILES[shape]))
    with (
        network_namespace() as ns,
        running(fixture_args(tree, config), netns=ns, dns=True, env={"NODE_IP": ""}) as exporter,
    ):
        return exporter.metrics()


@pytest.mark.root
@pytest.mark.parametrize("shape", sorted(SHAPE_PROFILES))
def test_metrics_match_golden(shape: str, node_tree: NodeTree, tmp_path: Path) -> None:
    raw = scrape_shape(shape, node_tree(shape), tmp_path)
    got = normalize(raw)
    golden = GOLDEN / f"{shape}.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(got)
    assert golden.exists(), f"no golden file {golden}; run with UPDATE_GOLDEN=1"
    assert got == golden.read_text()

    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=raw, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == "", f"promtool lint findings:\n{lint.stdout}"


def test_escaped_label_values_pass_promtool(node_tree: NodeTree) -> None:
    """Interface names are data from the node: quotes and backslashes in one (sysfs allows
    them) are escaped so that promtool reads the scrape as valid exposition."""
    tree = node_tree("compliant", kvm_device=False)
    weird = 'we"ird\\name'
    (tree / "sys" / "class" / "net" / "eno1").rename(tree / "sys" / "class" / "net" / weird)
    with running([*fixture_args(tree), *only("network")]) as exporter:
        raw = exporter.metrics()
    assert value(raw, "kubev_network_up", interface=weird) == 1
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=raw, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
