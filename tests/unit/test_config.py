"""Configuration: defaults, durations, and a table of bad files with their exact messages.

The exporter's own words are asserted exactly; where a message quotes a library (the
regular expression compiler, the YAML parser), the test asks that library what it says
rather than pinning one version's wording.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import cli
from exporter.checks.disk import DiskSettings
from exporter.checks.dns import DnsSettings
from exporter.checks.network import NetworkSettings
from exporter.checks.ovn import OvnSettings
from exporter.checks.ports import ExtraPort, PortsSettings
from exporter.config import Config, from_mapping, load
from exporter.settings import ConfigError, parse_duration
from exporter.spec import Expectation, Profile, Role
from tests.helpers import ROOT, free_port


def test_embedded_default_serves_a_plain_single_node() -> None:
    cfg = from_mapping(None)
    assert cfg == Config()
    assert cfg.role is Role.SINGLE_NODE and cfg.profile is Profile.PRODUCTION
    assert all(cfg.check(n).enabled for n in ("kvm", "compute", "disk", "network"))
    assert cfg.settings(DiskSettings).devices.matches("nvme0n1")
    assert not cfg.settings(DiskSettings).devices.matches("loop0")
    assert cfg.settings(NetworkSettings).interfaces.matches("eno1")
    assert not cfg.settings(NetworkSettings).interfaces.matches("veth0")


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "profile: testing\nrole: worker\nchecks:\n  disk:\n    interval: 1m30s\n"
        "    storage_paths: [/var/lib/kubevirt]\n  kvm: {enabled: false}\n"
    )
    cfg = load(path)
    assert cfg.profile is Profile.TESTING and cfg.role is Role.WORKER
    disk = cfg.settings(DiskSettings)
    assert disk.interval == 90.0 and disk.timeout == Config().check("disk").timeout
    assert disk.storage_paths == ("/var/lib/kubevirt",)
    assert not cfg.check("kvm").enabled


def test_a_short_interval_alone_shortens_the_default_timeout() -> None:
    cfg = from_mapping({"checks": {"disk": {"interval": "5s"}}})
    assert cfg.check("disk").interval == 5 and cfg.check("disk").timeout == 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["0s", 0, -1, "-5s", "fast", "15", True, None, "1d"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^x: must be"):
        parse_duration(text, "x")


def regex_error(pattern: str) -> str:
    """What Python's re says about a pattern it refuses."""
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e)
    raise AssertionError(f"{pattern!r} compiles")


def yaml_problem(text: str) -> str:
    """What PyYAML says is wrong with a document it refuses (without the position)."""
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        return str(e.problem)
    raise AssertionError(f"{text!r} parses")


