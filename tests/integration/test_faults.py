"""Faults on the real process: a hung read, EACCES, files that vanish. One check suffers;
everything else keeps serving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import NodeTree, fixture_args, running, value

#: compute's first read hangs for good: its timeout is short to keep the test short (it
#: fires whatever the machine's load). The others run every 2 s (their threads run at
#: nice 10: on a busy machine a run can take a second or more).
HUNG_COMPUTE = """\
node_name: faulty
checks:
  kvm: {interval: 2s}
  compute: {interval: 1s, timeout: 300ms}
  disk: {interval: 2s, fsync_samples: 1}
  network: {interval: 2s}
"""
#: one run of each host check, with room for a busy machine
ONE_RUN = """\
node_name: faulty
checks:
  kvm: {interval: 1h, timeout: 1m}
  compute: {interval: 1h, timeout: 1m}
  disk: {interval: 1h, timeout: 1m, fsync_samples: 1}
  network: {interval: 1h, timeout: 1m}
"""
#: the network check often, to see a link go and come back
NETWORK_OFTEN = ONE_RUN.replace("network: {interval: 1h, timeout: 1m}", "network: {interval: 1s}")
OTHERS = ("kvm", "disk", "network")


def runs(text: str, check: str, result: str) -> float:
    return value(text, "kubev_check_runs_total", check=check, result=result) or 0


@pytest.mark.root
@pytest.mark.slow
def test_a_hung_read_costs_one_check_one_timeout(node_tree: NodeTree, tmp_path: Path) -> None:
    tree = node_tree("compliant")
    meminfo = tree / "proc" / "meminfo"
    meminfo.unlink()
    os.mkfifo(meminfo)  # open() blocks forever: no writer ever comes
    config = tmp_path / "c.yaml"
    config.write_text(HUNG_COMPUTE)
    with running(fixture_args(tree, config)) as exporter:
        # every scrape answers while compute is stuck (urllib gives up after 5 s otherwise),
        # until compute has run again and each other check has succeeded again
        text = exporter.wait_for(
            lambda t: (
                runs(t, "compute", "failure") >= 1
                and all(
                    runs(t, other, "success") >= 2
                    and value(t, "kubev_check_success", check=other) == 1
                    for other in OTHERS
                )
            ),
            "a second cycle of every check",
        )
        assert value(text, "kubev_check_success", check="compute") == 0
        assert value(text, "kubev_check_runs_total", check="compute", result="timeout") == 1
        # later cycles refuse to stack threads on the stuck read
        assert runs(text, "compute", "failure") >= 1
        for other in OTHERS:
            assert value(text, "kubev_check_success", check=other) == 1
            assert runs(text, other, "success") >= 2
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


@pytest.mark.root
def test_permission_denied(node_tree: NodeTree, tmp_path: Path) -> None:
    """Root without CAP_DAC_OVERRIDE, as in a container that drops it: mode 000 files."""
    tree = node_tree("compliant")
    (tree / "dev" / "kvm").chmod(0)
    (tree / "proc" / "diskstats").chmod(0)
    config = tmp_path / "c.yaml"
    config.write_text(ONE_RUN)
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
    # present, refused for permission only: the KVM requirement is unknown, not failed
    assert value(text, "kubev_requirement_met", requirement="kvm", level="minimum") is None
    assert (
        f"{tree}/dev/kvm is present; this process may not open it (Permission denied)"
        in exporter.stderr
    )
    assert f'err="{tree}/proc/diskstats: permission denied"' in exporter.stderr


@pytest.mark.root
def test_files_that_vanish_and_return(node_tree: NodeTree, tmp_path: Path) -> None:
    tree = node_tree("compliant")
    config = tmp_path / "c.yaml"
    config.write_text(NETWORK_OFTEN)
    saved = tmp_path / "saved-eno1"
    with running(fixture_args(tree, config)) as exporter:
        exporter.wait_for(lambda t: value(t, "kubev_network_up", interface="eno1") == 1, "eno1 up")
        shutil.move(tree / "sys" / "class" / "net" / "eno1", saved)
        # a successful run without eno1 (a run that timed out would drop it too)
        text = exporter.wait_for(
            lambda t: (
                value(t, "kubev_check_success", check="network") == 1
                and value(t, "kubev_network_up", interface="eno1") is None
            ),
            "a network run without eno1",
        )
        assert value(text, "kubev_check_success", check="network") == 1
        assert value(text, "kubev_network_up", interface="eno2") == 0
        # the only link left up reports no speed: the verdict becomes unknown, not "failed"
        assert (
            value(text, "kubev_requirement_met", requirement="nic_speed", level="minimum") is None
        )
        shutil.move(saved, tree / "sys" / "class" / "net" / "eno1")
        exporter.wait_for(
            lambda t: value(t, "kubev_network_up", interface="eno1") == 1, "eno1 back up"
        )
