"""A soak: 10,000 scrapes on one keep-alive connection, RSS sampled along the way. The
exporter serves cached bytes, so its memory must stay flat (under 5% growth)."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import pytest

from tests.helpers import NodeTree, fixture_args, running


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1))


@pytest.mark.root
@pytest.mark.slow
def test_ten_thousand_scrapes_keep_memory_flat(node_tree: NodeTree, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("checks:\n  compute: {interval: 1s}\n  network: {interval: 1s}\n")
    with running([*fixture_args(node_tree("compliant"), config)]) as exporter:
        conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
        samples = []
        for i in range(10_000):
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if i % 1000 == 999:
                samples.append(rss_kib(exporter.proc.pid))
        conn.close()
    warm = samples[1]  # after the first thousand: caches, buffers and pools are in place
    assert max(samples[1:]) <= warm * 1.05, f"RSS KiB per 1,000 scrapes: {samples}"
