"""A simulated compromise of the pod (issue 13): the rendered DaemonSet's pod, run over
fake host files in a private mount namespace (tests/deploy/podsim.py binds exactly what
the rendered spec mounts, as containerd would, and drops to the container's identity),
then what an attacker in it would try (tests/deploy/attacker.py).

The same attack against the pod this project shipped before (root, the host's / read-only
on its top mount only, kubelet's directory writable) reads the planted admin.conf and
kubelet key, overwrites kubelet's config, writes into a submount and connects to the
runtime's socket: the simulation can tell a vulnerable pod from a safe one. The rendered
pod does none of it, and the exporter in it, as its user on those mounts, still reports
every check.

The sockets are real listeners; the network is a namespace of the test's own.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.chart import RUN_AS
from deploy.render import Chart
from exporter.web import DEFAULT_PORT
from tests.deploy.validate import by_kind
from tests.helpers import ROOT, netns_get, network_namespace, value, wait_until
from tests.integration.test_dns import dnsmasq

MARKER = "kubev-planted-secret-7f3a"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
#: what the node's own kernel, devices and modules are: the exporter judges this machine
#: (a kernel without modules has no /lib/modules: the fake host's then, made by kubelet)
REAL_HOST = [p for p in ("/proc", "/sys", "/dev", "/lib/modules") if Path(p).is_dir()]
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
#: the fake kubelet config's clusterDNS, where the peers check asks for the Service's name
CLUSTER_DNS = "127.0.0.53"
RUNTIME_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/var/lib/kubelet/device-plugins/kubelet.sock",
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mounts"),
]


def entrypoint() -> list[str]:
    found = re.search(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE, re.M)
    assert found
    parsed: list[str] = json.loads(found[1])
    return parsed


def plant(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@pytest.fixture
def fake_host() -> Iterator[Path]:
    """A node's files as kubeadm and containerd leave them: the secrets root's alone, kubelet's
    directory 0700, its config world-readable, the runtime's socket listening. (A short
    path: a unix socket's address has room for 107 bytes.)"""
    top = Path(tempfile.mkdtemp(prefix="kh-", dir="/tmp"))
    top.chmod(0o755)
    host = top / "host"
    host.mkdir(mode=0o755)
    host.chmod(0o755)
    plant(host / "etc/kubernetes/admin.conf", f"client-key-data: {MARKER}\n", 0o600)
    plant(host / "etc/kubernetes/pki/ca.key", f"{MARKER}\n", 0o600)
    plant(host / "etc/resolv.conf", "nameserver 127.0.0.1\n", 0o644)
    plant(host / "var/lib/kubelet/pki/kubelet-client-current.pem", f"{MARKER}\n", 0o600)
    plant(
        host / KUBELET_CONFIG.lstrip("/"),
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        f"clusterDNS: [{CLUSTER_DNS}]\nclusterDomain: cluster.local\n",
        0o644,
    )
    (host / "var/lib/kubelet").chmod(0o700)  # kubeadm: os.MkdirAll(kubeletDir, 0700)
    (host / "var/lib/kubelet/device-plugins").mkdir(mode=0o750)
    (host / "var/lib/etcd/member").mkdir(parents=True, mode=0o700)
    (host / "run/containerd").mkdir(parents=True, mode=0o711)
    with contextlib.ExitStack() as stack:
        old = os.umask(0o022)  # as the daemons create them: root's, 0755
        try:
            for path in RUNTIME_SOCKETS:
                s = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                s.bind(str(host / path.lstrip("/")))
                s.listen(64)
        finally:
            os.umask(old)
        (host / RUNTIME_SOCKETS[0].lstrip("/")).chmod(0o660)  # containerd: root:root 0660
        stack.callback(shutil.rmtree, top, ignore_errors=True)
        yield host


def snapshot(host: Path) -> dict[str, bytes]:
    """Every regular file of the fake host and its content, but the probe directories'."""
    return {
        str(p.relative_to(host)): p.read_bytes()
        for p in sorted(host.rglob("*"))
        if p.is_file() and ".kubev-node-exporter-pod" not in p.parts
    }


def podsim(
    pod: dict[str, Any],
    configmaps: dict[str, dict[str, str]],
    host: Path,
    work: Path,
    netns: str,
    argv: list[str] | None = None,
    as_root: bool = False,
) -> list[str]:
    work.mkdir()
    spec = {
        "pod": pod,
        "configmaps": configmaps,
        "fake_host": str(host),
        "real_host": REAL_HOST,
        "submounts": ["/mnt/data", "/dev/shm"],
        "work": str(work),
        "image_dirs": sorted({str(ROOT), sys.base_prefix}),
        "entrypoint": entrypoint(),
        "path": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "pythonpath": str(ROOT),
        "field_refs": {"status.hostIP": "127.0.0.1", "spec.nodeName": "node-1"},
        "container": pod["containers"][-1]["name"],
        "argv": argv,
        "as_root": as_root,
    }
    path = work / "spec.json"
    path.write_text(json.dumps(spec))
    return [
        *("ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private"),
        *(sys.executable, "-m", "tests.deploy.podsim", str(path)),
    ]


