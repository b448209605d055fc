"""The readiness report: one row per requirement, from a snapshot. The `check` command, its
JSON output and the HTML page at / all render these rows, so they always agree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from exporter import metrics
from exporter.config import Config
from exporter.hints import HINTS
from exporter.model import CheckOutput, Sample
from exporter.runtime import Snapshot
from exporter.spec import Level, Requirement, requirements

#: report areas in order, and the check that observes each
AREAS: dict[str, tuple[str, str]] = {
    "kvm": ("KVM", "kvm"),
    "compute": ("Compute", "compute"),
    "storage": ("Storage", "disk"),
    "network": ("Network", "network"),
    "ports": ("Ports", "ports"),
    "ovn": ("OVN", "ovn"),
    "dns": ("DNS", "dns"),
}
PASS, WARN, FAIL, ERROR, UNKNOWN = "PASS", "WARN", "FAIL", "ERROR", "UNKNOWN"
VERDICTS = (PASS, WARN, FAIL, ERROR, UNKNOWN)
SCHEMA_VERSION = 1
#: which of a check's notes speak of which requirement
NOTE_KEYS = {
    "kvm": "/kvm",
    "virtualization_extensions": "flags",
    "nic_speed": "speed",
    "disk_latency": "storage path",
    "storage_solid_state": "rotational",
}


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
    verdict: str
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

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for r in self.rows if r.verdict == v) for v in VERDICTS}

    @property
    def exit_code(self) -> int:
        """0 when every minimum is met; 1 when one fails or a check errors."""
        return 1 if any(r.verdict in (FAIL, ERROR) for r in self.rows) else 0

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "node": self.node,
            "profile": self.profile,
            "role": self.role,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.generated_at)),
            "exit_code": self.exit_code,
            "summary": {k.lower(): v for k, v in self.counts().items()},
            "rows": [asdict(r) for r in self.rows],
            "checks": list(self.checks),
        }


def _threshold_text(req: Requirement, level: Level) -> str:
    if level not in req.thresholds:
        return "-"
    if req.unit == "bool":
        return "required"
    return f"{req.comparison.value} {req.format(req.thresholds[level])}"


def _samples(output: CheckOutput, metric: metrics.MetricDef) -> Iterable[Sample]:
    return (s for s in output.samples if isinstance(s, Sample) and s.metric is metric)


def _detail(name: str, output: CheckOutput, verdict: str) -> str:
    """What exactly is wrong, from the check's samples and notes."""
    if name == "ports":
        expected = {s.labels for s in _samples(output, metrics.PORT_EXPECTED) if s.value == 1}
        down = [
            f"{c} {p}/{proto}"
            for s in _samples(output, metrics.PORT_UP)
            if s.value == 0 and s.labels in expected
            for c, p, proto in [s.labels]
        ]
        if down:
            return f"{len(down)} required port(s) down: {', '.join(down)}"
        return f"all {len(expected)} required ports up"
    if name == "ovn_endpoints":
        bad = [
            f"{c} :{p}"
            for s in _samples(output, metrics.OVN_UP)
            if s.value == 0
            for c, p in [s.labels]
        ]
        return f"not serving: {', '.join(bad)}" if bad else "all endpoints serve"
    if name == "dns":
        bad = [s.labels[0] for s in _samples(output, metrics.DNS_SUCCESS) if s.value == 0]
        return f"not resolving: {', '.join(bad)}" if bad else ""
    if name == "storage_solid_state":
        hdd = [s.labels[0] for s in _samples(output, metrics.DISK_INFO) if s.labels[1] == "hdd"]
        if hdd:
            return f"rotational: {', '.join(hdd)}"
    if name == "nic_speed" and verdict != UNKNOWN:
        up = {s.labels[0] for s in _samples(output, metrics.NET_UP) if s.value == 1}
        speeds = [
            (s.value, s.labels[0]) for s in _samples(output, metrics.NET_SPEED) if s.labels[0] in up
        ]
        if speeds:
            return f"fastest link up: {max(speeds)[1]}"
    if name == "virtualization_extensions" and verdict != PASS:
        vm = [s for s in _samples(output, metrics.HOST_IS_VM) if s.value == 1]
        if vm:
            return "this host is itself a VM (hypervisor flag): its hypervisor hides VT-x/AMD-V"
    if verdict != PASS:
        key = NOTE_KEYS.get(name)
        related = [n for n in output.notes if key and key in n]
        if related:
            return related[0]
    return ""


def build(snapshot: Snapshot, config: Config, node: str) -> Report:
    reqs = requirements(config.profile)
    verdicts = {(v.requirement.name, v.level): v.met for v in snapshot.verdicts}
    rows = []
    for area, (_, check) in AREAS.items():
        state = snapshot.states.get(check)
        if state is None:  # the check is disabled
            continue
        for req in (r for r in reqs.values() if r.area == area):
            hint = HINTS[req.name]
            observed = None
            if state.output is not None:
                observed = dict(state.output.observations).get(req.name)
            if not state.has_run:
                verdict, detail = UNKNOWN, "not run yet"
            elif not state.success and state.output is None:
                verdict, detail = ERROR, state.error or "the check failed"
            elif observed is None:
                verdict = UNKNOWN
                detail = _detail(req.name, state.output, verdict) if state.output else ""
            else:
                met_min = verdicts.get((req.name, Level.MINIMUM), True)
                met_rec = verdicts.get((req.name, Level.RECOMMENDED), True)
                verdict = FAIL if not met_min else WARN if not met_rec else PASS
                detail = _detail(req.name, state.output, verdict) if state.output else ""
            rows.append(
                Row(
                    area=area,
                    requirement=req.name,
                    title=req.title,
                    unit=req.unit,
                    observed=observed,
                    observed_text="-" if observed is None else req.format(observed),
                    minimum=_threshold_text(req, Level.MINIMUM),
                    recommended=_threshold_text(req, Level.RECOMMENDED),
                    verdict=verdict,
                    detail=detail,
                    hint="" if verdict == PASS else hint.text,
                    runbook_url=hint.runbook_url,
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
    return Report(
        node=node,
        profile=config.profile.value,
        role=config.role.value,
        generated_at=snapshot.updated,
        rows=tuple(rows),
        checks=checks,
    )


_COLOURS = {PASS: "32", WARN: "33", FAIL: "31", ERROR: "35", UNKNOWN: "36"}


def render_text(report: Report, colour: bool) -> str:
    def paint(verdict: str) -> str:
        text = f"{verdict:<7}"
        return f"\033[1;{_COLOURS[verdict]}m{text}\033[0m" if colour else text

    width = max((len(r.title) for r in report.rows), default=20)
    lines = [
        f"kubev-node-exporter check: node {report.node}, profile {report.profile}, "
        f"role {report.role}",
        "",
    ]
    for area, (label, _) in AREAS.items():
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
