"""The streaming Prometheus text reader: what it accepts and refuses, that chunking never
changes what it reads, that it agrees with prometheus_client on valid text, and that its
memory does not grow with the body."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.checks.promtext import Kept, TextReader, count_samples
from tests.httpstub import BIG_OVN_BYTES, ovn_body, ovn_body_samples


def read(body: bytes, *wanted: str, chunk: int | None = None) -> TextReader:
    reader = TextReader(wanted)
    step = chunk or max(1, len(body))
    for at in range(0, len(body), step):
        reader.feed(body[at : at + step])
    reader.close()
    return reader


@pytest.mark.parametrize(
    ("body", "samples"),
    [
        (b"", 0),
        (b"\n\n", 0),
        (b"# just a comment\n# another one\n", 0),
        (b"# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n", 1),
        (b"up 1", 1),  # no final newline
        (b"up 1\r\n", 1),
        (b'a{b="c",} NaN 1700000000000\n', 1),  # trailing comma, timestamp
        (b"a{} +Inf\na -Inf\n", 2),
        (b'a{b="\\\\ \\" \\n"} -1.5e3\n', 1),  # the three escapes
        (b'  a { b = "c" }\t2\n', 1),  # blanks where expfmt allows them
        (b'a_bucket{le="0.5"} 1\na_bucket{le="+Inf"} 2\na_sum 3\na_count 2\n', 4),
        ('a{b="ünïcødé"} 1\n'.encode(), 1),
        (b"#HELPER is only a comment\n", 0),
    ],
)
def test_accepts(body: bytes, samples: int) -> None:
    assert count_samples(body) == samples


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html><body>Welcome to nginx!</body></html>\n", "line 1: not a sample"),
        (b"up 1\n{broken\n", "line 2: not a sample"),
        (b'a{b="unclosed} 1\n', "line 1: not a sample"),
        (b'a{b="\\x"} 1\n', "line 1: not a sample"),  # not one of the three escapes
        (b"a 1 2 3\n", "line 1: not a sample"),
        (b"a one\n", "line 1: invalid sample value 'one'"),
        (b"a 1_000\n", "line 1: invalid sample value '1_000'"),  # Python's, not Go's
        (b"# TYPE a wobbly\n", "line 1: malformed TYPE"),
        (b"# HELP\n", "line 1: malformed HELP"),
        (b"# HELP 0bad name\n", "line 1: malformed HELP"),
        (b"a 1\n\xff\xfe 2\n", "invalid start byte"),
    ],
)
def test_refuses(body: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        count_samples(body)


def test_wanted_samples_are_kept_with_their_labels() -> None:
    body = (
        b"# TYPE checksum_err_count gauge\n"
        b'checksum_err_count{hostname="node-1"} 7\n'
        b'ip_local_port_range{end="60999",hostname="node-1",start="30000"} 1\n'
        b'other{a="\\"quoted\\""} 3\n'
        b'other{a="x"} 4\n'
    )
    reader = read(body, "checksum_err_count", "ip_local_port_range", "other")
    assert reader.scan.samples == 4
    assert reader.scan.kept["checksum_err_count"] == [Kept({"hostname": "node-1"}, 7.0)]
    assert reader.scan.kept["ip_local_port_range"][0].labels["start"] == "30000"
    assert [k.labels["a"] for k in reader.scan.kept["other"]] == ['"quoted"', "x"]


def test_keeps_only_so_many_of_one_name() -> None:
    body = b"".join(b'x{i="%d"} 1\n' % i for i in range(100))
    reader = TextReader(["x"], keep=3)
    reader.feed(body)
    scan = reader.close()
    assert scan.samples == 100 and [k.labels["i"] for k in scan.kept["x"]] == ["0", "1", "2"]


def test_line_and_sample_bounds() -> None:
    long_line = b'a{b="' + b"x" * 2000 + b'"} 1\n'
    with pytest.raises(ValueError, match="line 1 is longer than 1000 bytes"):
        TextReader(max_line=1000).feed(long_line)
    # an unfinished line is refused as soon as it passes the bound, not at the end
    reader = TextReader(max_line=1000)
    with pytest.raises(ValueError, match="longer than 1000 bytes"):
        for _ in range(10):
            reader.feed(b"y" * 200)
    many = TextReader(max_samples=5)
    with pytest.raises(ValueError, match="more than 5 samples"):
        many.feed(b"a 1\n" * 6)


name = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_name = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: not n.startswith("__")
)
label_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\x85\u2028\u2029"), max_size=12
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def exposition(draw: st.DrawFn) -> str:
    """Valid text format: families of a type, with HELP, samples with labels and values."""
    lines = []
    for family in draw(st.lists(name, min_size=0, max_size=5, unique=True)):
        lines.append(f"# HELP {family} {draw(st.text(alphabet='abc xyz', max_size=10))}")
        lines.append(f"# TYPE {family} {draw(st.sampled_from(['gauge', 'counter', 'untyped']))}")
        suffix = "_total" if lines[-1].endswith("counter") else ""
        for _ in range(draw(st.integers(0, 4))):
            labels = draw(st.dictionaries(label_name, label_value, max_size=3))
            inside = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
            number = draw(st.floats(allow_nan=False, allow_infinity=True))
            lines.append(f"{family}{suffix}{{{inside}}} {number!r}".replace("inf", "Inf"))
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(exposition(), st.integers(1, 64))
def test_agrees_with_prometheus_client(text: str, chunk: int) -> None:
    """On valid text the streaming count equals prometheus_client's, however it is cut."""
    theirs = sum(len(f.samples) for f in text_string_to_metric_families(text))
    assert read(text.encode(), chunk=chunk).scan.samples == theirs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_chunking_never_changes_the_outcome(body: bytes, chunk: int) -> None:
    """Whole or in pieces: the same count, or the same refusal."""

    def outcome(step: int | None) -> object:
        try:
            return read(body, chunk=step).scan.samples
        except ValueError:
            return "refused"

    assert outcome(chunk) == outcome(None)


def test_memory_does_not_grow_with_the_body() -> None:
    """A 4 MB kube-ovn-cni body, fed in 64 KiB chunks as the probe does: the reader's peak
    is a few chunks, not the body (prometheus_client's model took over 100 MiB)."""
    body = ovn_body(BIG_OVN_BYTES).encode()
    chunk = 64 * 1024
    reader = TextReader(["checksum_err_count"])
    tracemalloc.start()
    try:
        for at in range(0, len(body), chunk):
            reader.feed(body[at : at + chunk])  # the slice is the chunk the network gives
        scan = reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.samples == ovn_body_samples(BIG_OVN_BYTES)
    assert peak < 8 * chunk, f"peak {peak} bytes for a {len(body)}-byte body"
