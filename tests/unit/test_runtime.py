"""Runtime, exposition and HTTP endpoints, in-process with real checks on fixture trees."""

from __future__ import annotations

import asyncio
import errno
import gc
import gzip
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser

import exporter.runtime
from exporter import gctune
from exporter.blocking import BACKGROUND_NICE, BlockingGate
from exporter.checks.base import Check
from exporter.checks.kvm import KvmSettings
from exporter.config import Config
from exporter.exposition import Exposition
from exporter.model import CheckOutput
from exporter.paths import Paths
from exporter.runtime import Runtime
from exporter.settings import CheckSettings
from exporter.spec import Profile
from exporter.web.server import accepts_gzip, make_app
from tests.checkrun import IDENTITY, RuntimeFor, run_all
from tests.helpers import NodeTree, eventually, samples

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

#: prometheus_client's OpenMetrics parser (its module carries no annotations)
openmetrics_families: Callable[[str], Iterator[Metric]] = (
    openmetrics_parser.text_string_to_metric_families
)

#: What Prometheus 2.x sends; it gets OpenMetrics.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


async def test_failure_logged_once_per_change(
    node_tree: NodeTree, runtime_for: RuntimeFor, caplog: pytest.LogCaptureFixture
) -> None:
    tree = node_tree("undersized")
    runtime = runtime_for(tree)
    compute = next(c for c in runtime.checks if c.name == "compute")
    meminfo = tree / "proc" / "meminfo"
    good = meminfo.read_text()
    caplog.set_level(logging.INFO, logger="exporter.runtime")
    await runtime.run_once(compute)
    meminfo.unlink()
    for _ in range(3):
        state = await runtime.run_once(compute)
    assert not state.success and state.error == f"{meminfo}: file not found"
    meminfo.write_text(good)
    await runtime.run_once(compute)
    await runtime.run_once(compute)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("check failed") == 1
    assert messages.count("check recovered") == 1
    assert dict(runtime.snapshot.states["compute"].runs) == {
        "success": 3,
        "failure": 3,
        "timeout": 0,
    }


async def test_failed_check_drops_its_values_unless_keep_last_good(
    node_tree: NodeTree, runtime_for: RuntimeFor
) -> None:
    tree = node_tree("undersized")
    for keep in (False, True):
        cfg = Config().with_check("compute", keep_last_good=keep)
        runtime = runtime_for(tree, cfg)
        compute = next(c for c in runtime.checks if c.name == "compute")
        (tree / "proc" / "meminfo").write_text("MemTotal: 1 kB\nMemAvailable: 1 kB\n")
        await runtime.run_once(compute)
        (tree / "proc" / "meminfo").write_text("garbage\n")
        state = await runtime.run_once(compute)
        assert not state.success and state.output is not None
        served = {s.metric.name for s in state.output.samples}
        assert ("kubev_memory_total_bytes" in served) is keep
        verdicts = {v.requirement.name for v in runtime.snapshot.verdicts}
        assert ("memory" in verdicts) is keep


async def test_exposition_is_cached_until_a_result_changes(
    node_tree: NodeTree, runtime_for: RuntimeFor
) -> None:
    runtime = runtime_for(node_tree("undersized"))
    exposition = Exposition(IDENTITY)
    await run_all(runtime)
    first, ctype = exposition.render(runtime.snapshot, "", gzipped=False)
    again, _ = exposition.render(runtime.snapshot, "", gzipped=False)
    assert again is first  # no re-encoding between results
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    await runtime.run_once(runtime.checks[0])
    after, _ = exposition.render(runtime.snapshot, "", gzipped=False)
    assert after is not first
    zipped, _ = exposition.render(runtime.snapshot, "", gzipped=True)
    assert gzip.decompress(zipped) == after
    om, om_type = exposition.render(
        runtime.snapshot, "application/openmetrics-text; version=1.0.0", gzipped=False
    )
    assert om_type.startswith("application/openmetrics-text") and om.endswith(b"# EOF\n")
    parsed = {f.name: f for f in openmetrics_families(om.decode())}
    assert parsed["kubev_check_runs"].type == "counter"
    assert parsed["kubev_cpu_logical_cores"].samples[0].value == 4


async def ready_status(client: TestClient[web.Request, web.Application]) -> int:
    return (await client.get("/-/ready")).status


