"""The x86-64-v2 baseline (compute check): fixture CPUs, and this machine judged against
glibc's own answer (`ld.so --help` lists the x86-64-vN levels it finds supported)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from exporter.spec import Req
from tests.checkrun import make, observed, run, values
from tests.fixtures import build, kernel

BASE = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat sse sse2 syscall nx lm"
V2 = " ".join(kernel.X86_64_V2)
V3 = " ".join(kernel.X86_64_V3)


def cpu_node(tmp_path: Path, flags: str) -> Path:
    root = tmp_path / "node"
    kernel.write(
        root,
        {
            "proc/cpuinfo": build.cpuinfo(4, 4, flags, "Some CPU"),
            "proc/stat": build.proc_stat(4),
            "proc/meminfo": build.meminfo(16_000_000, 8_000_000),
        },
    )
    return root


@pytest.mark.parametrize(
    ("flags", "level"),
    [(f"{BASE} {V2}", 2), (f"{BASE} {V2} {V3}", 3), (f"{BASE} {V3}", 1)],
)
def test_a_cpu_with_the_baseline(flags: str, level: int, tmp_path: Path) -> None:
    out = run(make("compute", cpu_node(tmp_path, flags)))
    assert values(out)[("kubev_cpu_x86_64_level", ())] == level
    assert observed(out)["cpu_baseline"] == (1 if level >= 2 else 0)


def test_a_cpu_without_sse4_2(tmp_path: Path) -> None:
    flags = f"{BASE} {V2}".replace(" sse4_2", "")
    out = run(make("compute", cpu_node(tmp_path, flags)))
    assert observed(out)["cpu_baseline"] == 0
    assert values(out)[("kubev_cpu_x86_64_level", ())] == 1
    assert out.notes_about(Req.CPU_BASELINE) == ["missing x86-64-v2 flags: sse4_2"]


def test_a_vm_with_a_kvm64_cpu_model(tmp_path: Path) -> None:
    """QEMU's kvm64 model: SSE2 and no further (CDI#2652; virt-handler's init container
    then dies with "Fatal glibc error: CPU does not support x86-64-v2")."""
    out = run(make("compute", cpu_node(tmp_path, f"{BASE} hypervisor")))
    assert out.notes_about(Req.CPU_BASELINE) == [
        "missing x86-64-v2 flags: cx16 lahf_lm popcnt pni ssse3 sse4_1 sse4_2 "
        "(this host is a VM: its CPU model hides them)"
    ]


def test_no_flags_line_leaves_it_unknown(tmp_path: Path) -> None:
    root = cpu_node(tmp_path, "x")
    (root / "proc" / "cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    out = run(make("compute", root))
    assert observed(out)["cpu_baseline"] is None
    assert ("kubev_cpu_x86_64_level", ()) not in values(out)


def glibc_levels() -> set[int] | None:
    """The x86-64-vN levels this machine's glibc says are supported, or None."""
    for loader in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"):
        if Path(loader).exists():
            text = subprocess.run(
                [loader, "--help"], capture_output=True, text=True, check=False
            ).stdout
            return {int(n) for n in re.findall(r"x86-64-v(\d) \(supported", text)}
    return None


GLIBC = glibc_levels()


@pytest.mark.skipif(not GLIBC, reason="no x86-64 glibc loader that lists its levels")
def test_this_host_against_glibc() -> None:
    assert GLIBC is not None
    out = run(make("compute"))
    assert observed(out)["cpu_baseline"] == float(2 in GLIBC)
    assert values(out)[("kubev_cpu_x86_64_level", ())] == max(GLIBC | {1})
