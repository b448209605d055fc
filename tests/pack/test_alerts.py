"""The alert rules: promtool checks them and runs every alert's firing and quiet cases; the
catalog is complete, renders for any job selector, and takes its numbers from spec.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.catalog import (
    ALERTS,
    BY_CHECK,
    CLUSTER_RECORDING_RULES,
    PLACEHOLDERS,
    RECORDING_RULES,
    RuleSettings,
    disk,
)
from alerts.catalog.common import (
    CLUSTER_LABEL,
    REQUIREMENT_IMPACT,
    SEVERITY,
    ExprCase,
    Impact,
    levels_of,
    requirement_impact,
)
from alerts.generate import RULES, RUNBOOKS, TESTS, outputs, rule_of, rules_file, runbook_url
from exporter import spec
from exporter.checks import CHECKS, ROWS
from exporter.spec import Level, Req
from tests.helpers import ROOT


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def alerting_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "lint" not in (done.stdout + done.stderr).lower()


def test_promtool_test_rules() -> None:
    done = promtool("test", "rules", TESTS.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_in_one_case_and_stays_quiet_in_another() -> None:
    for alert in ALERTS:
        assert any(case.fires for case in alert.cases), alert.name
        assert any(not case.fires for case in alert.cases), alert.name
        severities = {f["severity"] for case in alert.cases for f in case.fires}
        assert severities <= {r.severity for r in alert.rules}, alert.name


def test_one_runbook_per_alert_and_one_alert_per_runbook() -> None:
    names = [a.name for a in ALERTS]
    assert len(names) == len(set(names))
    runbooks = sorted(p.stem for p in RUNBOOKS.glob("*.md"))
    assert runbooks == sorted(names)
    for name in names:
        text = (RUNBOOKS / f"{name}.md").read_text()
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in text, (name, section)


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = alerting_rules(yaml.safe_load(RULES.read_text()))
    assert {a["alert"] for a in alerts} == {a.name for a in ALERTS}
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        assert annotations["runbook_url"] == runbook_url(rule["alert"])
        assert annotations["runbook_url"].endswith(f"/{rule['alert']}.md")


def test_each_check_keeps_its_alerts_and_its_report_rows_point_at_them() -> None:
    """The report links a failing requirement to its alert's runbook, whose Mitigation
    opens with the row's hint: both must be the alert of the check that judges it."""
    assert list(BY_CHECK) == list(CHECKS)
    assert ALERTS[: sum(map(len, BY_CHECK.values()))] == tuple(
        alert for name in CHECKS for alert in BY_CHECK[name]
    )
    for name, check in CHECKS.items():
        alerts = {alert.name: alert for alert in BY_CHECK[name]}
        for row in check.rows:
            assert row.alert in alerts, (name, row.requirement, row.alert)
            assert alerts[row.alert].mitigation[0] == row.hint, row.alert


# --- severity by urgency: page only for what stops VMs or the platform now -----------------

#: the alerts that page (issue 12): KVM unusable, a VM device missing, the CPU baseline,
#: the kernel modules and cgroup controllers, a required port dead, kube-ovn-cni dead, DNS
#: failing, an fsync far beyond the minimum, a filesystem full within hours
PAGING = {
    "KubevKVMUnusable",
    "KubevTunDeviceMissing",
    "KubevVhostNetDeviceMissing",
    "KubevCPUBaselineMissing",
    "KubevKernelModuleMissing",
    "KubevCgroupControllerMissing",
    "KubevPortDown",
    "KubevGeneveNotBound",
    "KubevOVNEndpointDown",
    "KubevDNSResolutionFailing",
    "KubevStorageFsyncSlow",
    "KubevFilesystemFillingUp",
    # the API server, the SB database or Geneve blocked between nodes
    "KubevPeerPortBlocked",
}
#: static facts of the machine: a ticket at every level, never a page
STATIC = {
    Req.CPU_CORES,
    Req.MEMORY,
    Req.STORAGE_SOLID_STATE,
    Req.NIC_SPEED,
    Req.VIRTUALIZATION_EXTENSIONS,
}
#: a requirement verdict a rule reads
VERDICT = re.compile(r'kubev_requirement_met\{[^}]*requirement="(\w+)"')


