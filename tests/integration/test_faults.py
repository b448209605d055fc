"""Faults on the real process: a hung read, EACCES, files that vanish. One check suffers;
everything else keeps serving."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tests.helpers import fixture_args, needs_root, node_tree, running, value

FAST = """\
node_name: faulty
checks:
  kvm: {interval: 1s, timeout: 500ms}
  compute: {interval: 1s, timeout: 300ms}
  disk: {interval: 1s, timeout: 900ms, fsync_samples: 1}
  network: {interval: 500ms, timeout: 400ms}
"""


def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


@needs_root
def test_a_hung_read_costs_one_check_one_timeout(tmp_path: Path) -> None:
    tree = node_tree("compliant", tmp_path)
    meminfo = tree / "proc" / "meminfo"
    meminfo.unlink()
    os.mkfifo(meminfo)  # open() blocks forever: no writer ever comes
    config = tmp_path / "c.yaml"
    config.write_text(FAST)
    with running(fixture_args(tree, config)) as exporter:
        text = exporter.metrics()
        # every scrape answers while compute is stuck (urllib gives up after 5 s otherwise)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            text = exporter.metrics()
        assert value(text, "kubev_check_success", check="compute") == 0
        assert value(text, "kubev_check_runs_total", check="compute", result="timeout") == 1
        # later cycles refuse to stack threads on the stuck read
        assert value(text, "kubev_check_runs_total", check="compute", result="failure") >= 1
        for other in ("kvm", "disk", "network"):
            assert value(text, "kubev_check_success", check=other) == 1
            assert value(text, "kubev_check_runs_total", check=other, result="success") >= 2
        assert value(text, "kubev_cpu_logical_cores") is None  # compute's values are dropped
        assert value(text, "kubev_network_speed_bytes", interface="eno1") == 1.25e9
        threads = len(os.listdir(f"/proc/{exporter.proc.pid}/task"))
        assert threads < 8, f"{threads} threads: blocked reads are piling up"
    # SIGTERM ends the process cleanly although a thread is still stuck in open()
    assert exporter.proc.returncode == 0
    log = exporter.stderr
    assert 'msg="check failed" check=compute err="timed out after 0.3s"' in log
    assert 'err="an earlier run is still blocked in ComputeCheck.collect' in log
    assert log.count("check=compute err=") == 2  # once per change, not once per cycle


@needs_root
def test_permission_denied(tmp_path: Path) -> None:
    """Root without CAP_DAC_OVERRIDE, as in a container that drops it: mode 000 files."""
    tree = node_tree("compliant", tmp_path)
    (tree / "dev" / "kvm").chmod(0)
    (tree / "proc" / "diskstats").chmod(0)
    config = tmp_path / "c.yaml"
    config.write_text(FAST)
    drop = [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-dac_override,-dac_read_search",
        "--",
    ]
    with running(fixture_args(tree, config), wrap=drop) as exporter:
        text = exporter.metrics()
    assert value(text, "kubev_kvm_device_present") == 1
    assert value(text, "kubev_kvm_usable") == 0
    assert value(text, "kubev_check_success", check="kvm") == 1
    assert value(text, "kubev_check_success", check="disk") == 0
    assert value(text, "kubev_check_success", check="compute") == 1
    assert f"cannot open {tree}/dev/kvm: Permission denied" in exporter.stderr
    assert f'err="{tree}/proc/diskstats: permission denied"' in exporter.stderr


@needs_root
def test_files_that_vanish_and_return(tmp_path: Path) -> None:
    tree = node_tree("compliant", tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(FAST)
    saved = tmp_path / "saved-eno1"
    with running(fixture_args(tree, config)) as exporter:
        assert value(exporter.metrics(), "kubev_network_up", interface="eno1") == 1
        shutil.move(tree / "sys" / "class" / "net" / "eno1", saved)
        wait_for(lambda: value(exporter.metrics(), "kubev_network_up", interface="eno1") is None)
        text = exporter.metrics()
        assert value(text, "kubev_check_success", check="network") == 1
        assert value(text, "kubev_network_up", interface="eno2") == 0
        # the only link left up reports no speed: the verdict becomes unknown, not "failed"
        assert (
            value(text, "kubev_requirement_met", requirement="nic_speed", level="minimum") is None
        )
        shutil.move(saved, tree / "sys" / "class" / "net" / "eno1")
        wait_for(lambda: value(exporter.metrics(), "kubev_network_up", interface="eno1") == 1)
