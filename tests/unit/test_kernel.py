"""The kernel check (modules, cgroup controllers, IOMMU) and the kvm check's backend module:
fixture trees of nodes this machine is not, and this machine itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import Config
from exporter.spec import Req, Role
from tests.checkrun import make, observed, run, values
from tests.fixtures import build, kernel

WORKER = Config(role=Role.WORKER)
SINGLE = Config(role=Role.SINGLE_NODE)


def tree_of(tmp_path: Path, files: kernel.Tree) -> Path:
    root = tmp_path / "node"
    for part in ("proc", "sys", "root", "dev"):
        (root / part).mkdir(parents=True, exist_ok=True)
    kernel.write(root, files)
    return root


def node(
    tmp_path: Path,
    loaded: list[str],
    *,
    builtin: tuple[str, ...] = (),
    installed: tuple[str, ...] = (),
    v2: bool = True,
    extra: kernel.Tree | None = None,
) -> Path:
    files: kernel.Tree = {
        "proc/misc": kernel.proc_misc(),
        "proc/cpuinfo": build.cpuinfo(2, 2, "fpu sse sse2 svm", "AMD EPYC"),
    }
    kernel.modules(files, loaded, builtin=builtin, installed=installed)
    if v2:
        kernel.cgroup_v2(files)
    else:
        kernel.cgroup_v1(files)
    files.update(extra or {})
    return tree_of(tmp_path, files)


def module_values(out, metric: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {labels[0]: v for (name, labels), v in values(out).items() if name == metric}


# --- modules ------------------------------------------------------------------------------


def test_every_module_loaded(tmp_path: Path) -> None:
    tree = node(tmp_path, ["kvm_amd", "kvm", "tun", "vhost_net", "openvswitch", "geneve"])
    out = run(make("kernel", tree, WORKER))
    loaded = module_values(out, "kubev_kernel_module_loaded")
    assert loaded == {
        "kvm": 1,
        "kvm_amd": 1,
        "tun": 1,
        "vhost_net": 1,
        "openvswitch": 1,
        "geneve": 1,
    }
    assert observed(out)["kernel_modules"] == 1


def test_missing_vhost_net_module(tmp_path: Path) -> None:
    """vhost_net neither loaded nor installed: the module reads 0 here, and the devices
    check fails the vhost_net requirement (no /dev/vhost-net); kernel_modules does not judge
    it a second time."""
    tree = node(tmp_path, ["kvm_intel", "kvm", "tun", "openvswitch", "geneve"])
    out = run(make("kernel", tree, WORKER))
    assert module_values(out, "kubev_kernel_module_loaded")["vhost_net"] == 0
    assert module_values(out, "kubev_kernel_module_available")["vhost_net"] == 0
    assert observed(out)["kernel_modules"] == 1
    devices = run(make("devices", tree, WORKER))
    assert observed(devices)["vhost_net"] == 0
    assert devices.notes_about(Req.VHOST_NET) == [
        f"{tree}/dev/vhost-net does not exist: modprobe vhost_net (the kernel then creates it)"
    ]


def test_installed_but_not_loaded_counts(tmp_path: Path) -> None:
    """Before Kube-OVN starts, openvswitch and geneve are only installed: OVS loads them."""
    tree = node(tmp_path, ["kvm_intel", "kvm"], installed=("openvswitch", "geneve", "vhost_net"))
    out = run(make("kernel", tree, WORKER))
    assert module_values(out, "kubev_kernel_module_loaded")["openvswitch"] == 0
    assert module_values(out, "kubev_kernel_module_available")["openvswitch"] == 1
    assert module_values(out, "kubev_kernel_module_available")["vhost_net"] == 1
    assert observed(out)["kernel_modules"] == 1


def test_openvswitch_nowhere(tmp_path: Path) -> None:
    tree = node(tmp_path, ["kvm_intel", "kvm", "geneve"], installed=("tun",))
    out = run(make("kernel", tree, WORKER))
    assert observed(out)["kernel_modules"] == 0
    assert out.notes_about(Req.KERNEL_MODULES) == [
        f"not loaded, built in or installed for kernel {kernel.RELEASE}: openvswitch "
        "(modprobe openvswitch)"
    ]


def test_built_in_modules(tmp_path: Path) -> None:
    """openvswitch built in (modules.builtin, no /sys/module entry: it has no parameters),
    tun built in and seen only as its driver in /proc/misc, and a kernel without loadable
    modules at all (no /proc/modules) whose kvm_pvm shows in /sys/module."""
    tree = node(tmp_path, [], builtin=("openvswitch",))
    (tree / "proc" / "modules").unlink()
    (tree / "root/lib/modules" / kernel.RELEASE / "modules.builtin").write_text(
        "kernel/net/openvswitch/openvswitch.ko\n"
    )
    kernel.write(tree, {"proc/misc": kernel.proc_misc(kernel.TUN)})
    kernel.write(tree, {"sys/module/kvm_pvm/parameters/x": "1\n", "sys/module/kvm/x": ""})
    out = run(make("kernel", tree, SINGLE))
    loaded = module_values(out, "kubev_kernel_module_loaded")
    assert loaded == {
        "kvm": 1,
        "kvm_pvm": 1,
        "tun": 1,
        "vhost_net": 0,
        "openvswitch": 1,
        "geneve": 0,
    }
    assert observed(out)["kernel_modules"] == 1  # a single node without a tunnel: no geneve
    kvm = run(make("kvm", tree))
    assert values(kvm)[("kubev_kvm_backend_info", ("kvm_pvm",))] == 1


@pytest.mark.parametrize("role", [Role.SINGLE_NODE, Role.WORKER])
def test_a_working_datapath_proves_its_modules(role: Role, tmp_path: Path) -> None:
    """Built in without a trace in /sys/module or modules.builtin: OVS's datapath device and
    its Geneve tunnel exist only while openvswitch and geneve work (a tunnel device also
    makes a single node use Geneve)."""
    extra = {
        "sys/class/net/ovs-system/mtu": "1500\n",
        "sys/class/net/genev_sys_6081/mtu": "65000\n",
    }
    out = run(make("kernel", node(tmp_path, ["kvm_intel", "kvm"], extra=extra), Config(role=role)))
    assert module_values(out, "kubev_kernel_module_loaded")["openvswitch"] == 1
    assert module_values(out, "kubev_kernel_module_loaded")["geneve"] == 1
    assert observed(out)["kernel_modules"] == 1


@pytest.mark.parametrize(
    ("role", "judged"),
    [
        (Role.SINGLE_NODE, False),  # one node, no tunnel (kube-ovn#3605)
        (Role.WORKER, True),  # multi-node: Kube-OVN's default tunnel is Geneve
        (Role.CONTROL_PLANE, True),
    ],
)
def test_geneve_is_judged_where_it_is_used(role: Role, judged: bool, tmp_path: Path) -> None:
    tree = node(tmp_path, ["kvm_intel", "kvm", "openvswitch"])
    out = run(make("kernel", tree, Config(role=role)))
    assert observed(out)["kernel_modules"] == (0 if judged else 1)
    assert module_values(out, "kubev_kernel_module_loaded")["geneve"] == 0  # always reported


def test_unreadable_sysfs_leaves_modules_unknown(tmp_path: Path) -> None:
    tree = tree_of(tmp_path, {"proc/modules": kernel.proc_modules("kvm")})
    out = run(make("kernel", tree, SINGLE))
    assert observed(out)["kernel_modules"] is None
    assert f"{tree}/sys/module cannot be listed: built-in modules unknown" in [
        n.text for n in out.notes
    ]


def test_garbled_proc_modules_is_an_error_of_that_item(tmp_path: Path) -> None:
    tree = node(tmp_path, ["kvm"], extra={"proc/modules": "kvm 16384 0 - Live 0x0\n\x00\x01\n"})
    out = run(make("kernel", tree, SINGLE))
    assert out.errors_about(Req.KERNEL_MODULES) == [
        f"{tree}/proc/modules: line 2 is not a module entry"
    ]
    assert observed(out)["kernel_modules"] is None
    assert observed(out)["cgroup_controllers"] == 1  # the cgroups still stand
    kvm = run(make("kvm", tree))
    assert [e.text for e in kvm.errors] == [f"{tree}/proc/modules: line 2 is not a module entry"]


# --- cgroups ------------------------------------------------------------------------------


def cgroup_values(out) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return module_values(out, "kubev_cgroup_controller_available")


def test_cgroup_v1_node(tmp_path: Path) -> None:
    tree = node(tmp_path, ["openvswitch"], v2=False)
    out = run(make("kernel", tree, SINGLE))
    assert values(out)[("kubev_cgroup_version", ())] == 1
    assert cgroup_values(out) == dict.fromkeys(
        ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"), 1
    )
    assert observed(out)["cgroup_controllers"] == 1


def test_cgroup_v1_node_without_cpuset_and_memory(tmp_path: Path) -> None:
    files: kernel.Tree = {}
    kernel.cgroup_v1(files, missing=("cpuset", "memory"))
    out = run(make("kernel", node(tmp_path, ["openvswitch"], v2=False, extra=files), SINGLE))
    assert cgroup_values(out)["cpuset"] == 0
    assert cgroup_values(out)["memory"] == 0
    assert cgroup_values(out)["blkio"] == 1
    assert observed(out)["cgroup_controllers"] == 0
    assert out.notes_about(Req.CGROUP_CONTROLLERS) == [
        "cgroup v1 lacks the cpuset, memory controllers"
    ]


def test_cgroup_v1_disabled_controller(tmp_path: Path) -> None:
    """cgroup_disable=memory on the kernel command line: listed, enabled 0."""
    files: kernel.Tree = {}
    kernel.cgroup_v1(files)
    files["proc/cgroups"] = re.sub(
        r"^memory\t(\d+)\t(\d+)\t1$", r"memory\t\1\t\2\t0", files["proc/cgroups"], flags=re.M
    )
    out = run(make("kernel", node(tmp_path, ["openvswitch"], v2=False, extra=files), SINGLE))
    assert cgroup_values(out)["memory"] == 0
    assert out.notes_about(Req.CGROUP_CONTROLLERS) == ["cgroup v1 lacks the memory controller"]


def test_cgroup_v2_node(tmp_path: Path) -> None:
    """v2 lists io (blkio to libvirt), no cpuacct (cpu.stat has it) and no devices (eBPF)."""
    out = run(make("kernel", node(tmp_path, ["openvswitch"]), SINGLE))
    assert values(out)[("kubev_cgroup_version", ())] == 2
    assert cgroup_values(out) == dict.fromkeys(
        ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"), 1
    )
    assert observed(out)["cgroup_controllers"] == 1


def test_cgroup_v2_node_without_cpuset(tmp_path: Path) -> None:
    files: kernel.Tree = {}
    kernel.cgroup_v2(files, controllers=("cpu", "memory", "pids"))
    out = run(make("kernel", node(tmp_path, ["openvswitch"], extra=files), SINGLE))
    assert cgroup_values(out)["cpuset"] == 0
    assert cgroup_values(out)["blkio"] == 0  # no io either
    assert cgroup_values(out)["cpuacct"] == 1
    assert out.notes_about(Req.CGROUP_CONTROLLERS) == ["cgroup v2 lacks the cpuset controller"]


def test_garbled_proc_cgroups(tmp_path: Path) -> None:
    files = {"proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu 1 lots\n"}
    tree = node(tmp_path, ["openvswitch"], v2=False, extra=files)
    out = run(make("kernel", tree, SINGLE))
    assert out.errors_about(Req.CGROUP_CONTROLLERS) == [
        f"{tree}/proc/cgroups: line 2 is not '<name> <hierarchy> <cgroups> <on>'"
    ]
    assert observed(out)["kernel_modules"] == 1  # the modules still stand


# --- IOMMU --------------------------------------------------------------------------------


def test_iommu(tmp_path: Path) -> None:
    extra = {
        "sys/kernel/iommu_groups/0/type": "DMA\n",
        "sys/kernel/iommu_groups/1/type": "identity\n",
        "sys/firmware/acpi/tables/IVRS": "IVRS\n",
    }
    v = values(run(make("kernel", node(tmp_path, ["openvswitch"], extra=extra), SINGLE)))
    assert v[("kubev_iommu_groups", ())] == 2
    assert v[("kubev_iommu_firmware_table_present", ("IVRS",))] == 1
    assert v[("kubev_iommu_firmware_table_present", ("DMAR",))] == 0


def test_no_iommu(tmp_path: Path) -> None:
    v = values(run(make("kernel", node(tmp_path, ["openvswitch"]), SINGLE)))
    assert v[("kubev_iommu_groups", ())] == 0
    assert v[("kubev_iommu_firmware_table_present", ("DMAR",))] == 0


# --- this machine -------------------------------------------------------------------------

HOST_PVM = Path("/sys/module/kvm_pvm").is_dir()


@pytest.mark.skipif(not HOST_PVM, reason="this machine's KVM backend is not kvm_pvm")
def test_this_host_reports_its_kvm_pvm_backend_and_keeps_the_flag_verdict() -> None:
    """This machine: /dev/kvm works through kvm_pvm, without a vmx/svm flag. The backend is
    reported; the virtualization_extensions verdict stays what the spec says (the flag)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    has_flag = bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", cpuinfo, re.M))
    out = run(make("kvm"))
    v = values(out)
    assert v[("kubev_kvm_backend_info", ("kvm_pvm",))] == 1
    assert observed(out)["virtualization_extensions"] == float(has_flag)
    kernel_out = run(make("kernel"))
    assert module_values(kernel_out, "kubev_kernel_module_loaded")["kvm_pvm"] == 1


def mounted_v1_controllers() -> set[str] | None:
    """An oracle apart from /proc/cgroups: the options of the cgroup (v1) mounts."""
    found: set[str] = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2" and fields[1] == "/sys/fs/cgroup":
            return None  # a unified node
        if fields[2] == "cgroup":
            found.update(fields[3].split(","))
    return found


def test_this_host_cgroup_controllers() -> None:
    mounted = mounted_v1_controllers()
    out = run(make("kernel"))
    if mounted is None:
        assert values(out)[("kubev_cgroup_version", ())] == 2
        return
    assert values(out)[("kubev_cgroup_version", ())] == 1
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"):
        expected = float(controller in mounted)
        assert cgroup_values(out)[controller] == expected, controller
    required = {"cpu", "cpuset", "memory", "devices"}
    assert observed(out)["cgroup_controllers"] == float(required <= mounted)


def test_this_host_tun_module_is_seen_built_in_or_loaded() -> None:
    """The tun driver registered in /proc/misc counts as loaded even where it is built in
    without a /sys/module entry (this machine)."""
    misc = Path("/proc/misc").read_text().split()
    out = run(make("kernel"))
    assert module_values(out, "kubev_kernel_module_loaded")["tun"] == float("tun" in misc)