async def test_endpoints(node_tree: NodeTree, runtime_for: RuntimeFor) -> None:
    runtime = runtime_for(node_tree("undersized"), Config(node_name="n1"))
    async with TestClient(TestServer(make_app(runtime))) as client:
        assert (await client.get("/-/healthy")).status == 200
        not_ready = await client.get("/-/ready")
        assert not_ready.status == 503
        assert "kvm" in await not_ready.text()
        await run_all(runtime)
        # ready once the encoder thread has the results in what /metrics serves
        await eventually(lambda: ready_status(client), 200)

        response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        got = samples(await response.text())  # aiohttp's client decompresses
        assert got[("kubev_cpu_logical_cores", ())] == 4
        assert got[("kubev_requirement_met", (("level", "minimum"), ("requirement", "kvm")))] == 0
        assert (
            got[
                (
                    "kubev_node_info",
                    (("node", "n1"), ("profile", "production"), ("role", "single-node")),
                )
            ]
            == 1
        )

        page = await client.get("/")
        assert page.status == 200 and page.content_type == "text/html"
        html = await page.text()
        assert "KVM usable (/dev/kvm)" in html and 'href="/metrics"' in html

        assert (await client.head("/metrics")).status == 200
        assert (await client.get("/nope")).status == 404
        assert (await client.post("/metrics")).status == 405


