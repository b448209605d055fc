"""Config files that try to take the process down: a "billion laughs", 100,000 levels of
nesting, a file of many MiB, a regular expression that backtracks for ever. The command
refuses them quickly and small (exit 2); the running exporter, given one on SIGHUP, keeps
serving with its old web config, stays small and still stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from base64 import b64encode
from pathlib import Path

import bcrypt
import pytest

from tests.helpers import ROOT, Exporter, NodeTree, fixture_args, http_get, wait_until
from tests.hostile import laughs

#: the pod's memory limit (deploy/): nothing here may come near it
POD_LIMIT_MIB = 128


def bomb(field: str) -> str:
    """9 levels of 9 aliases (387 million strings once expanded) used by `field`."""
    return laughs(9) + f"{field}\n"


HOSTILE = {
    "billion laughs": bomb("profile: *l9"),
    "deep nesting": "profile: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "huge file": "# padding\n" * 2_000_000,  # 20 MB
}


def run_measured(args: list[str], timeout: float, tmp_path: Path) -> tuple[int, str, float, int]:
    """The exporter as a child: (exit code, stderr, seconds, its peak RSS in KiB). GNU
    time reports the peak of the process it runs; the test process's own rusage would not
    do (a forked child starts its peak at its parent's size, here pytest's)."""
    report = tmp_path / "max-rss"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                "-o",
                str(report),
                sys.executable,
                "-m",
                "exporter",
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout}s") from None
    seconds = time.monotonic() - started
    max_rss_kib = int(report.read_text().split()[-1])
    return done.returncode, done.stderr.decode(errors="replace"), seconds, max_rss_kib


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_config_file_exits_2_quickly_and_small(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOSTILE[kind])
    code, stderr, seconds, max_rss_kib = run_measured(
        ["check", f"--config.file={path}"], timeout=30, tmp_path=tmp_path
    )
    assert code == 2, stderr[-2000:]
    assert stderr.startswith(f"kubev-node-exporter: {path}: "), stderr[-2000:]
    assert len(stderr) < 500  # one line, whatever the file held
    assert seconds < 15, f"took {seconds:.1f}s"
    assert max_rss_kib < 100 * 1024, f"peak RSS {max_rss_kib / 1024:.0f} MiB"


def test_a_backtracking_name_filter_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("checks:\n  network:\n    interfaces:\n      include: '^(e+)+$'\n")
    code, stderr, _, _ = run_measured(["check", f"--config.file={path}"], 30, tmp_path)
    assert code == 2
    assert stderr.startswith(
        f"kubev-node-exporter: {path}: checks.network.interfaces.include: '^(e+)+$' could "
        "backtrack too long on some names"
    ), stderr


def ready(exporter: Exporter, headers: dict[str, str]) -> bool:
    try:
        return exporter.get("/-/ready", headers).status == 200
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_hostile_web_config_on_sighup_keeps_the_old_one(
    tmp_path: Path, node_tree: NodeTree
) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    good = f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    config = tmp_path / "web.yml"
    config.write_text(good)
    auth = {"Authorization": "Basic " + b64encode(b"prometheus:right").decode()}
    hostile = {
        # the bomb where an error message would quote it
        "billion laughs": bomb(f"tls_server_config: {{cert_file: *l9, key_file: k}}\n{good}"),
        "deep nesting": "basic_auth_users: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "huge file": good + "# padding\n" * 2_000_000,
    }
    exporter = Exporter(
        [
            *fixture_args(node_tree("undersized")),
            "--no-collector.kvm",
            "--no-collector.disk",
            "--no-collector.network",
            "--no-collector.ports",
            "--no-collector.ovn",
            f"--web.config.file={config}",
        ]
    )
    try:
        wait_until(lambda: ready(exporter, auth), "the exporter ready")
        rss = [rss_mib(exporter.proc.pid)]
        for refused, (kind, content) in enumerate(hostile.items(), 1):
            config.write_text(content)
            exporter.proc.send_signal(signal.SIGHUP)

            def scraped_until_refused(refused: int = refused) -> bool:
                # the reload is under way: scrapes go on, with the old password
                started = time.monotonic()
                assert exporter.get("/metrics", auth).status == 200
                assert time.monotonic() - started < 2, "a scrape waited for the reload"
                rss.append(rss_mib(exporter.proc.pid))
                return exporter.log().count('msg="web config not reloaded"') >= refused

            wait_until(scraped_until_refused, f"the {kind} refused on SIGHUP")
        peak = max(rss)
        assert http_get(exporter.url + "/metrics").status == 401  # auth still on
    finally:
        exporter.stop()  # SIGTERM, and it must stop within its timeout
    log = exporter.stderr
    assert exporter.proc.returncode == 0
    assert log.count('msg="web config not reloaded"') == len(hostile)
    assert peak < POD_LIMIT_MIB, f"RSS reached {peak:.0f} MiB"
    assert max(len(line) for line in log.splitlines()) < 1000
