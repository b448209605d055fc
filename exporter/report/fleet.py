"""The fleet's readiness, read from Prometheus: one row per node (its exporter's verdicts,
and how the cluster sees it), the cluster's own verdicts above them.

Everything comes from series Prometheus already holds: the exporters' verdicts
(kubev_requirement_met and friends, by the job selector) and what the rules record from
kube-state-metrics and CDI (exporter/recorded.py). Nothing here reads a raw
kube-state-metrics or CDI series: the rules are where those are judged.

A cell's verdict is the check report's vocabulary (exporter/verdicts.py Outcome), or None
where the requirement does not apply (the check is off on that node, the node's role does
not need it, the cluster has one node). ERROR means the observer is missing: no exporter
on the node, a check failing, no kube-state-metrics or CDI series, or the rules not loaded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter import recorded
from exporter.checks import CHECKS, OBSERVED_BY, ROWS
from exporter.config import DEFAULT_RUNBOOK_URL
from exporter.report.promapi import Prometheus, Sample
from exporter.spec import (
    CLUSTER_REQUIREMENTS,
    KUBEVIRT_DEVICE_NAMESPACE,
    KUBEVIRT_DEVICES,
    KUBEVIRT_SCHEDULABLE_LABEL,
    PROFILES,
    ClusterReq,
    ClusterRequirement,
    Extent,
    Level,
    Profile,
    Req,
    Requirement,
)
from exporter.verdicts import Outcome

SCHEMA_VERSION = 1
#: where the exporters are scraped by default (deploy/, alerts/catalog/common.py JOB)
DEFAULT_SELECTOR = 'job="kubev-node-exporter"'
#: column headings: short, so that a row of a dozen verdicts fits a terminal
HEADERS: Mapping[str, str] = {
    Req.CPU_CORES: "cpu",
    Req.MEMORY: "mem",
    Req.VIRTUALIZATION_EXTENSIONS: "vtx",
    Req.KVM: "kvm",
    Req.STORAGE_SOLID_STATE: "ssd",
    Req.DISK_LATENCY: "fsync",
    Req.NIC_SPEED: "nic",
    Req.PORTS: "ports",
    Req.OVN_ENDPOINTS: "ovn",
    Req.DNS: "dns",
    ClusterReq.KUBEVIRT_DEVICES: "kv-dev",
    ClusterReq.KUBEVIRT_SCHEDULABLE: "kv-sched",
}
RULES_FILE = "alerts/kubev-node-exporter.rules.yml"
NOT_LOADED = f"Prometheus has not loaded the kubev rules ({RULES_FILE})"
#: the alerts behind the fleet's own verdicts (alerts/catalog/cluster.py), and the first
#: thing their runbooks say to do
EXPORTER_MISSING_ALERT = "KubevNodeExporterMissing"
EXPORTER_MISSING_HINT = (
    "Let the exporter's DaemonSet run on the node (a toleration for its taints), or fix the "
    "pod so it can be scraped"
)
METRICS_ABSENT_ALERT = "KubevClusterMetricsAbsent"


class FleetError(Exception):
    """Prometheus holds nothing to judge the fleet by (a wrong URL or selector)."""


@dataclass(frozen=True)
class Cell:
    verdict: Outcome | None  # None: not applicable
    detail: str = ""
    hint: str = ""
    runbook_url: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": None if self.verdict is None else self.verdict.value,
            "detail": self.detail,
            "hint": self.hint,
            "runbook_url": self.runbook_url,
        }


@dataclass(frozen=True)
class Column:
    """A requirement judged per node: by the node's exporter, or by the cluster's rules."""

    requirement: str
    title: str
    header: str
    source: str  # "exporter" or "cluster"


@dataclass(frozen=True)
class Exporter:
    instance: str
    role: str
    profile: str


@dataclass(frozen=True)
class NodeRow:
    node: str
    exporter: Exporter | None
    #: does an exporter report the node: PASS, or ERROR with why not
    reporting: Cell
    cells: Mapping[str, Cell]


@dataclass(frozen=True)
class ClusterRow:
    requirement: ClusterReq
    title: str
    observed: float | None
    cell: Cell


@dataclass(frozen=True)
class FleetReport:
    prometheus: str
    selector: str
    generated_at: float
    cluster: tuple[ClusterRow, ...]
    columns: tuple[Column, ...]
    nodes: tuple[NodeRow, ...]
    notes: tuple[str, ...] = ()

    def all_cells(self) -> list[Cell]:
        cells = [row.cell for row in self.cluster]
        for node in self.nodes:
            cells.append(node.reporting)
            cells.extend(node.cells[c.requirement] for c in self.columns)
        return cells

    def counts(self) -> dict[Outcome, int]:
        verdicts = [c.verdict for c in self.all_cells()]
        return {o: verdicts.count(o) for o in Outcome}

    @property
    def exit_code(self) -> int:
        """0 when every minimum is met fleet-wide, the cluster's included; 1 when one fails
        or something cannot be judged for want of its observer (ERROR)."""
        failing = (Outcome.FAIL, Outcome.ERROR)
        return 1 if any(c.verdict in failing for c in self.all_cells()) else 0

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "prometheus": self.prometheus,
            "selector": self.selector,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.generated_at)),
            "exit_code": self.exit_code,
            "summary": {k.lower(): v for k, v in self.counts().items()},
            "cluster": [
                {"requirement": r.requirement.value, "title": r.title, "observed": r.observed}
                | r.cell.to_json()
                for r in self.cluster
            ],
            "columns": [
                {
                    "requirement": c.requirement,
                    "title": c.title,
                    "header": c.header,
                    "source": c.source,
                }
                for c in self.columns
            ],
            "nodes": [
                {
                    "node": n.node,
                    "exporter": None
                    if n.exporter is None
                    else {
                        "instance": n.exporter.instance,
                        "role": n.exporter.role,
                        "profile": n.exporter.profile,
                    },
                    "reporting": n.reporting.to_json(),
                    "verdicts": {
                        c.requirement: n.cells[c.requirement].to_json() for c in self.columns
                    },
                }
                for n in self.nodes
            ],
            "notes": list(self.notes),
        }


# --- what Prometheus is asked -------------------------------------------------------------


def queries(selector: str) -> dict[str, str]:
    return {
        "info": f"kubev_node_info{{{selector}}}",
        "met": f"kubev_requirement_met{{{selector}}}",
        "observed": f"kubev_requirement_observed{{{selector}}}",
        "threshold": f"kubev_requirement_threshold{{{selector}}}",
        "checks": f"kubev_check_success{{{selector}}}",
        "errors": f"kubev_requirement_error{{{selector}}}",
        "up": f"up{{{selector}}}",
        "cluster_met": recorded.CLUSTER_MET,
        "cluster_observed": recorded.CLUSTER_OBSERVED,
        "node_met": recorded.NODE_MET,
        "node_observed": recorded.NODE_OBSERVED,
        "reporting": recorded.EXPORTER_REPORTING,
        "vm_class": recorded.VM_STORAGE_CLASS,
    }


@dataclass(frozen=True)
class Answers:
    """Prometheus' answers, by the keys of queries(); `rules`: the recording rules it has
    loaded (None: it does not say)."""

    vectors: Mapping[str, list[Sample]]
    rules: set[str] | None = None
    prometheus: str = ""
    selector: str = DEFAULT_SELECTOR
    at: float = field(default_factory=time.time)

    def __getitem__(self, key: str) -> list[Sample]:
        return list(self.vectors.get(key, []))


def ask(api: Prometheus, selector: str) -> Answers:
    vectors = {key: api.query(expr) for key, expr in queries(selector).items()}
    return Answers(vectors, api.recording_rules(), api.url, selector)


# --- judging ------------------------------------------------------------------------------


def columns() -> tuple[Column, ...]:
    """The exporters' requirements in the report's order, then the cluster's per node."""
    found = [
        Column(
            row.requirement.value,
            _spec(row.requirement).title,
            _header(row.requirement),
            "exporter",
        )
        for check in CHECKS.values()
        for row in check.rows
    ]
    found += [
        Column(req.name.value, req.title, _header(req.name), "cluster")
        for req in CLUSTER_REQUIREMENTS.values()
        if req.extent is Extent.NODE
    ]
    return tuple(found)


