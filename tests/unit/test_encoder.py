"""The exposition encoder against prometheus_client's (tests/reference_encoder.py): byte
for byte, both formats, on every metric of the catalog, with label values and numbers
hypothesis makes up, and on whole snapshots of fixture nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import utils as prometheus_utils
from prometheus_client.core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser

from exporter.checks import CATALOG
from exporter.encoder import go_float, sample_lines
from exporter.exposition import Exposition, self_samples
from exporter.metrics import MetricDef
from exporter.model import HistogramSample, Sample
from tests.checkrun import IDENTITY, RuntimeFor, run_all
from tests.helpers import NodeTree
from tests.reference_encoder import ours, reference

#: prometheus_client's OpenMetrics parser and Go float formatting (untyped modules)
openmetrics_families: Callable[[str], Iterator[Metric]] = (
    openmetrics_parser.text_string_to_metric_families
)
float_to_go_string: Callable[[float], str] = prometheus_utils.floatToGoString

label_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), max_size=12
) | st.sampled_from(['a"b', "c\\d", "e\nf", "", "{}", "}{0}", "eth0", "/var/lib/kubelet"])
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1.0, 1e6, 1234567.0, 12345678.9, 1e-7, 0.1, 1e22, -5e9, 3.0]
)
BOUNDS = (0.001, 0.005, 0.01, 0.1, 1.0, 10.0, math.inf)
#: a first bound below zero: prometheus_client then writes no _count and _sum
NEGATIVE_BOUNDS = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, math.inf)


@st.composite
def catalog_samples(draw: st.DrawFn) -> list[Sample | HistogramSample]:
    out: list[Sample | HistogramSample] = []
    for metric in draw(st.lists(st.sampled_from(CATALOG), min_size=1, max_size=6)):
        for _ in range(draw(st.integers(1, 3))):
            labels = tuple(draw(label_values) for _ in metric.labels)
            if metric.type == "histogram":
                counts = sorted(draw(st.lists(st.integers(0, 10**6), min_size=7, max_size=7)))
                bounds = draw(st.sampled_from([BOUNDS, NEGATIVE_BOUNDS]))
                out.append(
                    HistogramSample(
                        metric,
                        labels,
                        tuple(zip(bounds, counts, strict=True)),
                        draw(st.floats(0, 1e6)),
                        counts[-1],
                    )
                )
            else:
                out.append(Sample(metric, labels, draw(numbers)))
    return out


@settings(max_examples=300, deadline=None)
@given(samples=catalog_samples(), openmetrics=st.booleans())
def test_byte_identical_to_prometheus_client(
    samples: list[Sample | HistogramSample], openmetrics: bool
) -> None:
    assert ours(samples, openmetrics) == reference(samples, openmetrics)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20))
def test_go_float_matches_prometheus_client(value: float) -> None:
    assert go_float(value) == float_to_go_string(value)


def test_every_catalog_metric_both_formats() -> None:
    """One sample of every metric, awkward label values, through both encoders and back
    through the OpenMetrics parser."""
    samples: list[Sample | HistogramSample] = []
    for metric in CATALOG:
        labels = tuple(f'v"{i}\\\n' for i, _ in enumerate(metric.labels))
        if metric.type == "histogram":
            buckets = tuple((b, i) for i, b in enumerate(BOUNDS))
            samples.append(HistogramSample(metric, labels, buckets, 2.5, 6))
        else:
            samples.append(Sample(metric, labels, 42.0))
    for openmetrics in (False, True):
        assert ours(samples, openmetrics) == reference(samples, openmetrics)
    parsed = {f.name for f in openmetrics_families(ours(samples, True).decode())}
    assert parsed == {m.name.removesuffix("_total") for m in CATALOG}


def test_a_bad_name_is_refused_before_any_output() -> None:
    bad = MetricDef("kubev bad", "gauge", "help", (), "test")
    with pytest.raises(ValueError, match="kubev bad"):
        sample_lines([Sample(bad, (), 1.0)], False)
    reserved = MetricDef("kubev_ok", "gauge", "help", ("le",), "test")
    with pytest.raises(ValueError, match="'le'"):
        sample_lines([Sample(reserved, ("1",), 1.0)], False)


@pytest.mark.parametrize(
    "shape", [pytest.param("compliant", marks=pytest.mark.root), "undersized", "broken"]
)
async def test_whole_snapshot_matches_prometheus_client(
    node_tree: NodeTree, runtime_for: RuntimeFor, shape: str
) -> None:
    """The served body of a fixture node equals prometheus_client's encoding of the same
    snapshot, in both formats, also after one check re-ran (its lines are re-encoded, the
    other checks' come from the cache)."""
    runtime = runtime_for(node_tree(shape))
    identity = IDENTITY
    exposition = Exposition(identity)
    await run_all(runtime)
    for round_ in range(2):
        snapshot = runtime.snapshot
        samples: list[Sample | HistogramSample] = [*self_samples(snapshot, identity)]
        for state in snapshot.states.values():
            if state.output is not None:
                samples.extend(state.output.samples)
        for accept, openmetrics in (("", False), ("application/openmetrics-text", True)):
            body, _ = exposition.render(snapshot, accept, gzipped=False)
            assert body == reference(samples, openmetrics), (shape, round_, openmetrics)
        await runtime.run_once(runtime.checks[-1])
