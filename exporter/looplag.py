"""How late the event loop runs: a tick every 250 ms, its delay into a histogram. A late
loop means late scrapes; this shows it in production, not only in benchmarks. (Four ticks
a second cost about 0.01% of a core.)"""

from __future__ import annotations

import asyncio

from exporter import metrics
from exporter.model import Histogram, HistogramSample

PERIOD = 0.25
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LoopLag:
    def __init__(self) -> None:
        self.histogram = Histogram(BUCKETS)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PERIOD)
            self.histogram.observe(max(0.0, loop.time() - started - PERIOD))

    def samples(self) -> list[HistogramSample]:
        h = self.histogram
        return [HistogramSample(metrics.LOOP_LAG, (), tuple(h.cumulative()), h.total, h.count)]
