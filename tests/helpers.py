"""Shared test helpers: fixture node trees, a real exporter process, scraping, waiting.

Plain functions and classes; the fixtures built on them are in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import kernel

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "nodes"
ARTIFACTS = ROOT / "test-artifacts"
IS_ROOT = os.geteuid() == 0

#: The profile each fixture shape is judged by in the end-to-end tests.
SHAPE_PROFILES = {
    "compliant": "production",
    "undersized": "testing",
    "broken": "production",
    "realistic": "production",
    "cloudvm": "testing",
}

#: How long a test waits for a state before it fails: only a failing test waits this long,
#: and a machine busy with other work (a CPU-bound neighbour, another test run) is slow
#: to start processes and runs the checks' threads at nice 10 behind everything else.
PATIENCE = 90.0

#: flags that leave only the compute check on: an exporter that is quick to start and reads
#: nothing but the fixture tree's /proc
ONLY_COMPUTE = [
    "--no-collector.kvm",
    "--no-collector.disk",
    "--no-collector.network",
    "--no-collector.ports",
    "--no-collector.ovn",
]


class RootMarker:
    """Whether the running test carries @pytest.mark.root (set by tests/conftest.py).

    What needs root (mknod, network namespaces) asks here first, so a test that needs
    root without the marker fails at once, also when it runs as root."""

    marked = False

    @classmethod
    def require(cls, what: str) -> None:
        if not cls.marked:
            raise AssertionError(f"{what} needs root: mark the test @pytest.mark.root")


def make_node_tree(shape: str, parent: Path, *, kvm_device: bool | None = None) -> Path:
    """A private copy of a fixture tree under `parent`, with the kernel facts
    tests/fixtures/kernel.py adds to the shapes, the device-plugin sockets, and the
    character devices git cannot hold.

    `kvm_device` (by default: the shapes that have them, compliant and realistic) makes the
    shape's device nodes (KVM 10:232, and on the compliant node tun 10:200 and vhost-net
    10:238): opening one reaches this machine's driver, exactly as the node's own would.
    Making them takes root; a test of a check that never looks at /dev can do without.
    """
    target = parent / shape
    shutil.copytree(FIXTURES / shape, target)
    (target / "dev").mkdir(exist_ok=True)
    (target / "root").mkdir(exist_ok=True)
    kernel.write(target, kernel.files(shape))
    for rel in kernel.sockets(shape):
        kernel.make_socket(target, rel)
    devices = kernel.device_nodes(shape)
    if devices and (kvm_device if kvm_device is not None else True):
        RootMarker.require("device nodes (mknod)")
        for device in devices:
            if not (target / kernel.DEVICE_PATHS[device]).exists():
                kernel.make_device(target, device)
    return target


class NodeTree(Protocol):
    """The `node_tree` fixture: make_node_tree in the test's tmp_path."""

    def __call__(self, shape: str, *, kvm_device: bool | None = None) -> Path: ...


async def eventually(
    probe: Callable[[], Awaitable[object]], expected: object, within: float = PATIENCE
) -> None:
    """Wait until `await probe()` returns `expected` (polls; a busy machine may take a
    while, so the bound is generous and the test asserts the state, not a duration)."""
    got: object = None
    try:
        async with asyncio.timeout(within):
            while (got := await probe()) != expected:  # noqa: ASYNC110 (polls a server)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"still {got!r} after {within}s, waiting for {expected!r}") from None


def wait_until(
    probe: Callable[[], T | None], what: str, within: float = PATIENCE, every: float = 0.05
) -> T:
    """Poll `probe()` until it returns something true (a non-empty result, True); return
    that. Fails naming `what` after `within` seconds (generous: only a failing test waits
    so long). Exceptions from the probe propagate."""
    deadline = time.monotonic() + within
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g}s")
        time.sleep(every)


def answers(url: str) -> bool:
    """True once a GET of `url` returns 200 (a server that is up and ready)."""
    try:
        return http_get(url).status == 200
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@dataclass
class Scrape:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Scrape:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Scrape(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as e:
        return Scrape(e.code, dict(e.headers), e.read())


def netns_get(netns: str, url: str) -> Scrape:
    """GET from inside a network namespace (curl run there)."""
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "curl",
            "-s",
            "--max-time",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"curl in {netns}: exit {done.returncode}")
    body, _, code = done.stdout.rpartition(b"\n")
    return Scrape(int(code), {}, body)


@contextlib.contextmanager
def network_namespace() -> Iterator[str]:
    """A namespace of the test's own, loopback up, deleted afterwards."""
    RootMarker.require("a network namespace")
    name = f"kvt-{os.getpid()}-{time.monotonic_ns() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip(name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def background(args: Sequence[str], netns: str | None = None) -> Iterator[None]:
    """A helper process of the tests (tests.listeners, tests.httpstub) that prints "ready"
    once it serves; killed on exit."""
    wrap = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def veth_pair(netns: str, address: str | None = None) -> None:
    """kva <-> kvb inside the namespace, both up; `address` (CIDR) on kva."""
    ip(netns, "link", "add", "kva", "type", "veth", "peer", "name", "kvb")
    if address:
        ip(netns, "addr", "add", address, "dev", "kva")
    ip(netns, "link", "set", "kva", "up")
    ip(netns, "link", "set", "kvb", "up")


def only(check: str) -> list[str]:
    """Flags that turn every other check off."""
    from exporter.checks import CHECKS

    return [f"--no-collector.{name}" for name in CHECKS if name != check]