def rendered_rules() -> list[dict[str, Any]]:
    return alerting_rules(yaml.safe_load(RULES.read_text()))


def test_only_what_stops_vms_or_the_platform_pages() -> None:
    rules = rendered_rules()
    assert {r["alert"] for r in rules if r["labels"]["severity"] == "critical"} == PAGING
    # and the policy table agrees: every requirement that pages is one of those alerts'
    paging_requirements = {r for r, impact in REQUIREMENT_IMPACT.items() if impact is Impact.STOPS}
    assert {ROWS[req].alert for req in paging_requirements} <= PAGING
    assert not paging_requirements & STATIC


def test_sizing_shortfalls_warn_at_every_level_with_a_level_label() -> None:
    """Even where the minimum fails: a ticket and a `check` verdict, not a page. Each level
    keeps its own rule and `level` label, so routing can tell them apart."""
    rules = rendered_rules()
    for requirement in STATIC:
        assert REQUIREMENT_IMPACT[requirement] is Impact.STATIC
        mine = [r for r in rules if r["alert"] == ROWS[requirement].alert]
        assert {r["labels"]["severity"] for r in mine} == {"warning"}, requirement
        assert sorted(r["labels"]["level"] for r in mine) == sorted(levels_of(requirement))


def test_every_rule_has_the_severity_of_its_impact() -> None:
    """Every alerting rule, as rendered: critical only for what stops VMs or the platform,
    info only for advisories; a rule on a requirement's verdict has the impact the policy
    gives a miss at its level."""
    rendered = iter(rendered_rules())
    for alert in ALERTS:
        for rule in alert.rules:
            out = next(rendered)
            assert out["alert"] == alert.name
            assert out["labels"]["severity"] == SEVERITY[rule.impact] == rule.severity
            assert (rule.severity == "critical") == (rule.impact is Impact.STOPS), alert.name
            assert (rule.severity == "info") == (rule.impact is Impact.ADVISORY), alert.name
            requirements = set(VERDICT.findall(rule.expr))
            if requirements:
                (requirement,) = requirements
                level = Level(out["labels"]["level"])
                assert rule.impact is requirement_impact(Req(requirement), level), alert.name
    assert next(rendered, None) is None


def test_fsync_warns_past_the_minimum_and_pages_far_beyond_it() -> None:
    alert = next(a for a in ALERTS if a.name == "KubevStorageFsyncSlow")
    by_severity = {
        r.severity: r for r in alert.rules if dict(r.labels).get("level") != "recommended"
    }
    assert dict(by_severity["warning"].labels) == {"level": "minimum"}
    assert by_severity["critical"].expr.endswith(f" >= {spec.FSYNC_CRITICAL_SECONDS:g}")
    assert "kubev_storage_fsync_p99_seconds{" in by_severity["critical"].expr


def test_promtool_cases_fire_every_rule_with_its_severity() -> None:
    """Each rule of each alert fires in a promtool case, with the severity label the policy
    gives it (test_promtool_test_rules runs them against the rendered rules)."""
    for alert in ALERTS:
        fired = [f for case in alert.cases for f in case.fires]
        for rule in alert.rules:
            mine = [
                f
                for f in fired
                if rule_of(alert, {k: v for k, v in f.items() if k != "description"}) is rule
            ]
            assert mine, (alert.name, rule.severity, rule.labels)
        for f in fired:
            if "requirement" in f and "level" in f:
                impact = requirement_impact(Req(f["requirement"]), Level(f["level"]))
                assert f["severity"] == SEVERITY[impact], (alert.name, f)


# --- several clusters in one Prometheus -----------------------------------------------------


