"""The VM-device, kernel and CPU-baseline checks on this machine itself, through the real
command and the real server: no fixture tree, the host's own /dev, /proc and /sys.

This development machine has /dev/net/tun but no /dev/vhost-net, runs KVM through the
paravirtual kvm_pvm backend without a vmx/svm flag, and has an x86-64-v3 CPU. Each test
states the host fact it needs and is skipped on a machine without it; the facts are read
here apart from the exporter (stat, /sys/module, glibc's loader).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, running, value


def is_char_device(path: str, major: int, minor: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (
        stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor
    )


def glibc_supports_x86_64_v2() -> bool:
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if not loader.exists():
        return False
    text = subprocess.run([loader, "--help"], capture_output=True, text=True, check=False).stdout
    return "x86-64-v2 (supported" in text


HOST_TUN = is_char_device("/dev/net/tun", 10, 200)
HOST_VHOST_NET = os.path.lexists("/dev/vhost-net")
HOST_PVM = Path("/sys/module/kvm_pvm").is_dir()
HOST_V2 = glibc_supports_x86_64_v2()
HOST_VMX_OR_SVM = bool(
    re.search(r"^flags\s*:.*\b(vmx|svm)\b", Path("/proc/cpuinfo").read_text(), re.M)
)
#: only the checks these tests are about (no probes, no fsync on this machine's disk)
OTHERS_OFF = [
    "--no-collector.kernel",
    "--no-collector.disk",
    "--no-collector.network",
    "--no-collector.ports",
    "--no-collector.ovn",
    "--no-collector.dns",
]


@pytest.mark.root
@pytest.mark.skipif(
    not HOST_TUN or HOST_VHOST_NET or not HOST_V2,
    reason="needs a host with /dev/net/tun, without /dev/vhost-net, with an x86-64-v2 CPU",
)
def test_check_on_this_host_shows_tun_and_the_missing_vhost_net() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--output=json", *OTHERS_OFF],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # vhost_net is a minimum
    rows = {r["requirement"]: r for r in json.loads(done.stdout)["rows"]}
    assert rows["tun"]["verdict"] == "PASS"
    assert rows["tun"]["detail"] == ""  # root opened it: nothing to say
    vhost = rows["vhost_net"]
    assert vhost["verdict"] == "FAIL"
    assert (
        vhost["detail"]
        == "/dev/vhost-net does not exist: modprobe vhost_net (the kernel then creates it)"
    )
    assert "modprobe vhost_net" in vhost["hint"]
    assert vhost["runbook_url"].endswith("/KubevVhostNetDeviceMissing.md")
    assert rows["cpu_baseline"]["verdict"] == "PASS"

    table = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *OTHERS_OFF],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert re.search(r"^  PASS +TUN device \(/dev/net/tun\) +yes ", table.stdout, re.M)
    assert re.search(r"^  FAIL +vhost-net device \(/dev/vhost-net\) +no ", table.stdout, re.M)
    assert re.search(r"^ +-> Load the vhost_net module \(modprobe vhost_net\)", table.stdout, re.M)


@pytest.mark.root
@pytest.mark.skipif(not HOST_PVM, reason="needs a host whose KVM backend is kvm_pvm")
def test_served_metrics_report_the_kvm_pvm_backend_beside_the_flag_verdict() -> None:
    with running([*OTHERS_OFF, "--profile=production"]) as exporter:
        text = exporter.metrics()
    assert value(text, "kubev_kvm_backend_info", module="kvm_pvm") == 1
    assert value(text, "kubev_kvm_usable") == 1
    # the verdict stays the spec's: the vmx/svm flag, whatever the backend
    flag = float(HOST_VMX_OR_SVM)
    assert value(text, "kubev_cpu_virtualization_extensions_present") == flag
    met = value(
        text, "kubev_requirement_met", requirement="virtualization_extensions", level="minimum"
    )
    assert met == flag
    assert value(text, "kubev_requirement_met", requirement="kvm", level="minimum") == 1
    assert value(text, "kubev_vm_device_present", device="tun") == float(HOST_TUN)
    assert value(text, "kubev_vm_device_present", device="vhost-net") == float(HOST_VHOST_NET)