def check_config(tmp_path: Path, check: str, body: str) -> str:
    """A --config.file flag for a file with `body` (indented keys) under checks.<check>."""
    path = tmp_path / f"{check}.yaml"
    path.write_text(f"checks:\n  {check}:\n" + body)
    return f"--config.file={path}"


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text -> {(sample name, sorted labels): value}, parsed by prometheus_client."""
    result = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def value(text: str, metric: str, /, **labels: str) -> float | None:
    return samples(text).get((metric, tuple(sorted(labels.items()))))


class Exporter:
    """The real exporter as a child process on a free loopback port.

    Hermetic by default: the network probes target 127.0.0.1 (NODE_IP) and the DNS check
    is off, so a test never sends a packet beyond loopback. DNS is tested against dnsmasq
    in a namespace of the test's own.

    Its stderr (the log) is read as it comes: log() while it runs, stderr once stopped.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        wrap: Sequence[str] = (),
        env: dict[str, str] | None = None,
        netns: str | None = None,
        dns: bool = False,
    ) -> None:
        self.netns = netns
        if netns is not None:
            wrap = ["ip", "netns", "exec", netns, *wrap]
        if not dns:
            args = [*args, "--no-collector.dns"]
        env = {"NODE_IP": "127.0.0.1", **(env or {})}
        # in a namespace of its own the port is fixed: nothing else listens there
        self.port = 19100 if netns is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            *wrap,
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        self._lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    def log(self) -> str:
        """What the exporter has logged so far."""
        return b"".join(list(self._lines)).decode()

    def get(self, path: str = "/metrics", headers: dict[str, str] | None = None) -> Scrape:
        if self.netns is not None:
            return netns_get(self.netns, self.url + path)
        return http_get(self.url + path, headers)

    def metrics(self) -> str:
        response = self.get("/metrics")
        assert response.status == 200
        return response.text

    def wait_ready(self, timeout: float = PATIENCE) -> None:
        """Until /-/ready answers 200: /metrics then serves every enabled check's first
        result."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.stop()}")
            try:
                return self.get("/-/ready").status == 200
            except OSError:
                return False

        try:
            wait_until(ready, "exporter ready", within=timeout)
        except AssertionError as e:
            if self.proc.poll() is None:
                raise AssertionError(f"{e}: {self.stop()}") from None
            raise

    def wait_listening(self, within: float = PATIENCE) -> None:
        """Until the port accepts a TCP connection (for an exporter serving TLS, whose
        /-/ready a plain HTTP client cannot ask)."""

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.stop()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        try:
            wait_until(listening, "the exporter listening", within=within)
        except AssertionError as e:
            if self.proc.poll() is None:
                raise AssertionError(f"{e}: {self.stop()}") from None
            raise

    def wait_for(
        self, predicate: Callable[[str], bool], what: str, within: float = PATIENCE
    ) -> str:
        """Scrape until `predicate(text)` holds; the text that satisfied it."""

        def scrape() -> str | None:
            text = self.metrics()
            return text if predicate(text) else None

        return wait_until(scrape, what, within)

    def wait_for_log(self, text: str, within: float = PATIENCE) -> None:
        wait_until(lambda: text in self.log(), f"{text!r} in the exporter's log", within)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("exporter did not stop on signal") from None
        finally:
            self._reader.join(timeout=timeout)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        self.stderr = self.log()
        return self.stderr

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    wrap: Sequence[str] = (),
    env: dict[str, str] | None = None,
    netns: str | None = None,
    dns: bool = False,
) -> Iterator[Exporter]:
    """A ready exporter (see Exporter.wait_ready), stopped on exit (its log in .stderr)."""
    exporter = Exporter(args, wrap=wrap, env=env, netns=netns, dns=dns)
    try:
        exporter.wait_ready()
        yield exporter
    finally:
        exporter.stop()


def fixture_args(tree: Path, config: Path | None = None) -> list[str]:
    args = [
        f"--path.procfs={tree / 'proc'}",
        f"--path.sysfs={tree / 'sys'}",
        f"--path.rootfs={tree / 'root'}",
        f"--path.dev={tree / 'dev'}",
    ]
    if config is not None:
        args.append(f"--config.file={config}")
    return args


def chromium(url: str, tmp: Path, *action: str) -> str:
    """Headless Debian Chromium on a page of ours (--dump-dom, --screenshot=...); no network
    beyond loopback: background networking, updates, sync and QUIC are off."""
    flags = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium'}",
    ]
    done = subprocess.run(
        [*flags, *action, url], check=True, capture_output=True, text=True, timeout=120
    )
    return done.stdout


def gunzip(body: bytes) -> bytes:
    return gzip.decompress(body)


def metrics_when(exporter: Exporter, predicate: Callable[[str], bool], within: float = 30.0) -> str:
    """Scrape until `predicate(text)` holds (a state the test waits for, such as a run
    count); the last scrape's text. Fails with the last text's relevant lines otherwise."""
    deadline = time.monotonic() + within
    text = exporter.metrics()
    while not predicate(text):
        if time.monotonic() > deadline:
            raise AssertionError(f"no scrape met the condition within {within}s:\n{text}")
        time.sleep(0.1)
        text = exporter.metrics()
    return text


def runs(text: str, check: str, result: str = "success") -> float:
    """kubev_check_runs_total of a check in a scrape (0 when absent)."""
    return value(text, "kubev_check_runs_total", check=check, result=result) or 0.0