def test_a_case_has_one_node_in_two_clusters_and_fires_for_one() -> None:
    """The joins keep the cluster apart, and the description reads the failing cluster's
    own threshold (the other cluster's differs)."""
    label = re.compile(rf'{CLUSTER_LABEL}="(\w+)"')
    found = [
        (alert, case)
        for alert in ALERTS
        for case in alert.cases
        if len({m for s in case.series for m in label.findall(s)}) == 2 and len(case.fires) == 1
    ]
    assert found
    for alert, case in found:
        assert {s.split("instance=")[1].split(",")[0] for s in case.series} == {'"node-1:19100"'}, (
            alert.name
        )
        assert CLUSTER_LABEL in case.fires[0]


def test_recording_rules_keep_the_cluster() -> None:
    for rule in RECORDING_RULES:
        if rule.record.startswith("kubev:requirement") or rule.record.startswith("kubev:nodes"):
            assert "by (instance" not in rule.expr, rule.record
            samples = [
                labels
                for case in rule.cases
                if isinstance(case, ExprCase)
                for labels, _ in case.samples
            ]
            assert any(f'{CLUSTER_LABEL}="a"' in s for s in samples), rule.record
            assert any(CLUSTER_LABEL not in s for s in samples), rule.record


def test_thresholds_come_from_the_spec() -> None:
    """The rules compare against spec.py's numbers, and requirements against the node's own."""
    text = RULES.read_text()
    assert f"< {spec.MEMORY_AVAILABLE_MIN_RATIO:g}" in text
    assert f"> {spec.DISK_IO_LATENCY_WARNING_SECONDS:g}" in text
    assert f"< {spec.MIN_POD_MTU_BYTES + spec.GENEVE_OVERHEAD_BYTES}" in text
    assert f"> {spec.DNS_SLOW_SECONDS:g}" in text
    assert f"> {spec.LINK_FLAP_CHANGES_15M}" in text
    # requirement thresholds are not in the rules at all: they are read from the exporter's
    # kubev_requirement_threshold, which spec.py feeds
    assert not re.search(r"kubev_requirement_observed\{[^}]*\} [<>]", text)


# --- prose: every number from spec.py -------------------------------------------------------

#: what prose cites as a figure: a number with a unit, or a bare number of 4 or more digits
#: (ports, MTUs); an issue reference (kubevirt#10713) is not a figure
FIGURE = re.compile(
    r"(?<![\w.#])(?:\d+(?:\.\d+)?\s?(?:%|(?:GiB|MB/s|Gb/s|ms|hours|times|bytes|cores|nodes)\b)"
    r"|\d{4,}(?![\w.]))"
)
#: figures that are the rule's own, not the spec's
NOT_FROM_THE_SPEC = {"KubevFilesystemFillingUp": {f"{disk.FILL_LOOKBACK_HOURS} hours"}}


