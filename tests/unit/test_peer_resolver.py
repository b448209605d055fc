"""Peer discovery by name asks the cluster DNS that kubelet names, not the node's resolver
(the exporter's pod resolves through the node's, which knows no Service names); without a
kubelet config it falls back to the node's resolver. Real UDP servers on loopback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from exporter.checks.peerlist import cluster_dns_resolver
from exporter.model import CheckError
from tests.dnsmsg import a_record, answer
from tests.unit.dnsservers import serving

NAME = "kubev-node-exporter.kubev-monitoring.svc.cluster.local"


async def node_resolver(name: str) -> Sequence[str]:
    return ["192.0.2.99"]  # what the node's resolver would say: it must not be asked


async def test_asks_the_cluster_dns_kubelet_names(tmp_path: Path) -> None:
    script = lambda q: [answer(q, a_record("10.0.0.1"), a_record("10.0.0.2"))]  # noqa: E731
    async with serving(script) as server:
        config = tmp_path / "config.yaml"
        config.write_text("clusterDNS: [127.0.0.1]\nclusterDomain: cluster.local\n")
        resolve = cluster_dns_resolver(config, 5.0, node_resolver, port=server.port)
        assert list(await resolve(NAME)) == ["10.0.0.1", "10.0.0.2"]
        assert len(server.queries) == 1


async def test_without_a_kubelet_config_the_node_resolver(tmp_path: Path) -> None:
    resolve = cluster_dns_resolver(tmp_path / "absent.yaml", 5.0, node_resolver)
    assert list(await resolve(NAME)) == ["192.0.2.99"]


async def test_a_cluster_dns_that_fails_names_itself(tmp_path: Path) -> None:
    async with serving(lambda q: []) as server:  # never answers
        config = tmp_path / "config.yaml"
        config.write_text("clusterDNS: [127.0.0.1]\n")
        resolve = cluster_dns_resolver(config, 0.3, node_resolver, port=server.port)
        with pytest.raises(CheckError, match=r"at the cluster DNS: 127\.0\.0\.1: no answer"):
            await resolve(NAME)
