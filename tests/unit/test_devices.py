"""The devices check: /dev/net/tun and /dev/vhost-net as character devices this machine's
kernel answers (made with mknod at test time), and KubeVirt's device-plugin sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import Config
from exporter.spec import Req
from tests.checkrun import make, observed, run, values
from tests.fixtures import kernel
from tests.helpers import ROOT, make_node_tree

HOST_MISC = Path("/proc/misc").read_text() if Path("/proc/misc").exists() else ""
HOST_HAS_VHOST_NET_DRIVER = any(
    line.split()[1:] == ["vhost-net"] for line in HOST_MISC.splitlines()
)
HOST_HAS_TUN_DRIVER = any(line.split()[1:] == ["tun"] for line in HOST_MISC.splitlines())
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_tun = pytest.mark.skipif(not HOST_HAS_TUN_DRIVER, reason="this machine has no tun driver")


def bare_tree(tmp_path: Path, files: kernel.Tree | None = None) -> Path:
    """A node with nothing but `files`: no devices, no kubelet."""
    root = tmp_path / "node"
    for part in ("proc", "sys", "root", "dev"):
        (root / part).mkdir(parents=True, exist_ok=True)
    kernel.write(root, files or {})
    return root


def notes(out) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.text for n in out.notes]


def test_node_without_either_device(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path, {"proc/misc": kernel.proc_misc()})
    out = run(make("devices", tree))
    v = values(out)
    assert v[("kubev_vm_device_present", ("tun",))] == 0
    assert v[("kubev_vm_device_present", ("vhost-net",))] == 0
    assert v[("kubev_vm_device_driver_registered", ("tun",))] == 0
    assert ("kubev_vm_device_opened", ("tun",)) not in v
    assert observed(out) == {"tun": 0, "vhost_net": 0}
    assert out.notes_about(Req.TUN) == [
        f"{tree}/dev/net/tun does not exist: modprobe tun (the kernel then creates it)"
    ]
    assert out.notes_about(Req.VHOST_NET) == [
        f"{tree}/dev/vhost-net does not exist: modprobe vhost_net (the kernel then creates it)"
    ]


@pytest.mark.root
@needs_tun
def test_compliant_node_has_both_devices_and_the_plugins(tmp_path: Path) -> None:
    out = run(make("devices", make_node_tree("compliant", tmp_path)))
    v = values(out)
    assert v[("kubev_vm_device_present", ("tun",))] == 1
    assert v[("kubev_vm_device_opened", ("tun",))] == 1  # this machine's tun driver answered
    assert v[("kubev_vm_device_present", ("vhost-net",))] == 1
    assert v[("kubev_vm_device_driver_registered", ("vhost-net",))] == 1
    assert observed(out) == {"tun": 1, "vhost_net": 1}
    for name in ("kvm", "tun", "vhost-net"):
        assert v[("kubev_kubevirt_device_plugin_socket_present", (f"devices.kubevirt.io/{name}",))]


@pytest.mark.root
@pytest.mark.parametrize("missing", ["tun", "vhost_net"])
def test_a_node_missing_one_device(missing: str, tmp_path: Path) -> None:
    tree = make_node_tree("compliant", tmp_path)
    path = {"tun": "dev/net/tun", "vhost_net": "dev/vhost-net"}[missing]
    (tree / path).unlink()
    out = run(make("devices", tree))
    other = "vhost_net" if missing == "tun" else "tun"
    assert observed(out)[missing] == 0
    assert observed(out)[other] == 1
    module = {"tun": "tun", "vhost_net": "vhost_net"}[missing]
    assert out.notes_about(Req(missing)) == [
        f"{tree}/{path} does not exist: modprobe {module} (the kernel then creates it)"
    ]


@pytest.mark.root
def test_a_device_of_the_wrong_numbers(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path, {"proc/misc": kernel.proc_misc(kernel.TUN, kernel.VHOST_NET)})
    kernel.make_device(tree, kernel.TUN, "dev/vhost-net")  # tun's 10:200 where vhost-net goes
    kernel.make_device(tree, (1, 3), "dev/net/tun")  # /dev/null
    out = run(make("devices", tree))
    v = values(out)
    assert v[("kubev_vm_device_present", ("vhost-net",))] == 0
    assert v[("kubev_vm_device_present", ("tun",))] == 0
    assert observed(out) == {"tun": 0, "vhost_net": 0}
    assert notes(out)[:2] == [
        f"{tree}/dev/net/tun is device 1:3, not tun's 10:200",
        f"{tree}/dev/vhost-net is device 10:200, not vhost-net's 10:238",
    ]


def test_a_regular_file_is_not_a_device(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path, {"dev/net/tun": "tun\n"})
    out = run(make("devices", tree))
    assert values(out)[("kubev_vm_device_present", ("tun",))] == 0
    assert out.notes_about(Req.TUN) == [f"{tree}/dev/net/tun exists but is not a character device"]


@pytest.mark.root
@pytest.mark.skipif(HOST_HAS_VHOST_NET_DRIVER, reason="this machine's kernel has vhost-net")
def test_a_device_node_without_its_module_leads_nowhere(tmp_path: Path) -> None:
    """A /dev/vhost-net node (as `kmod static-nodes` leaves one) whose module is not loaded
    and cannot be: this machine's kernel has no vhost-net driver, so its open says ENODEV,
    and the node's /proc/misc does not list the driver either."""
    tree = bare_tree(tmp_path, {"proc/misc": kernel.proc_misc(kernel.TUN)})
    kernel.make_device(tree, kernel.VHOST_NET)
    out = run(make("devices", tree))
    v = values(out)
    assert v[("kubev_vm_device_present", ("vhost-net",))] == 1
    assert v[("kubev_vm_device_opened", ("vhost-net",))] == 0
    assert v[("kubev_vm_device_driver_registered", ("vhost-net",))] == 0
    assert observed(out)["vhost_net"] == 0
    assert out.notes_about(Req.VHOST_NET) == [
        f"{tree}/dev/vhost-net leads to no driver (No such device): modprobe vhost_net"
    ]


