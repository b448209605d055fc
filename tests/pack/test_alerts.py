"""The alert rules: promtool checks them and runs every alert's firing and quiet cases."""

from __future__ import annotations

import re
import subprocess

from alerts.catalog import ALERTS
from alerts.generate import RULES, RUNBOOKS, TESTS, outputs


def test_promtool_check_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "lint" not in (done.stdout + done.stderr).lower()


def test_promtool_test_rules() -> None:
    done = subprocess.run(
        ["promtool", "test", "rules", TESTS.name],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_in_one_case_and_stays_quiet_in_another() -> None:
    for alert in ALERTS:
        assert any(case.fires for case in alert.cases), alert.name
        assert any(not case.fires for case in alert.cases), alert.name
        severities = {f["severity"] for case in alert.cases for f in case.fires}
        assert severities <= {r.severity for r in alert.rules}


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
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {a.name for a in ALERTS}
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        assert annotations["runbook_url"].endswith(f"/{rule['alert']}.md")


def test_thresholds_come_from_the_spec() -> None:
    """Change a number in spec.py and the rules change: nothing is written twice."""
    from exporter import spec

    text = RULES.read_text()
    assert f"< {spec.MEMORY_AVAILABLE_MIN_RATIO:g}" in text
    assert f"> {spec.DISK_IO_LATENCY_WARNING_SECONDS:g}" in text
    assert f"< {spec.MIN_POD_MTU_BYTES + spec.GENEVE_OVERHEAD_BYTES}" in text
    # requirement thresholds are not in the rules at all: they are read from the exporter's
    # kubev_requirement_threshold, which spec.py feeds
    assert not re.search(r"kubev_requirement_observed\{[^}]*\} [<>]", text)


def test_generation_is_deterministic() -> None:
    assert outputs() == outputs()
