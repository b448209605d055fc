"""The report for a terminal: grouped by area, a verdict per row, a hint under each row
that is not PASS, and a summary line with the exit code."""

from __future__ import annotations

from exporter.report.model import AREAS, Report
from exporter.verdicts import Outcome

_COLOURS = {
    Outcome.PASS: "32",
    Outcome.WARN: "33",
    Outcome.FAIL: "31",
    Outcome.ERROR: "35",
    Outcome.UNKNOWN: "36",
}


def render_text(report: Report, colour: bool) -> str:
    def paint(verdict: Outcome) -> str:
        text = f"{verdict:<7}"
        return f"\033[1;{_COLOURS[verdict]}m{text}\033[0m" if colour else text

    width = max((len(r.title) for r in report.rows), default=20)
    lines = [
        f"kubev-node-exporter check: node {report.node}, profile {report.profile}, "
        f"role {report.role}",
        "",
    ]
    for area, label in AREAS:
        rows = [r for r in report.rows if r.area == area]
        if not rows:
            continue
        lines.append(label)
        for r in rows:
            lines.append(
                f"  {paint(r.verdict)} {r.title:<{width}}  {r.observed_text:<12} "
                f"min {r.minimum:<12} rec {r.recommended}"
            )
            if r.detail:
                lines.append(f"  {'':<7} {r.detail}")
            if r.hint:
                lines.append(f"  {'':<7} -> {r.hint} ({r.runbook_url})")
        lines.append("")
    counts = report.counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    outcome = (
        "every minimum is met"
        if report.exit_code == 0
        else "a minimum is not met or a check failed"
    )
    lines.append(f"{summary}: {outcome} (exit {report.exit_code})")
    return "\n".join(lines) + "\n"
