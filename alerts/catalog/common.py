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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporter.spec import PORTS, PROFILES, Level, Req, Requirement

#: the job the exporter is scraped as by default (deploy/, deploy/prometheus/prometheus.yml)
JOB = "kubev-node-exporter"

#: Stands for the job selector in expressions and query templates; see the module docstring.
SELECTOR = "<selector>"
#: Stand for the selectors of kube-state-metrics' and CDI's series
KSM = "<ksm_selector>"
CDI = "<cdi_selector>"
PLACEHOLDERS = (SELECTOR, KSM, CDI)

#: kube-state-metrics' job where kube-prometheus and the kubernetes-mixin expect it
#: (kubernetes-monitoring/kubernetes-mixin config.libsonnet: kubeStateMetricsSelector)
KSM_JOB = "kube-state-metrics"
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


@dataclass(frozen=True)
class RuleSettings:
    """What one rendering of the catalog is for."""

    #: label matchers every series selector of the exporter's series starts with
    selector: str = f'job="{JOB}"'
    #: ... of kube-state-metrics' series (kube_node_*)
    ksm_selector: str = f'job="{KSM_JOB}"'
    #: ... of CDI's series (kubevirt_cdi_*)
    cdi_selector: str = CDI_SELECTOR
    #: every alert's `for` at most this long ("": as the catalog says). For tests that
    #: watch alerts fire in a real Prometheus without waiting the real quarter of an hour.
    max_for: str = ""

    def __post_init__(self) -> None:
        for name in ("selector", "ksm_selector", "cdi_selector"):
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
    severity: str  # critical, warning, info
    for_: str
    summary: str
    description: str
    #: labels beside severity, when two rules of one alert share a severity
    labels: tuple[tuple[str, str], ...] = ()


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
    cases: tuple[RecordingCase, ...] = ()

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


# --- rules of a requirement -----------------------------------------------------------------


def threshold_query(requirement: Req, level: Level, fmt: str) -> str:
    """A template that shows the node's own threshold, as its exporter reports it."""
    return (
        "{{ with printf "
        f"`kubev_requirement_threshold{{{SELECTOR},instance=%q,requirement=%q,level=%q}}` "
        f'$labels.instance "{requirement}" "{level}" | query }}}}'
        f"{{{{ . | first | value{fmt} }}}}{{{{ end }}}}"
    )


def requirement_met(requirement: Req, level: Level) -> str:
    """The selector of a requirement's verdict at one level, where it fails."""
    return f'kubev_requirement_met{{{SELECTOR},requirement="{requirement}",level="{level}"}} == 0'


def requirement_rules(
    requirement: Req, summary: str, what: str, fmt: str = "", for_: str = "1m"
) -> tuple[Rule, ...]:
    """Critical where the minimum fails, warning where only the recommendation does.

    $value is the observed value; the threshold comes from the node's own profile, so one
    rule serves every profile."""
    observed = f'kubev_requirement_observed{{{SELECTOR},requirement="{requirement}"}}'
    minimum = requirement_met(requirement, Level.MINIMUM)
    recommended = requirement_met(requirement, Level.RECOMMENDED)
    rules = []
    if Level.MINIMUM in levels_of(requirement):
        rules.append(
            Rule(
                expr=f"{observed} and on(instance, job) ({minimum})",
                severity="critical",
                for_=for_,
                summary=f"{summary} (below the minimum)",
                description=f"{{{{ $labels.instance }}}}: {what} is {{{{ $value{fmt} }}}}; the "
                f"minimum of its profile is {threshold_query(requirement, Level.MINIMUM, fmt)}.",
            )
        )
    if Level.RECOMMENDED in levels_of(requirement):
        threshold = threshold_query(requirement, Level.RECOMMENDED, fmt)
        rules.append(
            Rule(
                expr=f"({observed} and on(instance, job) ({recommended})) "
                f"unless on(instance, job) ({minimum})",
                severity="warning",
                for_=for_,
                summary=f"{summary} (below the recommendation)",
                description=f"{{{{ $labels.instance }}}}: {what} is {{{{ $value{fmt} }}}}; the "
                f"recommendation of its profile is {threshold}.",
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
) -> dict[str, str]:
    """A node's observed value, thresholds and verdicts for one requirement, 10 minutes long."""
    labels = f'{NODE1},requirement="{requirement}"'
    series = {f'kubev_requirement_observed{{{labels},unit="{unit}"}}': f"{observed:g}x10"}
    for level, value in thresholds.items():
        series[f'kubev_requirement_threshold{{{labels},level="{level}",unit="{unit}"}}'] = (
            f"{value:g}x10"
        )
    for level, ok in met.items():
        series[f'kubev_requirement_met{{{labels},level="{level}"}}'] = f"{ok}x10"
    return series


def fired(requirement: Req, unit: str, severity: str, description: str) -> dict[str, str]:
    """What a requirement alert fires with: the observed series' labels and the severity."""
    return {
        "instance": INSTANCE,
        "job": JOB,
        "requirement": requirement.value,  # a plain str: YAML's safe dumper wants one
        "unit": unit,
        "severity": severity,
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
    severity: str = "critical",
) -> Alert:
    """An alert on a yes/no requirement's minimum verdict (the node cannot run VMs without
    it), with the promtool cases that prove it fires at 0 and stays quiet at 1. Its
    runbook's Mitigation opens with the report row's hint, so the two never disagree.

    `description` is the text after "{{ $labels.instance }}: "."""
    from exporter.checks import ROWS  # the registry imports the checks: late, at build time

    series = f'kubev_requirement_met{{{NODE1},requirement="{requirement}",level="minimum"}}'
    return Alert(
        name=name,
        rules=(
            Rule(
                expr=requirement_met(requirement, Level.MINIMUM),
                severity=severity,
                for_=for_,
                summary=summary,
                description=f"{{{{ $labels.instance }}}}: {description}",
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
                        "severity": severity,
                        "description": f"{INSTANCE}: {description}",
                    },
                ),
            ),
            Case({series: "1x20"}, "15m"),
        ),
    )
