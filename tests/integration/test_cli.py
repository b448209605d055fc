"""The command line as a user runs it: signals, log formats, flags, ports."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import __version__
from tests.helpers import (
    ROOT,
    Exporter,
    NodeTree,
    fixture_args,
    free_port,
    http_get,
    running,
    value,
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signal(sig: int, node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    exporter = Exporter(fixture_args(tree))
    exporter.wait_ready()
    log = exporter.stop(sig)
    assert exporter.proc.returncode == 0
    assert 'msg="shutting down"' in log


def test_json_logs(node_tree: NodeTree) -> None:
    tree = node_tree("broken")
    with running([*fixture_args(tree), "--log.format=json"]) as exporter:
        pass
    records = [json.loads(line) for line in exporter.stderr.splitlines()]
    serving = next(r for r in records if r["msg"] == "serving")
    assert serving["checks"] == "kvm,devices,kernel,compute,disk,network,ports,ovn"  # no dns
    # the broken node fails compute (its meminfo) and kernel (its /proc/cgroups)
    failed = next(r for r in records if r["msg"] == "check failed" and r["check"] == "compute")
    assert failed == {
        **failed,
        "level": "warn",
        "check": "compute",
        "err": f"{tree}/proc/meminfo: no MemTotal line",
    }
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]) for r in records)


def test_logfmt_is_the_default(node_tree: NodeTree) -> None:
    with running(fixture_args(node_tree("broken"))) as exporter:
        pass
    for line in exporter.stderr.splitlines():
        assert re.match(r"^ts=\S+ level=(info|warn|error|debug) logger=\S+ msg=", line), line


def test_collector_flags(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    with running([*fixture_args(tree), "--no-collector.kvm", "--no-collector.disk"]) as e:
        text = e.metrics()
    assert value(text, "kubev_check_success", check="kvm") is None
    assert value(text, "kubev_kvm_usable") is None
    assert value(text, "kubev_check_success", check="compute") == 1
    assert value(text, "kubev_requirement_met", requirement="kvm", level="minimum") is None


def test_profile_and_role_flags(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    with running([*fixture_args(tree), "--profile=testing", "--role=worker"]) as e:
        text = e.metrics()
    assert (
        value(text, "kubev_node_info", node=value_node(text), role="worker", profile="testing") == 1
    )
    assert (
        value(
            text,
            "kubev_requirement_threshold",
            requirement="cpu_cores",
            level="minimum",
            unit="cores",
        )
        == 8
    )


def value_node(text: str) -> str:
    match = re.search(r'kubev_node_info\{node="([^"]*)"', text)
    assert match
    return match.group(1)


def test_node_name_from_environment(node_tree: NodeTree) -> None:
    tree = node_tree("undersized")
    with running(fixture_args(tree), env={"NODE_NAME": "worker-7"}) as e:
        assert value_node(e.metrics()) == "worker-7"


def test_gzip_on_the_wire(node_tree: NodeTree) -> None:
    with running(fixture_args(node_tree("undersized"))) as e:
        plain = e.get("/metrics")
        zipped = e.get("/metrics", {"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert len(zipped.body) < len(plain.body)
    assert gzip.decompress(zipped.body) == plain.body
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert 'msg="cannot listen"' in done.stderr


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"kubev-node-exporter {__version__}\n"


def test_two_listen_addresses(node_tree: NodeTree) -> None:
    second = free_port()
    args = [
        *fixture_args(node_tree("undersized")),
        f"--web.listen-address=127.0.0.1:{second}",
    ]
    with running(args) as e:
        assert http_get(f"http://127.0.0.1:{second}/-/healthy").status == 200
        assert e.get("/-/healthy").status == 200


def test_log_level_defaults_per_command(node_tree: NodeTree) -> None:
    """serve logs at info by default; check keeps its stderr for real trouble."""
    tree = node_tree("broken")
    with running(fixture_args(tree)) as exporter:
        pass
    assert 'msg="check failed"' in exporter.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            *fixture_args(tree),
            "--no-collector.ports",
            "--no-collector.ovn",
            "--no-collector.dns",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stderr == ""
