"""What the catalog is made of (rules, promtool cases, alerts), how it is rendered for a
deployment (RuleSettings), and the helpers the area modules share.

Series selectors. Every expression, and every annotation template that looks up another
series with `query`, writes its selectors as `metric{<selector>}` or
`metric{<selector>,label="value"}`. SELECTOR stands for the job selector until the
generator renders the catalog with RuleSettings. A placeholder rather than the selector
itself, so that one catalog renders for Prometheus (`job="kubev-node-exporter"`) and for a
jsonnet mixin (`%(kubevSelector)s`, once the texts' own `%` are escaped); left unrendered it
is not valid PromQL, so promtool would refuse it. Prose may cite it too (the runbooks are
rendered the same way), to name the selector a deployment's rules expect.

Annotation templates pass those selectors to printf in Go raw strings (`...`): a selector
carries double quotes, which a "..." template string would need escaped.

Series of other exporters carry their own placeholders: KSM for kube-state-metrics' and CDI
for CDI's (alerts/catalog/cluster.py), rendered from RuleSettings.ksm_selector and
.cdi_selector. They are not the exporter's job, and a deployment scrapes them under names
of its own.

Several clusters in one Prometheus. The same instance can exist in two clusters, told apart
by a `cluster` label that the series carry there and lack on a one-cluster Prometheus.
Nothing here aggregates or joins that label away: recording rules sum `without` the
labels they fold, joins match every label but those that differ by design (`ignoring`),
and a description's lookup of another series names the alert's own `cluster` value, which
is "" where the label is absent, and `cluster=""` selects series without it.

Severity. A rule's severity follows from its Impact alone (SEVERITY), and a requirement
rule's Impact from REQUIREMENT_IMPACT: one table decides what pages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from exporter.spec import PORTS, PROFILES, Comparison, Level, Req, Requirement

#: the job the exporter is scraped as by default (deploy/, deploy/prometheus/prometheus.yml)
JOB = "kubev-node-exporter"

#: Stands for the job selector in expressions and query templates; see the module docstring.
SELECTOR = "<selector>"
#: Stand for the selectors of kube-state-metrics' and CDI's series
KSM = "<ksm_selector>"
CDI = "<cdi_selector>"
#: ... and of the Kube-OVN pinger's (alerts/catalog/peers.py: the overlay's evidence)
PINGER = "<pinger_selector>"
PLACEHOLDERS = (SELECTOR, KSM, CDI, PINGER)

#: kube-state-metrics' job where kube-prometheus and the kubernetes-mixin expect it
#: (kubernetes-monitoring/kubernetes-mixin config.libsonnet: kubeStateMetricsSelector)
KSM_JOB = "kube-state-metrics"
#: the Kube-OVN pinger's Service (kubeovn/kube-ovn dist/images/install.sh: Service
#: kube-ovn-pinger, port 8080 `metrics`), the job name a ServiceMonitor of it gets
PINGER_JOB = "kube-ovn-pinger"
#: CDI's operator scrapes its controller through the Service cdi-prometheus-metrics, which
#: becomes the job name under the prometheus-operator (kubevirt/containerized-data-importer
#: pkg/common/common.go PrometheusServiceName; pkg/operator/controller/prometheus.go,
#: ServiceMonitor service-monitor-cdi). The regex takes it and a hand-written job named
#: after CDI alike; the rules read CDI's series through `max by`, so two jobs that scrape
#: the same CDI do no harm.
CDI_SELECTOR = 'job=~".*cdi.*"'

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration_seconds(text: str) -> int:
    """'1h30m', '15m', '2s', '0s' -> seconds (the forms the catalog's `for` takes)."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration of hours, minutes and seconds: {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


#: the label that tells clusters apart on a Prometheus that holds several (the name the
#: dashboards filter by too: dashboards/common.py CLUSTER_LABEL)
CLUSTER_LABEL = "cluster"


# --- what pages -----------------------------------------------------------------------------


class Impact(StrEnum):
    """What a rule's condition does to VMs and the platform: the one thing its severity
    follows (DESIGN.md "Alerting principle"). Page only for what stops them now; what the
    machine is (its size, its CPU flags, its disks) is the same tomorrow, so it is a ticket
    and a verdict of the `check` command before install."""

    #: VMs or the platform stop now (a VM cannot start, the node's network or the control
    #: plane is down), or will before a ticket is read (a filesystem full within hours)
    STOPS = "stops"
    #: slower, less redundant, less watched, or heading for trouble; nothing stopped yet
    DEGRADES = "degrades"
    #: a static fact of the machine against the spec: sizing, a hidden VT-x flag, a disk's
    #: medium, a NIC's speed
    STATIC = "static"
    #: worth knowing; nothing is wrong by itself
    ADVISORY = "advisory"


#: the severity label of each impact
SEVERITY: Mapping[Impact, str] = {
    Impact.STOPS: "critical",
    Impact.DEGRADES: "warning",
    Impact.STATIC: "warning",
    Impact.ADVISORY: "info",
}

#: What failing each requirement's minimum does to the node. The spec decides what a
#: requirement is and its levels; this decides what a miss pages.
REQUIREMENT_IMPACT: Mapping[Req, Impact] = {
    # VM pods stay Pending: "Insufficient devices.kubevirt.io/kvm" (or tun, vhost-net)
    Req.KVM: Impact.STOPS,
    Req.TUN: Impact.STOPS,
    Req.VHOST_NET: Impact.STOPS,
    # virt-handler crash-loops: no VM runs on the node
    Req.CPU_BASELINE: Impact.STOPS,
    # no pod network (openvswitch, geneve); kubelet and libvirt cannot confine (cgroups)
    Req.KERNEL_MODULES: Impact.STOPS,
    Req.CGROUP_CONTROLLERS: Impact.STOPS,
    # a platform component is down or unreachable; for Kube-OVN, kube-ovn-cni is the one
    # that stops the node's pod network (KubevOVNEndpointDown warns for the others)
    Req.PORTS: Impact.STOPS,
    Req.OVN_ENDPOINTS: Impact.STOPS,
    Req.DNS: Impact.STOPS,
    # a port blocked between nodes: KubevPeerPortBlocked pages for the ports whose block
    # stops the platform (the API server, the SB database, Geneve) and warns for the rest
    Req.PEER_REACHABILITY: Impact.STOPS,
    # slow, not stopped: an fsync p99 at or beyond spec.FSYNC_CRITICAL_SECONDS pages on its
    # own (KubevStorageFsyncSlow's critical rule)
    Req.DISK_LATENCY: Impact.DEGRADES,
    # what the machine is
    Req.CPU_CORES: Impact.STATIC,
    Req.MEMORY: Impact.STATIC,
    Req.STORAGE_SOLID_STATE: Impact.STATIC,
    Req.NIC_SPEED: Impact.STATIC,
    # the CPU flag as the spec writes it; a /dev/kvm that works without it is Req.KVM's
    Req.VIRTUALIZATION_EXTENSIONS: Impact.STATIC,
}
if REQUIREMENT_IMPACT.keys() != set(Req):
    # a new requirement decides here whether missing it pages
    raise ImportError(f"requirements without an impact: {set(Req) - REQUIREMENT_IMPACT.keys()}")


def requirement_impact(requirement: Req, level: Level) -> Impact:
    """What a miss at this level does: the minimum's impact, and a missed recommendation
    never more than a ticket (what the machine is stays STATIC)."""
    impact = REQUIREMENT_IMPACT[requirement]
    if level is Level.MINIMUM or impact is Impact.STATIC:
        return impact
    return Impact.DEGRADES


@dataclass(frozen=True)
class RuleSettings:
    """What one rendering of the catalog is for."""

    #: label matchers every series selector of the exporter's series starts with
    selector: str = f'job="{JOB}"'
    #: ... of kube-state-metrics' series (kube_node_*)
    ksm_selector: str = f'job="{KSM_JOB}"'
    #: ... of CDI's series (kubevirt_cdi_*)
    cdi_selector: str = CDI_SELECTOR
    #: ... of the Kube-OVN pinger's series (pinger_node_ping_*)
    pinger_selector: str = f'job="{PINGER_JOB}"'
    #: every alert's `for` at most this long ("": as the catalog says). For tests that
    #: watch alerts fire in a real Prometheus without waiting the real quarter of an hour.
    max_for: str = ""

    def __post_init__(self) -> None:
        for name in ("selector", "ksm_selector", "cdi_selector", "pinger_selector"):
            value = getattr(self, name)
            if not value.strip():
                raise ValueError(f"the {name} is empty: `metric{{,label=...}}` is not PromQL")
            if "`" in value:
                raise ValueError(f"the {name} has a backquote: templates quote it in `...`")
        if self.max_for:
            duration_seconds(self.max_for)

    def render(self, text: str) -> str:
        """An expression or annotation with the placeholders replaced by these selectors."""
        return (
            text.replace(SELECTOR, self.selector)
            .replace(KSM, self.ksm_selector)
            .replace(CDI, self.cdi_selector)
            .replace(PINGER, self.pinger_selector)
        )

    def for_(self, duration: str) -> str:
        """A rule's `for`, capped at max_for."""
        if self.max_for and duration_seconds(duration) > duration_seconds(self.max_for):
            return self.max_for
        return duration


@dataclass(frozen=True)
class Rule:
    """One alerting rule of an alert."""

    expr: str
    #: what its condition does; its severity label follows (SEVERITY)
    impact: Impact
    for_: str
    summary: str
    description: str
    #: labels beside severity: a requirement rule's level, and what tells two rules of one
    #: alert with the same severity apart
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def severity(self) -> str:
        return SEVERITY[self.impact]


@dataclass(frozen=True)
class ExprCase:
    """A promtool case for an expression: input series, the time to evaluate, and every
    sample the expression must return there (its labels as PromQL writes a series, and
    its value)."""

    series: dict[str, str]
    eval_time: str
    expr: str
    samples: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class RecordingCase:
    """A promtool case of a recording rule: input series, the time to evaluate, and the
    samples the rule's record must hold there (series text -> value; none: it is absent)."""

    series: dict[str, str]
    eval_time: str
    samples: dict[str, float]


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    #: labels the rule adds to what it records
    labels: tuple[tuple[str, str], ...] = ()
    #: promtool cases of what it records: the record's samples (RecordingCase), or any
    #: expression's over it (ExprCase)
    cases: tuple[RecordingCase | ExprCase, ...] = ()

    @property
    def selector(self) -> str:
        """The series this rule records, as a selector: its name and its own labels."""
        if not self.labels:
            return self.record
        return self.record + "{" + ",".join(f'{k}="{v}"' for k, v in self.labels) + "}"


@dataclass(frozen=True)
class Case:
    """A promtool case: input series, the time to evaluate, and what must fire there."""

    series: dict[str, str]
    eval_time: str
    fires: tuple[dict[str, str], ...] = ()  # each: labels + "description"


@dataclass(frozen=True)
class Alert:
    name: str
    rules: tuple[Rule, ...]
    meaning: str
    impact: str
    diagnosis: tuple[str, ...]
    mitigation: tuple[str, ...]
    cases: tuple[Case, ...] = field(default=())

    def prose(self) -> tuple[str, ...]:
        """Every text written for people: the runbook's and the rules' annotations."""
        annotations = (text for rule in self.rules for text in (rule.summary, rule.description))
        return (self.meaning, self.impact, *self.diagnosis, *self.mitigation, *annotations)


# --- numbers from exporter/spec.py, for the prose ------------------------------------------


def _levels_text(req: Requirement) -> str:
    """'8 GiB minimum, 16 GiB recommended', or '16 cores' when both levels agree."""
    values = {level: req.format(value) for level, value in req.thresholds.items()}
    if len(set(values.values())) == 1 and len(values) > 1:
        return next(iter(values.values()))
    return ", ".join(f"{value} {level}" for level, value in values.items())


def thresholds_text(requirement: Req) -> str:
    """A requirement's thresholds for prose, per profile ('testing: 8 cores minimum,
    16 cores recommended; production: 16 cores'), or once when every profile agrees."""
    per_profile = {profile: _levels_text(reqs[requirement]) for profile, reqs in PROFILES.items()}
    if len(set(per_profile.values())) == 1:
        return f"{next(iter(per_profile.values()))} in every profile"
    return "; ".join(f"{profile}: {text}" for profile, text in per_profile.items())


def levels_of(requirement: Req) -> set[Level]:
    """The levels any profile sets for the requirement."""
    return {level for reqs in PROFILES.values() for level in reqs[requirement].thresholds}


def port_of(component: str) -> int:
    """The (first) port of a component in the spec's port table."""
    return next(row.first for row in PORTS if row.component == component)


# --- looking up another series of the alert's node -----------------------------------------

#: the labels a description's lookup shares with the alert: its node, on its cluster
NODE_LABELS = ("instance", "job", CLUSTER_LABEL)


def lookup(metric: str, *, matchers: str = "", same: tuple[str, ...] = (), where: str = "") -> str:
    """A template pipeline (`printf ... | query`) for `metric` on the alert's own node: its
    instance, job and cluster (`cluster=""` where the alert has none: series without the
    label), the alert's values of the labels in `same`, and the fixed `matchers`
    (`,level="minimum"`); `where` follows the selector (` == 1`). `index` gives "" for a
    label the alert lacks, where `$labels.x` would give no value at all."""
    names = (*NODE_LABELS, *same)
    selector = ",".join(f"{name}=%q" for name in names)
    values = " ".join(f'(index $labels "{name}")' for name in names)
    return f"printf `{metric}{{{SELECTOR},{selector}{matchers}}}{where}` {values} | query"


# --- rules of a requirement -----------------------------------------------------------------

#: how prose names a level
LEVEL_WORD = {Level.MINIMUM: "minimum", Level.RECOMMENDED: "recommendation"}


def threshold_query(requirement: Req, level: Level, fmt: str) -> str:
    """A template that shows the node's own threshold, as its exporter reports it."""
    where = f',requirement="{requirement}",level="{level}"'
    return (
        f"{{{{ with {lookup('kubev_requirement_threshold', matchers=where)} }}}}"
        f"{{{{ . | first | value{fmt} }}}}{{{{ end }}}}"
    )


def requirement_met(requirement: Req, level: Level) -> str:
    """The selector of a requirement's verdict at one level, where it fails."""
    return f'kubev_requirement_met{{{SELECTOR},requirement="{requirement}",level="{level}"}} == 0'


def comparison_of(requirement: Req) -> Comparison:
    """How the requirement compares (every profile compares it alike)."""
    return next(iter(PROFILES.values()))[requirement].comparison


def requirement_rules(
    requirement: Req, summary: str, what: str, fmt: str = "", for_: str = "1m"
) -> tuple[Rule, ...]:
    """A rule for each level a profile sets: the minimum's where it fails, the
    recommendation's where only it does. Each carries its `level` label (routing and
    inhibition tell them apart by it) and the severity requirement_impact gives it.

    $value is the observed value; the threshold comes from the node's own profile, so one
    rule serves every profile. The observed series (requirement, unit) and the verdict
    (requirement, level) join on every other label, a cluster label included."""
    observed = f'kubev_requirement_observed{{{SELECTOR},requirement="{requirement}"}}'
    levels = levels_of(requirement)
    at_most = comparison_of(requirement) is Comparison.AT_MOST
    rules = []
    for level in (Level.MINIMUM, Level.RECOMMENDED):
        if level not in levels:
            continue
        expr = f"{observed} and ignoring(level, unit) ({requirement_met(requirement, level)})"
        if level is not Level.MINIMUM and Level.MINIMUM in levels:
            # where the minimum fails too, its rule says it
            minimum = requirement_met(requirement, Level.MINIMUM)
            expr = f"({expr}) unless ignoring(level, unit) ({minimum})"
        threshold = threshold_query(requirement, level, fmt)
        rules.append(
            Rule(
                expr=expr,
                impact=requirement_impact(requirement, level),
                for_=for_,
                summary=f"{summary} ({LEVEL_WORD[level]} not met)",
                description=f"{{{{ $labels.instance }}}}: {what} is {{{{ $value{fmt} }}}}; the "
                f"{LEVEL_WORD[level]} of its profile is {'at most ' if at_most else ''}"
                f"{threshold}.",
                labels=(("level", level.value),),
            )
        )
    return tuple(rules)


# --- promtool series and expectations -------------------------------------------------------

#: the instance of the promtool test series
INSTANCE = "node-1:19100"
#: labels of every promtool test series: as Prometheus scrapes the default job
NODE1 = f'instance="{INSTANCE}",job="{JOB}"'


def requirement_series(
    requirement: Req,
    unit: str,
    observed: float,
    thresholds: dict[str, float],
    met: dict[str, int],
    *,
    cluster: str | None = None,
) -> dict[str, str]:
    """A node's observed value, thresholds and verdicts for one requirement, 10 minutes long;
    with a cluster label where one is given."""
    labels = f'{NODE1},requirement="{requirement}"'
    if cluster is not None:
        labels += f',{CLUSTER_LABEL}="{cluster}"'
    series = {f'kubev_requirement_observed{{{labels},unit="{unit}"}}': f"{observed:g}x10"}
    for level, value in thresholds.items():
        series[f'kubev_requirement_threshold{{{labels},level="{level}",unit="{unit}"}}'] = (
            f"{value:g}x10"
        )
    for level, ok in met.items():
        series[f'kubev_requirement_met{{{labels},level="{level}"}}'] = f"{ok}x10"
    return series


def fired(
    requirement: Req, unit: str, level: Level, description: str, **labels: str
) -> dict[str, str]:
    """What a requirement alert fires with: the observed series' labels, the level and the
    severity the policy gives a miss at that level (SEVERITY, requirement_impact)."""
    return {
        "instance": INSTANCE,
        "job": JOB,
        "requirement": requirement.value,  # a plain str: YAML's safe dumper wants one
        "unit": unit,
        **labels,
        "level": level.value,
        "severity": SEVERITY[requirement_impact(requirement, level)],
        "description": description,
    }


def minimum_alert(
    name: str,
    requirement: Req,
    *,
    summary: str,
    description: str,
    meaning: str,
    impact: str,
    diagnosis: tuple[str, ...],
    mitigation: tuple[str, ...],
    for_: str = "5m",
) -> Alert:
    """An alert on a yes/no requirement's minimum verdict, with the promtool cases that prove
    it fires at 0 (with the severity REQUIREMENT_IMPACT gives it) and stays quiet at 1. Its
    runbook's Mitigation opens with the report row's hint, so the two never disagree.

    `description` is the text after "{{ $labels.instance }}: "."""
    from exporter.checks import ROWS  # the registry imports the checks: late, at build time

    series = f'kubev_requirement_met{{{NODE1},requirement="{requirement}",level="minimum"}}'
    rule_impact = requirement_impact(requirement, Level.MINIMUM)
    return Alert(
        name=name,
        rules=(
            Rule(
                expr=requirement_met(requirement, Level.MINIMUM),
                impact=rule_impact,
                for_=for_,
                summary=summary,
                description=f"{{{{ $labels.instance }}}}: {description}",
                labels=(("level", Level.MINIMUM.value),),
            ),
        ),
        meaning=meaning,
        impact=impact,
        diagnosis=diagnosis,
        mitigation=(ROWS[requirement].hint, *mitigation),
        cases=(
            Case(
                {series: "0x20"},
                "15m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "requirement": requirement.value,
                        "level": "minimum",
                        "severity": SEVERITY[rule_impact],
                        "description": f"{INSTANCE}: {description}",
                    },
                ),
            ),
            Case({series: "1x20"}, "15m"),
        ),
    )