def attack(
    pod: dict[str, Any],
    configmaps: dict[str, dict[str, str]],
    host: Path,
    work: Path,
    netns: str,
    as_root: bool = False,
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.deploy.attacker", MARKER, f"/host/root{KUBELET_CONFIG}"]
    command = podsim(pod, configmaps, host, work, netns, argv, as_root)
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rendered_pod(
    chart: Chart, values: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    objects = chart.render(values or {}).objects
    (ds,) = by_kind(objects, "DaemonSet")
    configmaps = {m["metadata"]["name"]: m["data"] for m in by_kind(objects, "ConfigMap")}
    pod: dict[str, Any] = ds["spec"]["template"]["spec"]
    return pod, configmaps


def before_issue_13(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as deploy/generate.py rendered it before: root without capabilities, the
    host's / read-only on its top mount only, /var/lib/kubelet writable."""
    old = copy.deepcopy(pod)
    old.pop("initContainers")
    old["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = old["containers"]
    container["securityContext"] = {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container["volumeMounts"] = [
        {"name": "proc", "mountPath": "/host/proc", "readOnly": True},
        {"name": "sys", "mountPath": "/host/sys", "readOnly": True},
        {"name": "root", "mountPath": "/host/root", "readOnly": True},
        {"name": "vm-storage", "mountPath": "/host/root/var/lib/kubelet"},
        {"name": "config", "mountPath": "/etc/kubev-node-exporter", "readOnly": True},
    ]
    config = next(v for v in old["volumes"] if v["name"] == "config")
    old["volumes"] = [
        {"name": "proc", "hostPath": {"path": "/proc", "type": "Directory"}},
        {"name": "sys", "hostPath": {"path": "/sys", "type": "Directory"}},
        {"name": "root", "hostPath": {"path": "/", "type": "Directory"}},
        {"name": "vm-storage", "hostPath": {"path": "/var/lib/kubelet", "type": "Directory"}},
        config,
    ]
    return old


def only_the_probe_directory(writable: list[str]) -> bool:
    """The probe's own directory (and what the running probe makes in it), nothing else."""
    probe = "/host/root/var/lib/kubelet"
    return probe in writable and all(w == probe or w.startswith(probe + "/") for w in writable)


def test_the_simulation_finds_what_the_old_pod_let_an_attacker_do(
    chart: Chart, fake_host: Path, tmp_path: Path
) -> None:
    pod, configmaps = rendered_pod(chart)
    with network_namespace() as netns:
        got = attack(before_issue_13(pod), configmaps, fake_host, tmp_path / "old", netns)
    assert got["uid"] == 0
    assert "/host/root/etc/kubernetes/admin.conf" in got["secrets_read"]
    assert "/host/root/var/lib/kubelet/pki/kubelet-client-current.pem" in got["secrets_read"]
    assert got["overwritten"] == [f"/host/root{KUBELET_CONFIG}"]
    assert "/host/root/mnt/data" in got["writable"]  # a submount of the read-only /
    assert "/host/root/run/containerd/containerd.sock" in got["sockets_connected"]


def test_a_compromised_pod_cannot_reach_the_node_and_the_exporter_still_works(
    chart: Chart, fake_host: Path, tmp_path: Path
) -> None:
    pod, configmaps = rendered_pod(chart)
    before = snapshot(fake_host)
    with network_namespace() as netns:
        exporter = subprocess.Popen(
            podsim(pod, configmaps, fake_host, tmp_path / "exporter", netns),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{DEFAULT_PORT}"

            def ready() -> bool:
                assert exporter.poll() is None, exporter.communicate()[1][-2000:]
                try:
                    return netns_get(netns, f"{url}/-/ready").status == 200
                except OSError:
                    return False

            wait_until(ready, "the exporter in the simulated pod ready", every=0.1)
            scrape = netns_get(netns, f"{url}/metrics")
            uid = re.search(
                r"^Uid:\s+(\d+)", Path(f"/proc/{exporter.pid}/status").read_text(), re.M
            )
            got = attack(pod, configmaps, fake_host, tmp_path / "attack", netns)
            as_root = attack(pod, configmaps, fake_host, tmp_path / "root", netns, as_root=True)
        finally:
            exporter.terminate()
            _, log = exporter.communicate(timeout=20)

    # the exporter, as the pod's user on exactly those mounts, reports its checks
    assert uid and int(uid[1]) == RUN_AS
    assert scrape.status == 200
    text = scrape.text
    for check in ("kvm", "devices", "kernel", "compute", "disk", "network", "dns"):
        assert value(text, "kubev_check_success", check=check) == 1, (check, log[-3000:])
    # the fsync probe writes in its own directory, on kubelet's filesystem
    assert value(text, "kubev_storage_probe_success", path="/var/lib/kubelet") == 1
    assert (value(text, "kubev_filesystem_size_bytes", path="/var/lib/kubelet") or 0) > 0
    assert value(text, "kubev_kvm_device_present") == 1  # the host's /dev, read-only
    # this machine's /dev/kvm (0600 root on Debian without the kvm rule) refuses the pod's
    # user: present, its open not permitted, so the KVM requirement is unknown, not failed
    if not stat.S_IMODE(os.stat("/dev/kvm").st_mode) & 0o006:
        assert value(text, "kubev_kvm_usable") == 0
        assert value(text, "kubev_requirement_met", requirement="kvm", level="minimum") is None
        assert "this process may not open it" in log
    assert exporter.returncode == 0

    # the attacker, as the pod's user: nothing of the node's
    assert got["uid"] == RUN_AS
    assert got["secrets_read"] == []
    assert got["overwritten"] == []
    assert only_the_probe_directory(got["writable"])
    assert got["sockets_connected"] == []
    assert not [s for s in got["sockets_seen"] if "containerd" in s or "kubelet.sock" in s]
    # not even root in that container writes anywhere but there: every host mount,
    # submounts included (/host/dev/shm, /host/sys/fs/cgroup...), is read-only
    assert only_the_probe_directory(as_root["writable"])
    submounts = [m for m in as_root["mounts"] if m.startswith(("/host/dev/", "/host/sys/"))]
    assert "/host/dev/shm" in submounts
    for point, options in as_root["mounts"].items():
        if point != "/host/root/var/lib/kubelet":
            assert options.split(",")[0] == "ro", (point, options)
    # kubelet's state is as it was; the pod wrote only in its probe directory
    assert snapshot(fake_host) == before
    probe_dir = fake_host / "var/lib/kubelet/.kubev-node-exporter-pod"
    assert probe_dir.stat().st_uid == RUN_AS  # handed over by the init container


def test_the_pod_finds_its_peers_through_the_headless_services_name(
    chart: Chart, fake_host: Path, tmp_path: Path
) -> None:
    """The rendered config's checks.peers.dns_name, asked of kubelet's clusterDNS (from
    the kubelet config the pod mounts, as the DaemonSet's dnsPolicy Default leaves the
    pod the node's resolver), lists the nodes: the pod's own address is left out, the
    other node answers its identity on the chart's port. dnsmasq stands for the cluster
    DNS at the fake kubelet config's clusterDNS, a second loopback address for the other
    node (the same exporter, which listens on every address), all in the test's own
    network namespace."""
    pod, configmaps = rendered_pod(chart)
    (config,) = [
        yaml.safe_load(c["config.yaml"]) for c in configmaps.values() if "config.yaml" in c
    ]
    service = config["checks"]["peers"]["dns_name"]
    assert service == "kubev-node-exporter.kubev-monitoring.svc.cluster.local"
    records = [f"--host-record={service},{address}" for address in ("127.0.0.1", "127.0.0.2")]
    url = f"http://127.0.0.1:{DEFAULT_PORT}"
    with (
        network_namespace() as netns,
        dnsmasq(netns, tmp_path, CLUSTER_DNS, *records),
    ):
        exporter = subprocess.Popen(
            podsim(pod, configmaps, fake_host, tmp_path / "exporter", netns),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def identified() -> str | None:
                assert exporter.poll() is None, exporter.communicate()[1][-2000:]
                try:
                    text = netns_get(netns, f"{url}/metrics").text
                except OSError:
                    return None
                known = value(text, "kubev_peer_identities", result="identity") == 1
                return text if known else None

            text = wait_until(identified, "the other node's identity, found through DNS")
        finally:
            exporter.terminate()
            exporter.communicate(timeout=20)
    assert value(text, "kubev_peer_discovery_success", source="dns") == 1
    assert value(text, "kubev_peers", source="dns") == 1  # its own address left out
    assert value(text, "kubev_check_success", check="peers") == 1
    # nothing listens on the other node's ports here: reachable (reset), none blocked
    assert (
        value(text, "kubev_requirement_met", requirement="peer_reachability", level="minimum") == 1
    )


def test_without_recursive_read_only_a_submount_stays_writable(
    chart: Chart, fake_host: Path, tmp_path: Path
) -> None:
    """The control for the assertion above: with recursiveReadOnly Disabled, read-only
    covers the top mount only, and root in the container writes into the host's
    /dev/shm (a world-writable submount, so the pod's user would too)."""
    pod, configmaps = rendered_pod(chart, {"recursiveReadOnly": "Disabled"})
    with network_namespace() as netns:
        got = attack(pod, configmaps, fake_host, tmp_path / "plain", netns, as_root=True)
    assert "/host/dev/shm" in got["writable"]