def _header(name: str) -> str:
    return HEADERS.get(name, name)


def _spec(req: Req, profile: str = Profile.TESTING.value) -> Requirement:
    try:
        return PROFILES[Profile(profile)][req]
    except ValueError:
        return PROFILES[Profile.TESTING][req]


def _runbook(alert: str, template: str) -> str:
    return template.format(alert=alert)


class _Index:
    """The exporters' series, by instance."""

    def __init__(self, answers: Answers) -> None:
        self.met: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for s in answers["met"]:
            self.met[(s.labels.get("instance", ""), s.labels.get("requirement", ""))][
                s.labels.get("level", "")
            ] = s.value
        self.observed = {
            (s.labels.get("instance", ""), s.labels.get("requirement", "")): s.value
            for s in answers["observed"]
        }
        self.threshold = {
            (
                s.labels.get("instance", ""),
                s.labels.get("requirement", ""),
                s.labels.get("level", ""),
            ): s.value
            for s in answers["threshold"]
        }
        self.errors = {
            (s.labels.get("instance", ""), s.labels.get("requirement", ""))
            for s in answers["errors"]
            if s.value == 1
        }
        self.checks = {
            (s.labels.get("instance", ""), s.labels.get("check", "")): s.value
            for s in answers["checks"]
        }


