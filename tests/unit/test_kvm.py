"""The kvm check: this machine's real /dev/kvm, device nodes made by the test, flags."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.checks.cpuinfo import parse_cpuinfo
from exporter.checks.kvm import probe_kvm
from exporter.spec import Req
from tests.checkrun import make, observed, run, values
from tests.helpers import ROOT, NodeTree, make_node_tree

#: the exporter opens /dev/kvm read-write (root, the kvm group, or KubeVirt's device plugin)
KVM_USABLE = os.access("/dev/kvm", os.R_OK | os.W_OK)
needs_kvm = pytest.mark.skipif(
    not KVM_USABLE, reason="no /dev/kvm on this machine that this user may open read-write"
)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@needs_kvm
def test_real_dev_kvm_is_usable_and_closes_every_fd() -> None:
    before = open_fds()
    probe = probe_kvm("/dev/kvm")
    assert open_fds() == before
    assert probe.usable, probe.reason
    assert probe.api_version == 12
    assert probe.max_vcpus is not None and probe.max_vcpus >= 1


@needs_kvm
def test_real_host_reports_flag_and_device_as_separate_facts() -> None:
    text = Path("/proc/cpuinfo").read_text()
    flags = next(line for line in text.splitlines() if line.startswith("flags")).split()
    out = run(make("kvm"))
    v = values(out)
    assert v[("kubev_kvm_usable", ())] == 1
    assert v[("kubev_cpu_virtualization_extensions_present", ())] == float(
        "vmx" in flags or "svm" in flags
    )
    assert v[("kubev_host_is_virtual_machine", ())] == float("hypervisor" in flags)
    assert observed(out)["kvm"] == 1


@pytest.mark.root
@needs_kvm
def test_compliant_node_with_a_kvm_device_node(node_tree: NodeTree) -> None:
    out = run(make("kvm", node_tree("compliant")))
    v = values(out)
    assert v[("kubev_kvm_device_present", ())] == 1
    assert v[("kubev_kvm_usable", ())] == 1
    assert v[("kubev_cpu_virtualization_extensions_present", ())] == 1
    assert v[("kubev_kvm_nested_enabled", ())] == 1
    assert v[("kubev_host_is_virtual_machine", ())] == 0


def test_missing_device(node_tree: NodeTree) -> None:
    out = run(make("kvm", node_tree("undersized")))
    v = values(out)
    assert v[("kubev_kvm_device_present", ())] == 0
    assert v[("kubev_kvm_usable", ())] == 0
    assert ("kubev_kvm_api_version", ()) not in v
    assert any("does not exist" in n for n in [n.text for n in out.notes])
    assert observed(out) == {"virtualization_extensions": 0, "kvm": 0}


def test_regular_file_is_not_a_device(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    (tree / "dev" / "kvm").write_text("x")
    out = run(make("kvm", tree))
    assert values(out)[("kubev_kvm_device_present", ())] == 0
    assert any("not a character device" in n for n in [n.text for n in out.notes])


@pytest.mark.root
def test_wrong_character_device(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    os.mknod(tree / "dev" / "kvm", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    out = run(make("kvm", tree))
    assert values(out)[("kubev_kvm_device_present", ())] == 0
    assert any("is device 1:3, not KVM's 10:232" in n for n in [n.text for n in out.notes])


def test_truncated_cpuinfo_leaves_flags_unknown(node_tree: NodeTree) -> None:
    out = run(make("kvm", node_tree("broken")))
    v = values(out)
    assert ("kubev_cpu_virtualization_extensions_present", ()) not in v
    assert observed(out)["virtualization_extensions"] is None
    assert any("no flags line" in n for n in [n.text for n in out.notes])


def test_parse_cpuinfo_flags() -> None:
    amd = parse_cpuinfo(
        "processor : 0\nflags : fpu svm lm\n\nprocessor : 1\nflags : fpu svm\n", "x"
    )
    assert amd.logical == 2 and amd.flags is not None and "svm" in amd.flags
    assert amd.physical is None  # no physical id / core id lines


@pytest.mark.root
def test_a_kvm_device_this_process_may_not_open_leaves_kvm_unknown() -> None:
    """The pod case: /dev/kvm is the KVM device, the open is refused for permission only.
    Run as nobody against root's 0600 node: a real EACCES. Present, not usable, and the
    requirement unknown rather than failed, with a note that says why."""
    shared = Path("/dev/shm") / f"kubev-kvm-{os.getpid()}"
    shared.mkdir(mode=0o755)
    try:
        tree = make_node_tree("compliant", shared)
        for path in [shared, tree, *tree.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        device = tree / "dev" / "kvm"
        assert stat.S_IMODE(device.stat().st_mode) == 0o600 and device.stat().st_uid == 0
        script = (
            "import json, sys; from pathlib import Path;"
            "from tests.checkrun import make, run, values, observed;"
            "out = run(make('kvm', Path(sys.argv[1])));"
            "v = values(out);"
            "print(json.dumps({'observed': observed(out),"
            "'notes': out.notes_about(Req.KVM),"
            "'present': v[('kubev_kvm_device_present', ())],"
            "'usable': v[('kubev_kvm_usable', ())]}))"
        )
        done = subprocess.run(
            [*NOBODY, sys.executable, "-c", "from exporter.spec import Req;" + script, str(tree)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["observed"]["kvm"] is None  # unknown: neither met nor failed
    assert result["present"] == 1
    assert result["usable"] == 0
    assert result["notes"] == [
        f"{tree}/dev/kvm is present; this process may not open it (Permission denied): "
        "expected in a pod without devices.kubevirt.io/kvm; whether it creates a VM is "
        "unknown (root or the kvm group probe it fully)"
    ]


def test_a_missing_device_still_fails_kvm_rather_than_leaving_it_unknown(
    node_tree: NodeTree,
) -> None:
    """Only a refused open of the right device is unknown: a node without /dev/kvm fails."""
    out = run(make("kvm", node_tree("undersized")))
    assert observed(out)["kvm"] == 0
    assert not [n for n in out.notes_about(Req.KVM) if "may not open" in n]
