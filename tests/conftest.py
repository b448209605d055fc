"""Markers and shared fixtures of the whole suite.

- `@pytest.mark.root`: the test needs root (network namespaces, mknod, capability
  changes). Skipped when not run as root; what needs root refuses to run in a test
  without the marker (tests.helpers.RootMarker), so the marker cannot be forgotten.
- `@pytest.mark.slow`: the test starts Prometheus, Alertmanager or Chromium, is a soak or
  a flood, or takes more than about 5 s. `make test-unit` leaves both out.

A run in which no test ran (all deselected or skipped) exits 5, never 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import IS_ROOT, NodeTree, RootMarker, make_node_tree
from tests.pki import make_pki


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, mknod, capability changes)")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture of the test is set up, module-scoped ones included
    RootMarker.marked = item.get_closest_marker("root") is not None


def pytest_runtest_teardown(item: pytest.Item) -> None:
    RootMarker.marked = False


#: outcomes that mean a test ran (passed, failed or errored, expectedly or not)
RAN = ("passed", "failed", "error", "xfailed", "xpassed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != pytest.ExitCode.OK or session.config.option.collectonly:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if not any(reporter.stats.get(outcome) for outcome in RAN):
        skipped = len(reporter.stats.get("skipped", []))
        reporter.ensure_newline()
        reporter.write_line(f"no test ran ({skipped} skipped): exit 5", red=True)
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.fixture
def node_tree(tmp_path: Path) -> NodeTree:
    """A private copy of a fixture node tree in the test's tmp_path, by shape
    (tests/fixtures/build.py); see tests.helpers.make_node_tree."""

    def make(shape: str, *, kvm_device: bool | None = None) -> Path:
        return make_node_tree(shape, tmp_path, kvm_device=kvm_device)

    return make


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two CAs, a server certificate for 127.0.0.1 and client certificates, by openssl
    (tests/pki.py); one set per test module."""
    return make_pki(tmp_path_factory.mktemp("pki"))