@pytest.mark.root
@needs_tun
def test_not_permitted_is_not_absent(tmp_path: Path) -> None:
    """The pod case: the device is there, this process may not open it. Run as nobody against
    root's 0600 nodes: a real EACCES, told apart from a missing device."""
    shared = Path("/dev/shm") / f"kubev-devices-{os.getpid()}"
    shared.mkdir(mode=0o755)
    try:
        tree = make_node_tree("compliant", shared)
        for path in [shared, tree, *tree.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        script = (
            "import json, sys; from pathlib import Path;"
            "from tests.checkrun import make, run, values, observed;"
            "out = run(make('devices', Path(sys.argv[1])));"
            "print(json.dumps({'observed': {str(k): v for k, v in observed(out).items()},"
            "'notes': [n.text for n in out.notes],"
            "'opened': values(out)[('kubev_vm_device_opened', ('tun',))]}))"
        )
        done = subprocess.run(
            [*NOBODY, sys.executable, "-c", script, str(tree)],
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
    assert result["observed"] == {"tun": 1, "vhost_net": 1}  # present, so they count
    assert result["opened"] == 0
    assert (
        f"{tree}/dev/net/tun is present; this process may not open it (Permission denied): "
        "expected in a pod without devices.kubevirt.io/tun"
    ) in result["notes"]


def test_device_plugin_sockets(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path)
    kernel.make_socket(tree, f"{kernel.PLUGIN_DIR}/kubevirt-kvm.sock")
    kernel.write(tree, {f"{kernel.PLUGIN_DIR}/kubevirt-tun.sock": "stale\n"})  # not a socket
    kernel.make_socket(tree, f"{kernel.PLUGIN_DIR}/kubelet.sock")
    v = values(run(make("devices", tree)))
    plugin = "kubev_kubevirt_device_plugin_socket_present"
    assert v[(plugin, ("devices.kubevirt.io/kvm",))] == 1
    assert v[(plugin, ("devices.kubevirt.io/tun",))] == 0
    assert v[(plugin, ("devices.kubevirt.io/vhost-net",))] == 0


def test_no_kubelet_yet_is_only_a_note(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path)
    out = run(make("devices", tree))
    plugin = "kubev_kubevirt_device_plugin_socket_present"
    assert values(out)[(plugin, ("devices.kubevirt.io/kvm",))] == 0
    assert (
        f"{tree}/root/var/lib/kubelet/device-plugins does not exist: kubelet has not run here (yet)"
        in notes(out)
    )
    assert out.errors == ()
    off = Config().with_check("devices", device_plugin_dir=None)
    v = values(run(make("devices", tree, off)))
    assert not any(name == plugin for name, _ in v)


def test_garbled_proc_misc_leaves_the_drivers_unknown(tmp_path: Path) -> None:
    tree = bare_tree(tmp_path, {"proc/misc": "200 tun\nnot a line at all\n"})
    out = run(make("devices", tree))
    assert not any(name == "kubev_vm_device_driver_registered" for name, _ in values(out))
    assert (
        f"{tree}/proc/misc: line 2 is not '<minor> <name>': "
        "whether the drivers are registered is unknown" in notes(out)
    )
    assert observed(out) == {"tun": 0, "vhost_net": 0}  # and the missing devices still fail