def _exporter_cell(index: _Index, exporter: Exporter, req: Req, template: str) -> Cell:
    row = ROWS[req]
    spec = _spec(req, exporter.profile)
    runbook = _runbook(row.alert, template)
    met = index.met.get((exporter.instance, req.value))
    check = OBSERVED_BY[req].name
    if (exporter.instance, req.value) in index.errors:
        # as the node's own report: what the requirement needs could not be read
        return Cell(Outcome.ERROR, f"the {check} check is failing", row.hint, runbook)
    if not met:
        success = index.checks.get((exporter.instance, check))
        if success is None:
            return Cell(None, f"the {check} check is off on this node")
        failing = " is failing and" if success == 0 else ""
        detail = f"the {check} check{failing} could not observe it"
        return Cell(Outcome.UNKNOWN, detail, row.hint, runbook)
    for level, verdict in ((Level.MINIMUM, Outcome.FAIL), (Level.RECOMMENDED, Outcome.WARN)):
        if met.get(level.value) == 0:
            return Cell(verdict, _shortfall(index, exporter, spec, level), row.hint, runbook)
    return Cell(Outcome.PASS)


def _shortfall(index: _Index, exporter: Exporter, spec: Requirement, level: Level) -> str:
    """'4 cores; minimum >= 8 cores', from the node's own observed value and threshold."""
    observed = index.observed.get((exporter.instance, spec.name.value))
    threshold = index.threshold.get((exporter.instance, spec.name.value, level.value))
    seen = "-" if observed is None else spec.format(observed)
    if spec.unit == "bool":
        return "not met" if level is Level.MINIMUM else "not met (recommended)"
    wanted = "-" if threshold is None else f"{spec.comparison.value} {spec.format(threshold)}"
    return f"{seen}; {level.value} {wanted}"


def _node_cluster_cell(
    req: ClusterRequirement,
    node: str,
    exporter: Exporter | None,
    met: Mapping[tuple[str, str], float],
    observed: Mapping[tuple[str, str], float],
    ksm_nodes: set[str],
    rules_loaded: bool,
    template: str,
) -> Cell:
    runbook = _runbook(req.alert, template)
    if exporter is not None and exporter.role not in {role.value for role in req.roles}:
        return Cell(None, f"not needed on role {exporter.role}")
    value = met.get((node, req.name.value))
    if value is None:
        if not rules_loaded:
            return Cell(Outcome.UNKNOWN, NOT_LOADED)
        if node not in ksm_nodes:
            return Cell(Outcome.UNKNOWN, "kube-state-metrics does not report this node")
        if req.name is ClusterReq.KUBEVIRT_SCHEDULABLE:
            return Cell(
                Outcome.UNKNOWN,
                f"no node's kube_node_labels carries {KUBEVIRT_SCHEDULABLE_LABEL}: "
                "kube-state-metrics needs --metric-labels-allowlist=nodes=["
                f"{KUBEVIRT_SCHEDULABLE_LABEL}] (or KubeVirt runs on no node)",
            )
        return Cell(Outcome.UNKNOWN, "no data")
    if value >= 1:
        return Cell(Outcome.PASS)
    seen = observed.get((node, req.name.value))
    if req.name is ClusterReq.KUBEVIRT_DEVICES:
        count = 0 if seen is None else int(seen)
        detail = (
            f"{count} of {len(KUBEVIRT_DEVICES)} devices allocatable "
            f"({KUBEVIRT_DEVICE_NAMESPACE}/{{{','.join(KUBEVIRT_DEVICES)}}})"
        )
    else:
        detail = f"{KUBEVIRT_SCHEDULABLE_LABEL} is not true"
    return Cell(Outcome.FAIL, detail, req.hint, runbook)


def _cluster_row(
    req: ClusterRequirement, answers: Answers, rules_loaded: bool, template: str
) -> ClusterRow:
    met = {s.labels.get("requirement"): s.value for s in answers["cluster_met"]}
    observed = {s.labels.get("requirement"): s.value for s in answers["cluster_observed"]}
    value, seen = met.get(req.name.value), observed.get(req.name.value)
    runbook = _runbook(req.alert, template)
    if value is None and seen is None:
        why = NOT_LOADED if not rules_loaded else f"no {req.source} series in Prometheus"
        cell = Cell(Outcome.ERROR, why, "", _runbook(METRICS_ABSENT_ALERT, template))
    elif value is None:
        cell = Cell(None, "the cluster has one node: nothing to migrate to")
    else:
        verdict = Outcome.PASS if value >= 1 else Outcome.FAIL
        detail = _cluster_detail(req, seen, answers)
        cell = Cell(verdict, detail, "" if verdict is Outcome.PASS else req.hint, runbook)
    return ClusterRow(req.name, req.title, seen, cell)


