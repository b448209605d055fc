"""Property-based tests: every parser of /proc, /sys, the config, the web config and scraped
OVN text either returns a sane value or raises its one documented error, whatever it reads."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.checks.compute import parse_meminfo, parse_stat_cpu
from exporter.checks.cpuinfo import parse_cpuinfo
from exporter.checks.disk import parse_diskstats
from exporter.checks.network import _speed_from_text
from exporter.checks.promtext import count_samples
from exporter.config import from_mapping
from exporter.fsread import read_text
from exporter.model import CheckError
from exporter.settings import ConfigError, parse_duration
from exporter.web.security import WebConfig, WebSecurity

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
garbage = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
proc_like = st.lists(
    st.one_of(
        garbage,
        st.builds(
            lambda k, v: f"{k}: {v}",
            st.sampled_from(
                ["processor", "flags", "physical id", "core id", "MemTotal", "MemAvailable"]
            ),
            garbage,
        ),
        st.builds(
            lambda ws: " ".join(ws),
            st.lists(st.one_of(st.integers(-5, 2**70).map(str), garbage), max_size=22),
        ),
    ),
    max_size=40,
).map("\n".join)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | garbage,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "profile",
                    "role",
                    "checks",
                    "kvm",
                    "disk",
                    "network",
                    "ports",
                    "ovn",
                    "dns",
                    "interval",
                    "timeout",
                    "devices",
                    "include",
                    "exclude",
                    "storage_paths",
                    "extra",
                    "expectations",
                    "names",
                    "cluster_names",
                    "cluster_dns",
                    "cluster_domain",
                    "kubelet_config",
                    "max_items",
                    "port",
                    "component",
                    "node_address",
                    "tls",
                    "x",
                ]
            )
            | garbage,
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@SETTINGS
@given(proc_like)
def test_cpuinfo(text: str) -> None:
    try:
        info = parse_cpuinfo(text, "cpuinfo")
    except CheckError as e:
        assert str(e).startswith("cpuinfo:")
        return
    assert info.logical >= 1 and (info.physical is None or info.physical >= 1)


@SETTINGS
@given(proc_like)
def test_stat(text: str) -> None:
    try:
        times = parse_stat_cpu(text, "stat")
    except CheckError as e:
        assert str(e).startswith("stat:")
        return
    assert isinstance(times.idle, int) and isinstance(times.total, int)


@SETTINGS
@given(st.lists(st.integers(0, 2**40), min_size=8, max_size=10))
def test_stat_round_trip(ticks: list[int]) -> None:
    times = parse_stat_cpu("cpu  " + " ".join(map(str, ticks)) + "\n", "stat")
    assert times.total == sum(ticks[:8]) and times.idle == ticks[3] + ticks[4]


@SETTINGS
@given(proc_like)
def test_meminfo(text: str) -> None:
    try:
        values = parse_meminfo(text, "meminfo")
    except CheckError as e:
        assert str(e) == "meminfo: no MemTotal line"
        return
    # MemTotal is what the verdict needs; MemAvailable may be missing (kernels before 3.14)
    # and is then estimated by the check, not demanded by the parser
    assert "MemTotal" in values
    assert all(isinstance(v, int) for v in values.values())


@SETTINGS
@given(st.integers(0, 2**50), st.integers(0, 2**50))
def test_meminfo_round_trip(total: int, available: int) -> None:
    values = parse_meminfo(f"MemTotal: {total} kB\nMemAvailable:   {available} kB\n", "m")
    assert values["MemTotal"] == total * 1024 and values["MemAvailable"] == available * 1024


@SETTINGS
@given(proc_like)
def test_diskstats(text: str) -> None:
    try:
        devices, problems = parse_diskstats(text, "diskstats")
    except CheckError as e:
        assert str(e) == "diskstats: no line parses"
        return
    assert all(name and not any(ch.isspace() for ch in name) for name in devices)
    assert all(p.startswith("diskstats: line ") for p in problems)


@SETTINGS
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    st.lists(st.integers(0, 2**63), min_size=11, max_size=17),
)
def test_diskstats_round_trip(name: str, counters: list[int]) -> None:
    line = f"8 0 {name} " + " ".join(map(str, counters))
    devices, problems = parse_diskstats(line, "d")
    assert not problems
    c = devices[name]
    assert (c.reads, c.read_ms, c.writes, c.write_ms) == (
        counters[0],
        counters[3],
        counters[4],
        counters[7],
    )


@SETTINGS
@given(st.one_of(st.none(), garbage, st.integers(-(2**40), 2**40).map(str)))
def test_speed_is_never_negative(text: str | None) -> None:
    speed, reason = _speed_from_text(text, None)
    assert (speed is None and reason) or (speed is not None and speed > 0 and reason is None)


@SETTINGS
@given(json_like)
def test_config_accepts_or_names_the_problem(data: object) -> None:
    try:
        from_mapping(data)
    except ConfigError as e:
        assert str(e)  # a message, never a traceback


@SETTINGS
@given(st.one_of(garbage, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()))
def test_durations(value: object) -> None:
    try:
        seconds = parse_duration(value, "d")
    except ConfigError as e:
        assert str(e).startswith("d: must be")
        return
    assert seconds > 0


def sample_lines(text: str) -> int:
    """Lines of a Prometheus text body that hold a sample: not blank, not a comment."""
    return sum(1 for line in text.split("\n") if line.strip() and not line.strip().startswith("#"))


@SETTINGS
@given(st.one_of(st.binary(max_size=400), proc_like.map(str.encode)))
def test_scraped_ovn_text(body: bytes) -> None:
    """kubev_ovn_endpoint_samples is what the endpoint served: one per sample line, or the
    body is refused as not metrics (ValueError), never a count of something else."""
    try:
        count = count_samples(body)
    except ValueError:
        return
    assert count == sample_lines(body.decode())


metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(metric_names, st.lists(garbage, max_size=3), st.floats()),
        max_size=30,
    )
)
def test_scraped_ovn_text_counts_every_sample(
    served: list[tuple[str, list[str], float]],
) -> None:
    """A well-formed body (HELP and TYPE lines, escaped label values) is counted exactly."""
    lines = []
    for name, labels, number in served:
        lines += [f"# HELP {name} Some help.", f"# TYPE {name} untyped"]
        escaped = (v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for v in labels)
        pairs = ",".join(f'l{i}="{v}"' for i, v in enumerate(escaped))
        lines.append(f"{name}{{{pairs}}} {number!r}")
    assert count_samples("\n".join(lines).encode()) == len(served)


RIGHT = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))
GOOD_HEADER = "Basic " + base64.b64encode(b"prometheus:right").decode()


@SETTINGS
@given(
    st.one_of(
        garbage,
        st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
        st.sampled_from(["right", "wrong", "", "right ", "right:"]).map(
            lambda p: "Basic " + base64.b64encode(f"prometheus:{p}".encode()).decode()
        ),
    )
)
def test_authorization_header(header: str) -> None:
    security = WebSecurity(None)
    security.config = WebConfig(basic_auth_users={"prometheus": RIGHT})
    assert asyncio.run(security.allowed(header)) is (header == GOOD_HEADER)


def test_huge_proc_file_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "meminfo"
    huge.write_bytes(b"MemTotal: 1 kB\n" * 400_000)  # ~6 MiB
    with pytest.raises(CheckError, match="larger than 4194304 bytes"):
        read_text(huge)
