"""The Prometheus text format (0.0.4) and OpenMetrics (1.0), encoded for this catalog.

prometheus_client's encoders build a Metric and a Sample object (with a label dict) per
value and validate every name on every call: about 16 us a sample, 100 ms for a node with
a thousand ports, all of it holding the interpreter lock the event loop needs. This encoder
knows the catalog: names are checked once, when a metric is first encoded, and each
metric's sample line is a format string with its labels already in the sorted order
prometheus_client writes, so a sample costs one escape per label value and one format.

The output is byte-identical to prometheus_client's for the same samples; the unit tests
compare the two on every metric of the catalog and on generated label values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from exporter.metrics import MetricDef
from exporter.model import HistogramSample, Sample

#: no colons: they are for recording rules, and prometheus_client rewrites them in samples
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INF = math.inf


def go_float(value: float) -> str:
    """A float as Go's strconv writes it (what prometheus_client's floatToGoString does)."""
    value = float(value)
    if value == _INF:
        return "+Inf"
    if value == -_INF:
        return "-Inf"
    if value != value:
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def bucket_bound(bound: float) -> str:
    """A histogram bucket's `le` label value."""
    return "+Inf" if bound == _INF else repr(bound)


_NEEDS_ESCAPE = re.compile(r'[\\\n"]').search
#: the value most samples have (a true boolean). Not 0.0: -0.0 would look it up too
_COMMON = {1.0: "1.0"}


def escape_label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _template(name: str, labels: tuple[str, ...]) -> str:
    """`name{a="{0}",b="{1}"} ` with the labels in name order, as a str.format template
    taking the values in the metric's own order."""
    if not labels:
        return name + " "
    pairs = sorted((label, i) for i, label in enumerate(labels))
    inner = ",".join(f'{label}="{{{i}}}"' for label, i in pairs)
    return f"{name}{{{{{inner}}}}} "


@dataclass(frozen=True)
class Layout:
    """How one metric is written in one format: its header lines and sample templates."""

    header: str
    line: str  # gauge and counter samples
    bucket: str  # histogram: _bucket, with `le` as the last format argument
    count: str
    sum: str


@cache
def layout(metric: MetricDef, openmetrics: bool) -> Layout:
    if not _NAME.fullmatch(metric.name):
        raise ValueError(f"metric name {metric.name!r} is not a Prometheus name")
    for label in metric.labels:
        if not _LABEL.fullmatch(label) or label.startswith("__") or label == "le":
            raise ValueError(f"{metric.name}: label name {label!r} is not allowed")
    family = metric.name
    sample = metric.name
    kind = metric.type
    if kind == "counter":
        family = metric.name.removesuffix("_total")
        sample = family + "_total"
        if not openmetrics:
            family = sample
    if openmetrics:
        help_ = metric.help.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    else:
        help_ = metric.help.replace("\\", r"\\").replace("\n", r"\n")
    return Layout(
        header=f"# HELP {family} {help_}\n# TYPE {family} {kind}\n",
        line=_template(sample, metric.labels),
        bucket=_template(sample + "_bucket", (*metric.labels, "le")),
        count=_template(sample + "_count", metric.labels),
        sum=_template(sample + "_sum", metric.labels),
    )


def sample_lines(samples: Iterable[Sample | HistogramSample], openmetrics: bool) -> dict[str, str]:
    """metric name -> the lines of these samples, in their order (no header)."""
    lines: dict[str, list[str]] = {}
    shapes: dict[str, tuple[Layout, list[str]]] = {}
    for s in samples:
        entry = shapes.get(s.metric.name)
        if entry is None:
            entry = shapes[s.metric.name] = (layout(s.metric, openmetrics), [])
            lines[s.metric.name] = entry[1]
        shape, out = entry
        values: Sequence[str] = s.labels
        if _NEEDS_ESCAPE("".join(values)):
            values = [escape_label_value(v) for v in values]
        if type(s) is Sample:
            value = s.value
            out.append(f"{shape.line.format(*values)}{_COMMON.get(value) or go_float(value)}\n")
            continue
        assert isinstance(s, HistogramSample)
        for bound, count in s.buckets:
            out.append(f"{shape.bucket.format(*values, bucket_bound(bound))}{go_float(count)}\n")
        if s.buckets and s.buckets[0][0] >= 0:  # as prometheus_client: count is +Inf's
            out.append(f"{shape.count.format(*values)}{go_float(s.buckets[-1][1])}\n")
            out.append(f"{shape.sum.format(*values)}{go_float(s.total)}\n")
    return {name: "".join(parts) for name, parts in lines.items()}


def assemble(
    catalog: Iterable[MetricDef], groups: Iterable[dict[str, str]], openmetrics: bool
) -> bytes:
    """One exposition from groups of encoded lines: each metric's header, then its lines
    from every group in group order, metrics in catalog order."""
    groups = list(groups)
    parts: list[str] = []
    for metric in catalog:
        chunks = [g[metric.name] for g in groups if metric.name in g]
        if chunks:
            parts.append(layout(metric, openmetrics).header)
            parts.extend(chunks)
    if openmetrics:
        parts.append("# EOF\n")
    return "".join(parts).encode("utf-8")