async def test_ready_means_metrics_hold_every_first_result(
    node_tree: NodeTree, runtime_for: RuntimeFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/-/ready must not say ready while /metrics still serves bytes encoded before the
    first results (seen on a loaded machine: check_success 0 for a check with zero runs)."""
    encoder_may_run = threading.Event()
    # the encoder thread starts by lowering its priority: hold it there, as a busy CPU would
    monkeypatch.setattr("exporter.exposition.lower_priority", encoder_may_run.wait)
    runtime = runtime_for(node_tree("undersized"))
    async with TestClient(TestServer(make_app(runtime))) as client:
        before = samples(await (await client.get("/metrics")).text())
        assert before[("kubev_check_success", (("check", "disk"),))] == 0
        await run_all(runtime)
        assert runtime.snapshot.ready  # every check has run...
        stale = samples(await (await client.get("/metrics")).text())
        assert stale[("kubev_check_success", (("check", "disk"),))] == 0  # ...not yet served
        assert await ready_status(client) == 503
        encoder_may_run.set()
        await eventually(lambda: ready_status(client), 200)
        served = samples(await (await client.get("/metrics")).text())
        for check in runtime.checks:
            runs = served[
                ("kubev_check_runs_total", (("check", check.name), ("result", "success")))
            ]
            failures = served[
                ("kubev_check_runs_total", (("check", check.name), ("result", "failure")))
            ]
            assert runs + failures == 1, check.name


async def test_html_escapes_node_data(node_tree: NodeTree, runtime_for: RuntimeFor) -> None:
    hostile = Config(node_name="<script>alert(1)</script>", profile=Profile.TESTING)
    runtime = runtime_for(node_tree("broken"), hostile)
    await run_all(runtime)
    async with TestClient(TestServer(make_app(runtime))) as client:
        html = await (await client.get("/")).text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "meminfo" in html  # the failing check's reason is shown


#: what a socket or netlink call raises when the kernel gives up on a peer
ETIMEDOUT = TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))


class _EtimedoutCheck(Check[KvmSettings]):
    """Raises ETIMEDOUT at once, as a socket or netlink call inside a check can. The real
    sources cannot be made to do that on demand here, hence this minimal check."""

    name = "kvm"

    async def run(self) -> CheckOutput:
        raise ETIMEDOUT


async def test_a_timeout_inside_the_check_is_a_failure_not_a_check_timeout() -> None:
    cfg = Config()
    runtime = Runtime(cfg, [_EtimedoutCheck(cfg, Paths())])
    state = await runtime.run_once(runtime.checks[0])
    assert state.runs["failure"] == 1 and state.runs["timeout"] == 0
    # the error names the exception and says what it said, not "timed out after 5s"
    assert state.error == f"TimeoutError: {ETIMEDOUT}"


async def test_a_failing_listener_does_not_stop_the_checks(
    node_tree: NodeTree, runtime_for: RuntimeFor, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = runtime_for(node_tree("undersized"))

    def broken(snapshot: object) -> None:
        raise RuntimeError("listener bug")

    runtime.subscribe(broken)
    state = await runtime.run_once(runtime.checks[0])
    assert state.success
    assert runtime.snapshot.generation == 1
    assert "snapshot listener failed" in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True),
        ("gzip, deflate", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


async def test_warm_encodes_off_the_loop_and_serves_the_result(
    node_tree: NodeTree, runtime_for: RuntimeFor
) -> None:
    runtime = runtime_for(node_tree("undersized"))
    exposition = Exposition(IDENTITY)
    runtime.subscribe(exposition.warm)
    await run_all(runtime)
    generation = runtime.snapshot.generation

    async def encoded_generation() -> int | None:
        with exposition._lock:
            ready = exposition._ready
        return None if ready is None else ready.generation

    # the encoder thread (at nice 10) catches up within milliseconds on an idle machine
    await eventually(encoded_generation, generation)
    first, _ = exposition.render(runtime.snapshot, PROMETHEUS_ACCEPT, gzipped=True)
    again, _ = exposition.render(runtime.snapshot, PROMETHEUS_ACCEPT, gzipped=True)
    assert again is first
    assert b"kubev_cpu_logical_cores 4.0" in gzip.decompress(first)


class _VirtualClock(selectors.BaseSelector):
    """The selector of a VirtualTimeLoop: it never waits. When nothing is ready, it moves
    the clock on to the loop's next timer instead of sleeping until then."""

    def __init__(self) -> None:
        self.now = 0.0
        self._real = selectors.DefaultSelector()

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if not ready and timeout is None:
            raise AssertionError("the loop would wait forever: nothing is scheduled")
        if not ready and timeout:
            self.now += timeout
        return ready

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: sleeps and timeouts take no real time, and what
    runs when depends on the code alone, not on how busy the machine is."""

    def __init__(self) -> None:
        self.clock = _VirtualClock()
        super().__init__(self.clock)

    def time(self) -> float:
        return self.clock.now


class _Recording(Check[CheckSettings]):
    """Records when it runs. The scheduler is under test here, not a check, so these
    checks read nothing: each takes 30 ms and notes when it began and ended."""

    runs: ClassVar[list[tuple[str, float, float]]] = []

    async def run(self) -> CheckOutput:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        await asyncio.sleep(0.03)
        self.runs.append((self.name, begun, loop.time()))
        return CheckOutput()


def test_checks_keep_apart_after_the_first_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four checks with the same interval: all run at once at start (so /-/ready comes
    soon), then each in its own phase, so their threads do not compete with each other
    and with the scrapes. On a virtual clock (the runtime's included): the schedule is
    under test, not how soon a busy machine gets round to it."""
    loop = VirtualTimeLoop()
    monkeypatch.setattr(
        exporter.runtime, "time", SimpleNamespace(monotonic=loop.time, time=time.time)
    )
    names = ("kvm", "compute", "disk", "network")
    cfg = Config()
    for name in names:
        cfg = cfg.with_check(name, interval=0.4, timeout=0.4)
    checks = [type(f"Recording_{n}", (_Recording,), {"name": n})(cfg, Paths()) for n in names]
    _Recording.runs = []
    runtime = Runtime(cfg, checks)

    async def five_runs_each() -> bool:  # the first round and four more
        return all(sum(n == name for n, _, _ in _Recording.runs) >= 5 for name in names)

    async def scenario() -> None:
        runtime.start()
        try:
            await eventually(five_runs_each, True)
        finally:
            await runtime.stop()

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    runs = list(_Recording.runs)
    firsts = {name: min(b for n, b, _ in runs if n == name) for name in names}
    assert max(firsts.values()) - min(firsts.values()) < 0.02  # the first round: together
    later = sorted((b, e) for n, b, e in runs if b > firsts[n])
    assert len(later) >= 4 * 4
    overlaps = [(a, b) for a, b in itertools.pairwise(later) if b[0] < a[1]]
    assert overlaps == [], f"checks ran at the same time: {overlaps}"
    for name in names:  # and none ran again sooner than its interval
        begins = sorted(b for n, b, _ in runs if n == name)
        assert min(b - a for a, b in itertools.pairwise(begins)) > 0.38, name


async def test_blocking_work_runs_below_the_serving_thread() -> None:
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    gate = BlockingGate("kvm")
    seen = await gate.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert seen == min(19, own + BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
    # work that measures a latency keeps the priority of the thread that started it
    timed = BlockingGate("disk-/var/lib/kubelet", timed=True)
    seen = await timed.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert seen == own


async def test_gc_tuned_and_heap_frozen_after_the_first_round(
    node_tree: NodeTree, runtime_for: RuntimeFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first full round leaves the heap frozen (later collections skip it) and the
    young threshold raised: see exporter/gctune.py for the stalls this removes."""
    before = gc.get_threshold()
    gc.unfreeze()
    freezes: list[int] = []
    real_freeze = gc.freeze

    def counted_freeze() -> None:
        freezes.append(1)
        real_freeze()

    monkeypatch.setattr(gc, "freeze", counted_freeze)
    try:
        runtime = runtime_for(node_tree("undersized"))
        gctune.tune(runtime)
        assert gc.get_threshold()[0] == gctune.GEN0_THRESHOLD
        await runtime.run_once(runtime.checks[0])
        assert gc.get_freeze_count() == 0  # not every check has run yet
        await run_all(runtime)
        assert gc.get_freeze_count() > 10_000
        await run_all(runtime)
        assert len(freezes) == 1  # once, not after every round
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