def _cluster_detail(req: ClusterRequirement, seen: float | None, answers: Answers) -> str:
    if req.name is ClusterReq.SHARED_STORAGE:
        classes = answers["vm_class"]
        if not classes:
            return "no StorageClass is default for VMs or for the cluster"
        parts = []
        for s in sorted(classes, key=lambda s: s.labels.get("storageclass", "")):
            name = s.labels.get("storageclass", "?")
            offers = "offers" if s.labels.get("rwx") == "true" else "offers no"
            incomplete = (
                " (StorageProfile incomplete)" if s.labels.get("complete") == "false" else ""
            )
            parts.append(
                f"StorageClass {name} ({s.labels.get('provisioner', '?')}) {offers} "
                f"ReadWriteMany{incomplete}"
            )
        return "; ".join(parts)
    if req.name is ClusterReq.KVM_NODES:
        count = 0 if seen is None else int(seen)
        return (
            f"{count} nodes offer {KUBEVIRT_DEVICE_NAMESPACE}/kvm "
            f"(at least {req.threshold:g} for live migration)"
        )
    return "" if seen is None else req.format(seen)


def assemble(answers: Answers, template: str = DEFAULT_RUNBOOK_URL) -> FleetReport:
    """The report from Prometheus' answers; FleetError when they hold no node at all."""
    notes: list[str] = []
    exporters: dict[str, Exporter] = {}
    for s in sorted(answers["info"], key=lambda s: s.labels.get("instance", "")):
        node = s.labels.get("node", "")
        found = Exporter(
            s.labels.get("instance", ""), s.labels.get("role", ""), s.labels.get("profile", "")
        )
        if node in exporters:
            notes.append(
                f"two exporters report node {node}: {exporters[node].instance} (shown) and "
                f"{found.instance}"
            )
            continue
        exporters[node] = found
    ksm_nodes = {s.labels.get("node", "") for s in answers["reporting"]}
    if not exporters and not ksm_nodes:
        raise FleetError(
            f"Prometheus at {answers.prometheus} holds no kubev_node_info{{{answers.selector}}} "
            f"and no {recorded.EXPORTER_REPORTING} (recorded from kube-state-metrics): a wrong "
            "URL or --selector, or nothing scraped yet"
        )
    rules_loaded = answers.rules is None or recorded.CLUSTER_MET in answers.rules
    if not rules_loaded:
        notes.append(f"{NOT_LOADED}: the cluster's verdicts are unknown")
    down = sorted(s.labels.get("instance", "") for s in answers["up"] if s.value == 0)
    if down:
        notes.append(f"exporter targets down: {', '.join(down)}")
    index = _Index(answers)
    known = {r.value for r in Req}
    foreign = sorted({req for _, req in index.met} - known)
    if foreign:
        notes.append(
            f"requirements this fleet command does not know, left out: {', '.join(foreign)}"
        )

    node_met = {
        (s.labels.get("node", ""), s.labels.get("requirement", "")): s.value
        for s in answers["node_met"]
    }
    node_observed = {
        (s.labels.get("node", ""), s.labels.get("requirement", "")): s.value
        for s in answers["node_observed"]
    }
    cols = columns()
    rows = []
    for node in sorted(set(exporters) | ksm_nodes):
        exporter = exporters.get(node)
        cells: dict[str, Cell] = {}
        for column in cols:
            if column.source == "cluster":
                req = CLUSTER_REQUIREMENTS[ClusterReq(column.requirement)]
                cells[column.requirement] = _node_cluster_cell(
                    req, node, exporter, node_met, node_observed, ksm_nodes, rules_loaded, template
                )
            elif exporter is None:
                cells[column.requirement] = Cell(Outcome.UNKNOWN, "no exporter on this node")
            else:
                cells[column.requirement] = _exporter_cell(
                    index, exporter, Req(column.requirement), template
                )
        if exporter is None:
            reporting = Cell(
                Outcome.ERROR,
                "no kubev-node-exporter reports this node",
                EXPORTER_MISSING_HINT,
                _runbook(EXPORTER_MISSING_ALERT, template),
            )
        else:
            reporting = Cell(Outcome.PASS, exporter.instance)
        rows.append(NodeRow(node, exporter, reporting, cells))

    cluster = tuple(
        _cluster_row(req, answers, rules_loaded, template)
        for req in CLUSTER_REQUIREMENTS.values()
        if req.extent is Extent.CLUSTER
    )
    return FleetReport(
        prometheus=answers.prometheus,
        selector=answers.selector,
        generated_at=answers.at,
        cluster=cluster,
        columns=cols,
        nodes=tuple(rows),
        notes=tuple(notes),
    )
