"""`kubev-node-exporter check` and the HTML report on the fixture node shapes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import (
    ARTIFACTS,
    ROOT,
    SHAPE_PROFILES,
    chromium,
    fixture_args,
    make_node_tree,
    running,
)

SCHEMA = json.loads((ROOT / "docs" / "check-output.schema.json").read_text())
HOST_CHECKS_ONLY = ["--no-collector.ports", "--no-collector.ovn", "--no-collector.dns"]


@pytest.fixture
def shm_tmp() -> Iterator[Path]:
    """Trees on tmpfs: the fsync probe there is fast on any machine, so the compliant node's
    storage latency verdict does not depend on the disk under the test."""
    path = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check(
    shape: str, tmp: Path, *extra: str, env: dict[str, str] | None = None, tree: Path | None = None
) -> subprocess.CompletedProcess[str]:
    tree = tree or make_node_tree(shape, tmp)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            *fixture_args(tree),
            f"--profile={SHAPE_PROFILES[shape]}",
            "--role=worker",
            *HOST_CHECKS_ONLY,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_NAME": f"{shape}-node", **(env or {})},
        check=False,
    )


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {r["requirement"]: r["verdict"] for r in report["rows"]}


@pytest.mark.root
def test_compliant_node_passes_everything(shm_tmp: Path) -> None:
    done = check("compliant", shm_tmp, "--output=json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert set(verdicts(report).values()) == {"PASS"}
    assert len(report["rows"]) == 12
    assert report["summary"] == {"pass": 12, "warn": 0, "fail": 0, "error": 0, "unknown": 0}
    assert all(r["hint"] == "" for r in report["rows"])


def test_undersized_node_fails_exactly_what_it_lacks(shm_tmp: Path) -> None:
    done = check("undersized", shm_tmp, "--output=json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert verdicts(report) == {
        "virtualization_extensions": "WARN",  # testing profile: recommended only
        "kvm": "FAIL",
        "tun": "FAIL",  # no VM devices
        "vhost_net": "FAIL",
        "kernel_modules": "FAIL",  # no openvswitch, no geneve
        "cgroup_controllers": "PASS",  # cgroup v1 with every controller
        "cpu_baseline": "FAIL",  # its VM's CPU model hides the x86-64-v2 flags
        "cpu_cores": "FAIL",
        "memory": "FAIL",
        "storage_solid_state": "WARN",
        "disk_latency": "PASS",
        "nic_speed": "FAIL",
    }
    rows = {r["requirement"]: r for r in report["rows"]}
    assert rows["cpu_cores"]["observed_text"] == "4 cores"
    assert rows["cpu_cores"]["minimum"] == ">= 8 cores"
    assert rows["nic_speed"]["observed_text"] == "0.1 Gb/s"
    assert rows["storage_solid_state"]["detail"] == "rotational: sda"
    assert rows["kvm"]["detail"].endswith(
        "/dev/kvm does not exist: load kvm_intel or kvm_amd, enable VT-x/AMD-V"
    )
    assert rows["kvm"]["runbook_url"].endswith("/KubevKVMUnusable.md")
    assert rows["kvm"]["hint"].startswith("Enable VT-x/AMD-V")
    assert rows["vhost_net"]["detail"].endswith(
        "/dev/vhost-net does not exist: modprobe vhost_net (the kernel then creates it)"
    )
    assert rows["cpu_baseline"]["detail"] == (
        "missing x86-64-v2 flags: cx16 lahf_lm popcnt pni ssse3 sse4_1 sse4_2 "
        "(this host is a VM: its CPU model hides them)"
    )
    assert rows["kernel_modules"]["detail"] == (
        "not loaded, built in or installed for kernel 6.8.0-45-generic: openvswitch, geneve "
        "(modprobe openvswitch)"
    )


def test_broken_node_shows_errors(shm_tmp: Path) -> None:
    done = check("broken", shm_tmp, "--output=json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    rows = {r["requirement"]: r for r in report["rows"]}
    # the garbled meminfo costs the memory verdict only: the cores are still judged
    assert rows["memory"]["verdict"] == "ERROR"
    assert rows["memory"]["detail"].endswith("/proc/meminfo: no MemTotal line")
    assert rows["cpu_cores"]["verdict"] == "FAIL"
    assert rows["cpu_cores"]["observed"] == 1
    assert rows["virtualization_extensions"]["verdict"] == "UNKNOWN"  # cpuinfo has no flags
    assert rows["storage_solid_state"]["verdict"] == "UNKNOWN"  # no queue/rotational
    assert rows["disk_latency"]["verdict"] == "UNKNOWN"  # the storage path does not exist
    assert rows["nic_speed"]["verdict"] == "UNKNOWN"
    assert rows["kvm"]["verdict"] == "FAIL"  # /dev/kvm is a regular file
    assert rows["cpu_baseline"]["verdict"] == "UNKNOWN"  # cpuinfo has no flags
    assert rows["cgroup_controllers"]["verdict"] == "ERROR"
    assert rows["cgroup_controllers"]["detail"].endswith(
        "/proc/cgroups: line 2 is not '<name> <hierarchy> <cgroups> <on>'"
    )
    assert rows["kernel_modules"]["verdict"] == "UNKNOWN"  # no /sys/module to list
    assert rows["tun"]["verdict"] == rows["vhost_net"]["verdict"] == "FAIL"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["compute"]["success"] is False


def test_cloud_vm_disks_are_virtual_not_spinning(shm_tmp: Path) -> None:
    """virtio and virtio-scsi disks say rotational=1 whatever backs them: the medium is
    unknown, not a spinning disk; the one run of `check` still judges the fsync p99."""
    done = check("cloudvm", shm_tmp, "--output=json")
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    rows = {r["requirement"]: r for r in report["rows"]}
    assert rows["storage_solid_state"]["verdict"] == "UNKNOWN"
    assert rows["storage_solid_state"]["detail"] == (
        "virtual disks, medium unknown (they report rotational whatever backs them): "
        "dm-0, sda, vda; judge by the hypervisor's storage, or narrow "
        "checks.disk.devices.include to disks that are not virtual"
    )
    assert rows["disk_latency"]["verdict"] == "PASS"  # tmpfs: fast on any machine


def test_table_output_and_colour(shm_tmp: Path) -> None:
    tree = make_node_tree("undersized", shm_tmp)
    piped = check("undersized", shm_tmp, tree=tree)
    assert piped.returncode == 1
    assert "\033[" not in piped.stdout and "checking" not in piped.stderr
    assert re.search(
        r"^  FAIL +CPU cores +4 cores +min >= 8 cores +rec >= 16 cores$", piped.stdout, re.M
    )
    assert "-> Use a machine with more cores" in piped.stdout
    assert piped.stdout.splitlines()[-1] == (
        "2 PASS, 2 WARN, 8 FAIL, 0 ERROR, 0 UNKNOWN: a minimum is not met or a check failed "
        "(exit 1)"
    )

    # on a terminal (script(1) gives it one): colour, and progress on stderr
    cmd = " ".join(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            *fixture_args(tree),
            "--profile=testing",
            *HOST_CHECKS_ONLY,
        ]
    )
    tty = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "\033[1;31mFAIL" in tty.stdout
    assert "checking" in tty.stdout  # script merges the terminal's stderr into its output
    no_colour = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert "\033[1;31m" not in no_colour.stdout and "FAIL" in no_colour.stdout


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("profile: staging\n")
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "check", f"--config.file={bad}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "profile: must be one of testing, production" in done.stderr
    assert done.stdout == ""


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.text: list[str] = []
        self.verdicts: list[str] = []
        self._in_verdict = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        classes = (dict(attrs).get("class") or "").split()
        self._in_verdict = tag == "td" and "verdict" in classes

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_verdict:
            self.verdicts.append(data.strip())
            self._in_verdict = False


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("shape", sorted(SHAPE_PROFILES))
def test_html_report_in_a_browser(shape: str, shm_tmp: Path) -> None:
    tree = make_node_tree(shape, shm_tmp)
    if shape == "compliant":  # a NIC whose name is markup must show as text
        net = tree / "sys" / "class" / "net"
        (net / "eno1").rename(net / "<script>")
    expected = json.loads(check(shape, shm_tmp, "--output=json", tree=tree).stdout)
    args = [
        *fixture_args(tree),
        f"--profile={SHAPE_PROFILES[shape]}",
        "--role=worker",
        *HOST_CHECKS_ONLY,
    ]
    with running(args, env={"NODE_NAME": f"{shape}-node"}) as exporter:
        dom = chromium(exporter.url + "/", shm_tmp, "--dump-dom")
        ARTIFACTS.mkdir(exist_ok=True)
        for name, size in (("wide", "1280,1000"), ("phone", "390,844")):
            shot = ARTIFACTS / f"report-{shape}-{name}.png"
            chromium(exporter.url + "/", shm_tmp, f"--screenshot={shot}", f"--window-size={size}")
            assert shot.read_bytes()[:4] == b"\x89PNG"
    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.scripts == 0
    want = [r["verdict"] for r in expected["rows"]]
    assert parsed.verdicts == want
    text = "".join(parsed.text)
    assert f"{shape}-node" in text
    for verdict, count in expected["summary"].items():
        assert f"{count} {verdict.upper()}" in text
    if shape == "compliant":
        assert "fastest link up: <script>" in text


def test_runbook_links_have_one_source(shm_tmp: Path) -> None:
    """The report links where the alert rules link (no environment variable can make them
    differ); the config's runbook_url_template moves both the page's and check's links."""
    rules = yaml.safe_load((ROOT / "alerts" / "kubev-node-exporter.rules.yml").read_text())
    by_alert = {
        r["alert"]: r["annotations"]["runbook_url"]
        for group in rules["groups"]
        for r in group["rules"]
        if "alert" in r
    }
    env = {"RUNBOOK_URL_TEMPLATE": "https://elsewhere.example/{alert}"}
    done = check("undersized", shm_tmp, "--output=json", env=env)
    rows = json.loads(done.stdout)["rows"]
    assert rows
    for row in rows:
        alert = row["runbook_url"].rsplit("/", 1)[1].removesuffix(".md")
        assert row["runbook_url"] == by_alert[alert]

    config = shm_tmp / "runbooks.yaml"
    config.write_text("runbook_url_template: https://wiki.example/kubev/{alert}\n")
    done = check("undersized", shm_tmp / "again", "--output=json", f"--config.file={config}")
    for row in json.loads(done.stdout)["rows"]:
        assert row["runbook_url"].startswith("https://wiki.example/kubev/Kubev")


@pytest.mark.root
def test_thresholds_are_numbers_beside_the_text(shm_tmp: Path) -> None:
    """Tools read the thresholds as numbers (in the row's unit), not by parsing '16 GiB'."""
    done = check("undersized", shm_tmp, "--output=json")
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    rows = {r["requirement"]: r for r in report["rows"]}
    # the undersized shape is judged by the testing profile
    assert rows["cpu_cores"]["minimum_value"] == 8 and rows["cpu_cores"]["minimum"] == ">= 8 cores"
    assert rows["memory"]["recommended_value"] == 16 * 1024**3
    assert rows["nic_speed"]["minimum_value"] == 125_000_000  # 1 Gb/s in bytes per second
    assert rows["kvm"]["minimum_value"] == 1 and rows["kvm"]["minimum"] == "required"
    assert rows["storage_solid_state"]["minimum_value"] is None
    assert rows["storage_solid_state"]["minimum"] == "-"