def prose(world: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.pack.other_spec", world],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    texts: dict[str, list[str]] = json.loads(done.stdout)
    return texts


def figures(texts: list[str]) -> set[str]:
    return {m.group() for text in texts for m in FIGURE.finditer(text)}


def test_the_prose_takes_every_number_from_the_spec() -> None:
    """With every number of spec.py changed, no figure of an alert's runbook or annotations
    stays as it was: a figure that stays was written by hand and would go stale."""
    same, other = prose("same"), prose("other")
    assert same == {a.name: list(a.prose()) for a in ALERTS}
    cited = {name: figures(texts) for name, texts in same.items()}
    for name, found in cited.items():
        kept = (found & figures(other[name])) - NOT_FROM_THE_SPEC.get(name, set())
        assert not kept, f"{name}: written by hand, not taken from exporter/spec.py: {kept}"
    # the test sees the figures it is about: a FIGURE that matched nothing would pass
    assert {name for name, found in cited.items() if found} >= {
        "KubevCPUCoresInsufficient",
        "KubevMemoryInsufficient",
        "KubevMemoryAvailableLow",
        "KubevStorageFsyncSlow",
        "KubevDiskLatencyHigh",
        "KubevFilesystemFillingUp",
        "KubevNICSpeedInsufficient",
        "KubevNetworkLinkFlapping",
        "KubevNetworkMTUTooSmall",
        "KubevGeneveNotBound",
        "KubevOVNEndpointDown",
        "KubevDNSResolutionSlow",
        "KubevExporterDown",
        "KubevKVMNodesTooFew",
    }


# --- the job selector -----------------------------------------------------------------------

#: a series name in an expression or query template: the exporter's, a recording rule's, up
SERIES = re.compile(r"(?<![\w:])(?:kubev_\w+|kubev:[\w:]+|up)\b(?!\s*\()")
#: what a description formats with printf: the series a `query` looks up, in either quoting
QUERY = re.compile(r'printf\s+(?:`([^`]*)`|"((?:[^"\\]|\\.)*)")')


def selectors(settings: RuleSettings) -> list[tuple[str, str]]:
    """Every series selector of the rendered rules: (where, what follows the series name)."""
    found = []
    for group in rules_file(settings)["groups"]:
        for rule in group["rules"]:
            where = rule.get("alert") or rule["record"]
            texts = [rule["expr"]]
            if "annotations" in rule:
                queries = QUERY.findall(rule["annotations"]["description"])
                texts += [raw or quoted for raw, quoted in queries]
            for text in texts:
                found += [(where, text[m.end() :]) for m in SERIES.finditer(text)]
    return found


@pytest.mark.parametrize(
    "selector",
    ['job="kubev-node-exporter"', 'job=~"kubev-.*",cluster="lab-1"'],
    ids=["default", "mixin-like"],
)
def test_every_series_selector_starts_with_the_job_selector(selector: str) -> None:
    """Series of another job with the same names (a second exporter, a federated copy)
    must not feed these alerts, nor the lookups in their descriptions."""
    found = selectors(RuleSettings(selector))
    assert len(found) > 2 * len(ALERTS)
    for where, rest in found:
        assert rest.startswith((f"{{{selector},", f"{{{selector}}}")), (where, rest[:80])


def test_the_rules_render_valid_for_another_selector(tmp_path: Path) -> None:
    """The selector is a setting: any valid one renders rules Prometheus accepts."""
    rules = rules_file(RuleSettings('job=~"kubev-.*",cluster="lab-1"'))
    rendered = tmp_path / "rules.yml"
    rendered.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = promtool("check", "rules", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lint" not in (done.stdout + done.stderr).lower()


def test_no_placeholder_reaches_a_generated_file() -> None:
    for path, text in outputs().items():
        for placeholder in PLACEHOLDERS:
            assert placeholder not in text, (path, placeholder)


@pytest.mark.parametrize("selector", ["", "  ", 'job="a`b"'])
def test_a_selector_that_cannot_render_is_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        RuleSettings(selector)


def test_generation_does_not_depend_on_hash_order() -> None:
    """`make check-generated` must not flap: the files come out the same under any
    PYTHONHASHSEED (set and dict order of strings varies with it)."""
    for seed in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "-m", "alerts.generate", "check"],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (seed, done.stderr)


# --- the cluster's rules: kube-state-metrics' and CDI's series ------------------------------

#: kube-state-metrics' and CDI's series in an expression (not a function call)
FOREIGN = re.compile(r"(?<![\w:])(kube_\w+|kubevirt_cdi_\w+)\b(?!\s*\()")


def foreign_selectors(settings: RuleSettings) -> list[tuple[str, str, str]]:
    """(where, series name, what follows it) for every foreign series of the rendered rules."""
    found = []
    for group in rules_file(settings)["groups"]:
        for rule in group["rules"]:
            where = rule.get("alert") or rule["record"]
            found += [
                (where, m.group(1), rule["expr"][m.end() :]) for m in FOREIGN.finditer(rule["expr"])
            ]
    return found


@pytest.mark.parametrize(
    ("ksm", "cdi"),
    [
        ('job="kube-state-metrics"', 'job=~".*cdi.*"'),
        ('job="ksm",cluster="lab-1"', 'namespace="cdi",job="cdi-prometheus-metrics"'),
    ],
    ids=["default", "custom"],
)
def test_foreign_series_take_their_own_selector(ksm: str, cdi: str) -> None:
    """kube-state-metrics and CDI are not the exporter's job: their series are selected by
    their own settings, and the rules render valid for any of them."""
    settings = RuleSettings(ksm_selector=ksm, cdi_selector=cdi)
    found = foreign_selectors(settings)
    names = {name for _, name, _ in found}
    assert names == {
        "kube_node_info",
        "kube_node_status_allocatable",
        "kube_node_labels",
        "kubevirt_cdi_storageprofile_info",
    }
    for where, name, rest in found:
        selector = cdi if name.startswith("kubevirt_cdi_") else ksm
        assert rest.startswith((f"{{{selector},", f"{{{selector}}}")), (where, name, rest[:80])


def test_the_rules_render_valid_for_other_foreign_selectors(tmp_path: Path) -> None:
    settings = RuleSettings(
        ksm_selector='job="ksm",cluster="lab-1"', cdi_selector='namespace="cdi"'
    )
    rendered = tmp_path / "rules.yml"
    rendered.write_text(yaml.safe_dump(rules_file(settings), sort_keys=False))
    done = promtool("check", "rules", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("field", ["ksm_selector", "cdi_selector"])
@pytest.mark.parametrize("value", ["", 'job="a`b"'])
def test_a_foreign_selector_that_cannot_render_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        RuleSettings(**{field: value})


def test_the_cdi_selector_takes_the_job_cdis_operator_makes() -> None:
    """CDI's ServiceMonitor scrapes the Service cdi-prometheus-metrics (its job name under
    the prometheus-operator): the default selector must match it."""
    from alerts.catalog.cluster_series import CDI_JOB
    from alerts.catalog.common import CDI_SELECTOR

    regex = CDI_SELECTOR.removeprefix("job=~").strip('"')
    assert re.fullmatch(regex, CDI_JOB)
    assert re.fullmatch(regex, "cdi")
    assert not re.fullmatch(regex, "kube-state-metrics")


def test_each_cluster_requirement_has_its_alert_and_recorded_verdict() -> None:
    """The fleet command reads the recorded verdict and links the alert's runbook, whose
    Mitigation opens with the requirement's hint."""
    alerts = {alert.name: alert for alert in ALERTS}
    recorded = {
        (rule.record, dict(rule.labels).get("requirement")) for rule in CLUSTER_RECORDING_RULES
    }
    for req in spec.CLUSTER_REQUIREMENTS.values():
        assert alerts[req.alert].mitigation[0] == req.hint, req.name
        scope = "cluster" if req.extent is spec.Extent.CLUSTER else "node_cluster"
        for kind in ("met", "observed"):
            assert (f"kubev:{scope}_requirement_{kind}", req.name.value) in recorded, (req, kind)


def test_every_cluster_recording_rule_has_promtool_cases_with_samples() -> None:
    for rule in CLUSTER_RECORDING_RULES:
        assert any(case.samples for case in rule.cases), rule.selector
    # and they reach the promtool file
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    exprs = {t["promql_expr_test"][0]["expr"] for t in tests if "promql_expr_test" in t}
    assert exprs == {r.selector for r in (*RECORDING_RULES, *CLUSTER_RECORDING_RULES) if r.cases}


def test_max_for_caps_every_alerts_for() -> None:
    """The hook the end-to-end tests use to watch alerts fire without the real wait."""
    capped = alerting_rules(rules_file(RuleSettings(max_for="2s")))
    assert {r.get("for", "0s") for r in capped} <= {"2s", "0s"}
    plain = alerting_rules(rules_file())
    assert any(r.get("for") == "15m" for r in plain)
    with pytest.raises(ValueError, match="duration"):
        RuleSettings(max_for="soon")
