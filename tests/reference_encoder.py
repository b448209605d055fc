"""prometheus_client's encoders, the reference the exporter's own encoder is held to.

prometheus_client is the reference implementation of both formats in Python; the
exporter's encoder exists only because prometheus_client's is ~10x slower per sample
(docs/performance.md). tests/unit/test_encoder.py compares the two byte for byte;
bench/test_encode.py times them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector

from exporter.checks import CATALOG
from exporter.encoder import assemble, bucket_bound, sample_lines
from exporter.metrics import MetricDef
from exporter.model import HistogramSample, Sample

#: prometheus_client's OpenMetrics encoder (its module carries no annotations)
openmetrics_latest: Callable[[Collector], bytes] = openmetrics_exposition.generate_latest


def reference_family(metric: MetricDef, samples: Sequence[Sample | HistogramSample]) -> Metric:
    """The samples as prometheus_client metric families (how the exporter encoded before)."""
    labels = list(metric.labels)
    family: GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
    if metric.type == "histogram":
        family = HistogramMetricFamily(metric.name, metric.help, labels=labels)
        for h in samples:
            assert isinstance(h, HistogramSample)
            buckets = [(bucket_bound(bound), count) for bound, count in h.buckets]
            family.add_metric(list(h.labels), buckets, h.total)
        return family
    if metric.type == "counter":
        family = CounterMetricFamily(metric.name, metric.help, labels=labels)
    else:
        family = GaugeMetricFamily(metric.name, metric.help, labels=labels)
    for s in samples:
        assert isinstance(s, Sample)
        family.add_metric(list(s.labels), s.value)
    return family


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def reference(samples: Sequence[Sample | HistogramSample], openmetrics: bool) -> bytes:
    """prometheus_client's encoding of the samples, families in catalog order."""
    grouped: dict[str, list[Sample | HistogramSample]] = {}
    for s in samples:
        grouped.setdefault(s.metric.name, []).append(s)
    families = _Families(
        [reference_family(m, grouped[m.name]) for m in CATALOG if m.name in grouped]
    )
    return openmetrics_latest(families) if openmetrics else generate_latest(families)


def ours(samples: Sequence[Sample | HistogramSample], openmetrics: bool) -> bytes:
    """The exporter's encoding of the same samples."""
    return assemble(CATALOG, [sample_lines(samples, openmetrics)], openmetrics)