UNCLOSED = "profile: [unclosed\n"
BAD_CONFIGS = [
    ("profile: staging\n", "profile: must be one of testing, production, got 'staging'"),
    ("role: master\n", "role: must be one of single-node, control-plane, worker, got 'master'"),
    (
        "checks:\n  disk:\n    interval: -5s\n",
        "checks.disk.interval: must be a duration such as 15s or 500ms, got '-5s'",
    ),
    (
        "checks:\n  kvm:\n    interval: 0s\n",
        "checks.kvm.interval: must be greater than zero, got '0s'",
    ),
    (
        "checks:\n  compute:\n    interval: 10s\n    timeout: 20s\n",
        "checks.compute.timeout: must not exceed the interval (10s), got 20s",
    ),
    (
        "checks:\n  dsk: {}\n",
        "checks.dsk: unknown key (known keys: compute, devices, disk, dns, kernel, kvm, network, "
        "ovn, peers, ports)",
    ),
    (
        "chekcs: {}\n",
        "chekcs: unknown key (known keys: checks, node_address, node_name, profile, role, "
        "runbook_url_template)",
    ),
    (
        "checks:\n  disk:\n    devices:\n      exclude: '('\n",
        f"checks.disk.devices.exclude: not a valid regular expression: {regex_error('(')}",
    ),
    (
        "checks:\n  disk:\n    storage_paths: [var/lib]\n",
        "checks.disk.storage_paths[0]: must be an absolute path, got 'var/lib'",
    ),
    (
        "checks:\n  disk:\n    storage_paths: /var/lib\n",
        "checks.disk.storage_paths: must be a list of absolute paths, got a string",
    ),
    (
        "checks:\n  disk:\n    fsync_samples: 0\n",
        "checks.disk.fsync_samples: must be a whole number of at least 1, got 0",
    ),
    (
        "checks:\n  network:\n    enabled: yes please\n",
        "checks.network.enabled: must be true or false, got 'yes please'",
    ),
    (
        "checks:\n  network:\n    source: ethtool\n",
        "checks.network.source: must be one of auto, netlink, sysfs, got 'ethtool'",
    ),
    ("checks:\n  network: [a]\n", "checks.network: must be a mapping, got a list"),
    ("node_address: 10.0.0.300\n", "node_address: must be auto or an IP address, got '10.0.0.300'"),
    ("- a\n- b\n", "top level: must be a mapping, got a list"),
    (
        "checks:\n  kvm:\n    interval: 10s\n    timeout: 2s\n    interval: 20s\n",
        "not valid YAML at line 5, column 5: key 'interval' is given twice",
    ),
    (  # the file, the line and column where the parser gave up, and why
        UNCLOSED,
        f"not valid YAML at line 2, column 1: {yaml_problem(UNCLOSED)}",
    ),
    (
        "checks:\n  ports:\n    expectations: {kube-apiservr: optional}\n",
        "checks.ports.expectations.kube-apiservr: unknown component (known: etcd, geneve, "
        "kube-apiserver, kube-controller-manager, kube-ovn-cni, kube-ovn-controller, "
        "kube-ovn-monitor, kube-proxy, kube-scheduler, kubelet, kubevirt-api, live-migration, "
        "nodeport, ovn-nb, ovn-nb-raft, ovn-sb, ovn-sb-raft)",
    ),
    (
        "checks:\n  ports:\n    expectations: {etcd: maybe}\n",
        "checks.ports.expectations.etcd: must be one of required, optional, transient, absent, "
        "got 'maybe'",
    ),
    (
        "checks:\n  ports:\n    extra: [{component: x, port: 70000}]\n",
        "checks.ports.extra[0].port: must be a port (1-65535) or a range like 61000-61009, "
        "got 70000",
    ),
    (
        "checks:\n  ports:\n    extra: [{port: 9000}]\n",
        "checks.ports.extra[0].component: required",
    ),
    (
        "checks:\n  ports:\n    extra: [{component: x, port: 9000, proto: udp}]\n",
        "checks.ports.extra[0].proto: unknown key (known keys: component, expectation, port, "
        "protocol)",
    ),
    (
        "checks:\n  ovn:\n    tls: {ca_file: ca.pem}\n",
        "checks.ovn.tls.ca_file: must be an absolute path, got 'ca.pem'",
    ),
    (
        "checks:\n  ovn:\n    scheme: ftp\n",
        "checks.ovn.scheme: must be one of http, https, got 'ftp'",
    ),
    (
        "checks:\n  dns:\n    names: [good.example, 'bad name']\n",
        "checks.dns.names[1]: not a valid DNS name, got 'bad name'",
    ),
    (
        "checks:\n  dns:\n    cluster_domain: cluster..local\n",
        "checks.dns.cluster_domain: not a valid DNS name, got 'cluster..local'",
    ),
    (
        "checks:\n  dns:\n    cluster_dns: [10.96.0.10, kube-dns]\n",
        "checks.dns.cluster_dns[1]: must be an IP address, got 'kube-dns'",
    ),
    (
        "checks:\n  dns:\n    kubelet_config: var/lib/kubelet/config.yaml\n",
        "checks.dns.kubelet_config: must be an absolute path, got 'var/lib/kubelet/config.yaml'",
    ),
    # values PyYAML cannot construct, and nesting past the loader's bound (the 32nd "["
    # under the top-level mapping, column 41): still exit 2
    (
        "profile: 2001-13-01\n",
        "not valid YAML: a value that cannot be read: month must be in 1..12",
    ),
    (
        "profile: " + "[" * 1100 + "\n",
        "not valid YAML at line 1, column 41: nested deeper than 32 levels",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_exits_2_naming_the_key(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main([f"--config.file={path}", "--web.listen-address=127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == f"kubev-node-exporter: {path}: {message}\n"


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert cli.main([f"--config.file={path}"]) == 2
    assert capsys.readouterr().err == (
        f"kubev-node-exporter: {path}: cannot read: {os.strerror(errno.ENOENT)}\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--web.listen-address=nonsense"],
            "--web.listen-address: 'nonsense' is not HOST:PORT or :PORT",
        ),
        (
            ["--web.listen-address=:99999"],
            "--web.listen-address: ':99999' is not HOST:PORT or :PORT",
        ),
        (
            ["--web.telemetry-path=metrics"],
            "--web.telemetry-path: 'metrics' must start with / and not be /, /report.json, "
            "/-/healthy, /-/ready or /-/identity",
        ),
        (
            ["--web.telemetry-path=/report.json"],
            "--web.telemetry-path: '/report.json' must start with / and not be /, "
            "/report.json, /-/healthy, /-/ready or /-/identity",
        ),
        (
            ["--web.listen-address=[zz::1]:80"],
            "--web.listen-address: '[zz::1]:80' has a bad IPv6 address",
        ),
        (["--web.max-connections=0"], "--web.max-connections: must be at least 1, got 0"),
        (
            ["--web.max-connections=8", "--web.max-connections-per-client=16"],
            "--web.max-connections-per-client: must not exceed --web.max-connections (8), got 16",
        ),
    ],
)
def test_bad_flags(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(args) == 2
    assert capsys.readouterr().err == f"kubev-node-exporter: {message}\n"


def test_bad_flag_choice_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--profile", "staging"]) == 2
    err = capsys.readouterr().err
    # argparse's usage error: the usage, then one line naming the flag, the value refused
    # and the values allowed
    assert err.startswith("usage: ")
    assert re.search(r"^.*--profile\b.*'staging'.*\btesting\b.*\bproduction\b", err, re.M), err


def test_real_process_refuses_bad_config_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("checks:\n  kvm:\n    timeout: soon\n")
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={path}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"kubev-node-exporter: {path}: checks.kvm.timeout: must be a duration such as 15s "
        "or 500ms, got 'soon'\n"
    )
    assert done.stdout == ""


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("profile: testing\nchecks:\n  kvm: {enabled: false}\n")
    args = cli.build_parser().parse_args(
        [
            "serve",
            f"--config.file={path}",
            "--profile=production",
            "--collector.kvm",
            "--no-collector.disk",
        ]
    )
    cfg = cli.resolve_config(args)
    assert cfg.profile is Profile.PRODUCTION
    assert cfg.check("kvm").enabled and not cfg.check("disk").enabled
    assert cfg.check("compute").enabled


def test_network_service_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "checks:\n  ports:\n    connect_timeout: 250ms\n"
        "    expectations: {kubevirt-api: required}\n"
        "    extra: [{component: agent, port: 9000-9002, protocol: udp, expectation: optional}]\n"
        "  ovn: {scheme: https, bearer_token_file: /var/run/token, tls: {ca_file: /etc/ca.pem}}\n"
        "  dns: {names: [api.example.com], cluster_domain: cluster.local}\n"
    )
    cfg = load(path)
    ports, ovn, dns = (
        cfg.settings(PortsSettings),
        cfg.settings(OvnSettings),
        cfg.settings(DnsSettings),
    )
    assert ports.connect_timeout == 0.25
    assert ports.expectations == {"kubevirt-api": Expectation.REQUIRED}
    assert ports.extra == (ExtraPort("agent", (9000, 9002), "udp", Expectation.OPTIONAL),)
    assert (ovn.scheme, ovn.bearer_token_file, ovn.tls.ca_file) == (
        "https",
        "/var/run/token",
        "/etc/ca.pem",
    )
    assert dns.names == ("api.example.com",) and dns.cluster_domain == "cluster.local"
