"""The readiness report: one row per requirement, from a snapshot. The `check` command, its
JSON output and the HTML page at / all render these rows, so they always agree.

Areas and rows come from the check registry: each check's area, the requirements it
declares (in its order), and its own detail text and hint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from exporter.checks import CHECKS
from exporter.config import Config
from exporter.model import Table
from exporter.runtime import CheckState, Snapshot
from exporter.spec import Level, Requirement, requirements
from exporter.verdicts import Outcome

#: report areas in order: (key, title), one per check
AREAS: tuple[tuple[str, str], ...] = tuple(check.area for check in CHECKS.values())
VERDICTS = tuple(Outcome)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Row:
    area: str
    requirement: str
    title: str
    unit: str
    observed: float | None
    observed_text: str
    minimum: str
    recommended: str
    #: the thresholds as numbers in the unit (booleans: 1), None where the profile sets none
    minimum_value: float | None
    recommended_value: float | None
    verdict: Outcome
    detail: str
    hint: str
    runbook_url: str


@dataclass(frozen=True)
class Report:
    node: str
    profile: str
    role: str
    generated_at: float
    rows: tuple[Row, ...]
    checks: tuple[dict[str, object], ...]
    #: (area, table): rows for people a check attached to its output (blocked peer ports)
    tables: tuple[tuple[str, Table], ...] = ()

    def counts(self) -> dict[Outcome, int]:
        return {v: sum(1 for r in self.rows if r.verdict is v) for v in Outcome}

    @property
    def exit_code(self) -> int:
        """0 when every minimum is met; 1 when one fails or a check errors."""
        return 1 if any(r.verdict in (Outcome.FAIL, Outcome.ERROR) for r in self.rows) else 0

    def to_json(self) -> dict[str, object]:
        tables = {
            "tables": [
                {"area": area, **asdict(table), "rows": [list(r) for r in table.rows]}
                for area, table in self.tables
            ]
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "node": self.node,
            "profile": self.profile,
            "role": self.role,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.generated_at)),
            "exit_code": self.exit_code,
            "summary": {k.lower(): v for k, v in self.counts().items()},
            "rows": [{**asdict(r), "verdict": r.verdict.value} for r in self.rows],
            "checks": list(self.checks),
            **(tables if self.tables else {}),
        }


def threshold_text(req: Requirement, level: Level) -> str:
    if level not in req.thresholds:
        return "-"
    if req.unit == "bool":
        return "required"
    return f"{req.comparison.value} {req.format(req.thresholds[level])}"


def _outcome(
    state: CheckState, observed: float | None, unreadable: str | None, met: dict[Level, bool]
) -> tuple[Outcome, str | None]:
    """The verdict, and a detail that overrides the check's own (None: ask the check)."""
    if not state.has_run:
        return Outcome.UNKNOWN, "not run yet"
    if unreadable is not None:  # nothing to judge it by: CheckState.unreadable
        return Outcome.ERROR, unreadable
    if observed is None:
        return Outcome.UNKNOWN, None
    if not met.get(Level.MINIMUM, True):
        return Outcome.FAIL, None
    return (Outcome.WARN if not met.get(Level.RECOMMENDED, True) else Outcome.PASS), None


def build(snapshot: Snapshot, config: Config) -> Report:
    reqs = requirements(config.profile)
    verdicts = {(v.requirement.name, v.level): v.met for v in snapshot.verdicts}
    rows = []
    for check in CHECKS.values():
        state = snapshot.states.get(check.name)
        if state is None:  # the check is disabled
            continue
        for declared in check.rows:
            req = reqs[declared.requirement]
            output = state.output
            observed = output.observed(req.name) if output is not None else None
            met = {level: verdicts.get((req.name, level), True) for level in Level}
            verdict, detail = _outcome(state, observed, state.unreadable(req.name), met)
            if detail is None:
                detail = check.detail(req.name, output, verdict) if output is not None else ""
            rows.append(
                Row(
                    area=check.area[0],
                    requirement=req.name.value,
                    title=req.title,
                    unit=req.unit,
                    observed=observed,
                    observed_text="-" if observed is None else req.format(observed),
                    minimum=threshold_text(req, Level.MINIMUM),
                    recommended=threshold_text(req, Level.RECOMMENDED),
                    minimum_value=req.thresholds.get(Level.MINIMUM),
                    recommended_value=req.thresholds.get(Level.RECOMMENDED),
                    verdict=verdict,
                    detail=detail,
                    hint="" if verdict is Outcome.PASS else declared.hint,
                    runbook_url=config.runbook_url_template.format(alert=declared.alert),
                )
            )
    checks: tuple[dict[str, object], ...] = tuple(
        {
            "name": name,
            "success": s.success,
            "error": s.error,
            "duration_seconds": None if s.duration is None else round(s.duration, 6),
        }
        for name, s in snapshot.states.items()
    )
    tables = tuple(
        (check.area[0], table)
        for check in CHECKS.values()
        if (state := snapshot.states.get(check.name)) is not None and state.output is not None
        for table in state.output.tables
    )
    return Report(
        node=config.node(),
        profile=config.profile.value,
        role=config.role.value,
        generated_at=snapshot.updated,
        rows=tuple(rows),
        checks=checks,
        tables=tables,
    )
