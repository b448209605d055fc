"""Where the dashboards send a user: a node in the fleet opens the node dashboard for that
node, with the same data source, cluster, job and time range; panels that show what an
alert judges link to that alert's runbook, which exists; read and write latency are shown
as the rules record and the alert judges them."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import yaml

from alerts.catalog import ALERTS
from alerts.generate import RULES, RUNBOOKS, runbook_url
from dashboards.generate import outputs
from exporter.checks import ROWS

ALERT_NAMES = {alert.name for alert in ALERTS}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(text) for path, text in outputs().items()}


def links(node: Any) -> Iterator[dict[str, Any]]:
    """Every link object (panel links and data links) anywhere in a dashboard."""
    if isinstance(node, dict):
        if "url" in node and "title" in node:
            yield node
        for value in node.values():
            yield from links(value)
    elif isinstance(node, list):
        for value in node:
            yield from links(value)


def override_links(panel: dict[str, Any], field_name: str) -> list[dict[str, Any]]:
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byName", "options": field_name}:
            for prop in override["properties"]:
                if prop["id"] == "links":
                    found: list[dict[str, Any]] = prop["value"]
                    return found
    return []


def panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in dashboard["panels"] if p["title"] == title)
    return found


def test_fleet_nodes_open_the_node_dashboard_for_that_node() -> None:
    fleet, node = dashboards()["fleet"], dashboards()["node"]
    node_variables = {v["name"] for v in node["templating"]["list"]}
    # the tables with a row per exporter: both requirement matrices and exporter health (the
    # cluster's tables have a row per Node object or StorageClass, the peers' per port)
    tables = [
        p
        for p in fleet["panels"]
        if p["type"] == "table"
        and any(t["options"].get("rowField") == "instance" for t in p["transformations"])
    ]
    assert len(tables) == 3
    for table in tables:
        (grouping,) = [t["options"] for t in table["transformations"]]
        # the name Grafana's groupingToMatrix gives the row column: "instance\requirement"
        (link,) = override_links(table, f"{grouping['rowField']}\\{grouping['columnField']}")
        url = urllib.parse.urlsplit(link["url"])
        assert url.path == f"/d/{node['uid']}", table["title"]
        params = url.query.split("&")
        assert "var-node=${__value.raw}" in params
        # every other variable of the node dashboard is carried over, and the time range
        carried = set()
        for param in params[1:-1]:
            variable = re.fullmatch(r"\$\{(\w+):queryparam\}", param)
            assert variable, param
            carried.add(variable[1])
        assert carried | {"node"} == node_variables
        assert params[-1] == "${__url_time_range}"
    # the state timeline of every node links each node's series the same way
    timeline = panel(fleet, "Minimum requirements over time")
    (link,) = timeline["fieldConfig"]["defaults"]["links"]
    assert link["url"].startswith(f"/d/{node['uid']}?var-node=${{__field.labels.instance}}&")


def test_requirement_cells_link_to_their_alert_runbook() -> None:
    fleet = dashboards()["fleet"]
    for level in ("minimum", "recommended"):
        matrix = panel(fleet, f"Requirements at the {level} level, per node")
        for requirement, row in ROWS.items():
            (link,) = override_links(matrix, requirement.value)
            assert link["url"] == runbook_url(row.alert)
            assert link["title"] == f"Runbook: {row.alert}"


def test_every_runbook_link_points_at_a_runbook_that_exists() -> None:
    prefix, _, suffix = runbook_url("{alert}").partition("{alert}")
    linked = set()
    for name, dashboard in dashboards().items():
        for link in links(dashboard):
            if link["url"].startswith(prefix):
                alert = link["url"][len(prefix) : -len(suffix)]
                assert alert in ALERT_NAMES, (name, link)
                assert (RUNBOOKS / f"{alert}.md").is_file(), (name, link)
                assert link["title"] == f"Runbook: {alert}"
                linked.add(alert)
    # every requirement's alert is a click away, on the node dashboard too
    node_linked = {
        link["url"][len(prefix) : -len(suffix)]
        for p in dashboards()["node"]["panels"]
        for link in p.get("links", [])
    }
    requirement_alerts = {row.alert for row in ROWS.values()}
    assert requirement_alerts <= node_linked
    assert requirement_alerts <= linked
    assert {"KubevDiskLatencyHigh", "KubevCheckFailing", "KubevExporterDown"} <= linked


def test_node_dashboard_shows_read_and_write_latency_as_the_rules_record_them() -> None:
    node = dashboards()["node"]
    recorded = {
        rule["record"]: rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    alert = next(a for a in ALERTS if a.name == "KubevDiskLatencyHigh")
    assert {dict(r.labels)["direction"] for r in alert.rules} == {"read", "write"}
    for op in ("read", "write"):
        latency = panel(node, f"Disk {op} latency (mean per I/O, 5m)")
        (target,) = latency["targets"]
        record = f"kubev:disk_{op}_latency_seconds:rate5m"
        assert target["expr"].startswith(record + "{")
        assert f"kubev_disk_{op}_time_seconds_total" in recorded[record]
        # the alert's threshold is the panel's warning line
        (rule,) = [r for r in alert.rules if dict(r.labels)["direction"] == op]
        threshold = float(rule.expr.rsplit(">", 1)[1])
        steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == threshold
        assert [link["url"] for link in latency["links"]] == [runbook_url(alert.name)]
