"""Encoding cost per format: the exporter's encoder beside prometheus_client's, on the
samples of a node with 1,000 configured ports (4,000 samples), with pytest-benchmark.

    .venv/bin/python -m pytest bench/test_encode.py --benchmark-only     # about 30 s

tests/integration/test_bench_harness.py runs it with --benchmark-disable (each once, no
timing) to prove it works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from exporter.checks import ports as ports_check
from exporter.model import HistogramSample, Sample
from tests.reference_encoder import ours, reference


def port_samples(ports: int) -> list[Sample | HistogramSample]:
    """What the ports check emits for `ports` TCP ports."""
    out: list[Sample | HistogramSample] = []
    for i in range(ports):
        labels = ("bench", str(21000 + i), "tcp")
        out.append(Sample(ports_check.PORT_UP, labels, 1.0))
        out.append(Sample(ports_check.PORT_LISTENING, labels, 1.0))
        out.append(Sample(ports_check.PORT_EXPECTED, labels, float(i % 2)))
        out.append(Sample(ports_check.PORT_CONNECT_DURATION, labels[:2], 0.000123 + i * 1e-7))
    return out


SAMPLES = port_samples(1000)
ENCODERS: dict[str, Callable[[list[Sample | HistogramSample], bool], bytes]] = {
    "exporter": ours,
    "prometheus_client": reference,
}


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_encode_4000_samples(benchmark: Any, encoder: str, openmetrics: bool) -> None:
    benchmark.group = "openmetrics" if openmetrics else "text"
    body = benchmark(ENCODERS[encoder], SAMPLES, openmetrics)
    assert body == reference(SAMPLES, openmetrics)
