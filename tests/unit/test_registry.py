"""The check registry: every part of a check is declared in its module and everything
else (config, catalog, report, hints) is derived from the one list."""

from __future__ import annotations

import pytest
import yaml

from exporter.checks import CATALOG, CHECKS, OBSERVED_BY, ROWS
from exporter.checks.dns import DnsCheck, DnsSettings, HostFacts
from exporter.config import Config, from_mapping
from exporter.model import OutputBuilder
from exporter.paths import Paths
from exporter.settings import declared
from exporter.spec import PROFILES, SPEC_SAYS, Req
from tools.docs import README, readme_config_block


def test_every_requirement_has_one_check_a_row_and_thresholds() -> None:
    assert set(OBSERVED_BY) == set(Req) == set(ROWS) == set(SPEC_SAYS)
    for reqs in PROFILES.values():
        assert set(reqs) == set(Req)


def test_an_undeclared_requirement_or_metric_is_refused() -> None:
    out = CHECKS["compute"].output()
    with pytest.raises(ValueError, match="does not declare the requirement"):
        out.observe(Req.DNS, 1)
    with pytest.raises(ValueError, match="cpu_core"):
        out.observe("cpu_core", 4)  # type: ignore[arg-type]
    dns_metric = next(m for m in CATALOG if m.source == "dns")
    with pytest.raises(ValueError, match="belongs to dns"):
        out.add(dns_metric, 1, name="x")
    with pytest.raises(ValueError):
        Req("cpu_core")


def test_catalog_follows_the_registry() -> None:
    sources = [m.source for m in CATALOG]
    order = ["exporter", *CHECKS]
    assert sources == sorted(sources, key=order.index)
    assert {m.source for m in CATALOG} == set(order)


def test_config_sections_are_the_registered_checks() -> None:
    assert set(Config().checks) == set(CHECKS)
    for name, check in CHECKS.items():
        assert isinstance(Config().check(name), check.settings_type)


def test_builder_notes_are_tagged() -> None:
    out = OutputBuilder("dns", frozenset({Req.DNS}))
    out.note("a.example: NXDOMAIN", Req.DNS)
    out.note("unrelated")
    output = out.build()
    assert output.notes_about(Req.DNS) == ["a.example: NXDOMAIN"]


def test_dns_default_name_honours_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "node-a.example")
    out = DnsCheck.output()
    hosts = HostFacts(None, None, frozenset(), False)  # an empty /etc/hosts
    assert DnsCheck(Config(), Paths()).node_names(hosts, out) == ["node-a.example"]
    configured = Config(node_name="from-config")
    assert DnsCheck(configured, Paths()).node_names(hosts, out) == ["from-config"]
    named = Config().with_check("dns", names=("api.example",))
    assert DnsCheck(named, Paths()).node_names(hosts, out) == ["api.example"]
    assert named.settings(DnsSettings).names == ("api.example",)


def test_readme_config_block_is_the_embedded_default() -> None:
    block = readme_config_block(README.read_text())
    assert from_mapping(yaml.safe_load(block)) == Config()


def test_readme_config_block_is_complete() -> None:
    """Every declared key appears in the README: a setting added without docs fails."""
    block = yaml.safe_load(readme_config_block(README.read_text()))
    assert set(block["checks"]) == set(CHECKS)
    for name, settings in Config().checks.items():
        documented = block["checks"][name]
        assert set(documented) == {f.name for f in declared(type(settings))}
