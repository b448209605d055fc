"""`make generate` and its check: every generated file is current, and a file a generator
no longer produces (an orphan) counts as stale, so a retired dashboard or overlay cannot
linger in the repository."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT


def generate(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.generate", mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@contextlib.contextmanager
def stray(relative: str) -> Iterator[Path]:
    path = ROOT / relative
    made = [p for p in reversed(path.relative_to(ROOT).parents) if not (ROOT / p).exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("left behind\n")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                (ROOT / directory).rmdir()


def test_the_committed_files_are_current() -> None:
    done = generate("check")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "relative",
    [
        "dashboards/retired.json",
        "deploy/kubernetes/overlays/old/daemonset.yaml",
        "deploy/helm/kubev-node-exporter/files/dashboards/retired.json",
        "docs/runbooks/KubevRetiredAlert.md",
    ],
)
@pytest.mark.slow  # each check renders the chart's variants (several seconds)
def test_an_orphan_is_stale(relative: str) -> None:
    with stray(relative):
        done = generate("check")
        assert done.returncode == 1
        assert relative in done.stderr


@contextlib.contextmanager
def edited(relative: str, old: str, new: str) -> Iterator[None]:
    path = ROOT / relative
    text = path.read_text()
    assert old in text, relative
    path.write_text(text.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(text)


@pytest.mark.parametrize(
    ("relative", "old", "new", "stale"),
    [
        # a generated file edited by hand
        (
            "deploy/helm/kubev-node-exporter/values.yaml",
            "clusterDomain: cluster.local",
            "clusterDomain: example.org",
            ["deploy/helm/kubev-node-exporter/values.yaml"],
        ),
        (
            "deploy/kubernetes/base/configmap-config.yaml",
            "svc.cluster.local",
            "svc.example.org",
            ["deploy/kubernetes/base/configmap-config.yaml"],
        ),
        # a template changed: the kustomize manifests rendered from it are stale
        (
            "deploy/helm/kubev-node-exporter/templates/service.yaml",
            "publishNotReadyAddresses: true",
            "publishNotReadyAddresses: false",
            ["deploy/kubernetes/base/service.yaml"],
        ),
    ],
)
@pytest.mark.slow
def test_an_edit_is_stale(relative: str, old: str, new: str, stale: list[str]) -> None:
    with edited(relative, old, new):
        done = generate("check")
    assert done.returncode == 1
    for path in stale:
        assert path in done.stderr


def test_a_bad_mode_is_a_usage_error() -> None:
    done = generate("rewrite")
    assert done.returncode == 2
    assert "usage: write | check" in done.stderr
