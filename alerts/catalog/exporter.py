"""The exporter's own health: a check that keeps failing, a target that cannot be scraped,
and no target at all. Without these, every other alert of the pack could be silent for the
wrong reason. None of them pages: a blind exporter stops no VM (Impact.DEGRADES); what it
would have seen pages on its own once it is back."""

from __future__ import annotations

from alerts.catalog.common import INSTANCE, JOB, NODE1, SELECTOR, Alert, Case, Impact, Rule
from exporter.web import DEFAULT_PORT

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevCheckFailing",
        rules=(
            Rule(
                expr=f"kubev_check_success{{{SELECTOR}}} == 0",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="An exporter check keeps failing",
                description="{{ $labels.instance }}: the {{ $labels.check }} check has failed for "
                "15 minutes; its requirements are unknown meanwhile.",
            ),
        ),
        meaning="One of the exporter's checks could not run (a file missing or garbled, a "
        "timeout) for 15 minutes. Its metrics and verdicts are absent meanwhile.",
        impact="The requirements that check covers are not watched: a failure there would go "
        "unnoticed.",
        diagnosis=(
            'The exporter\'s log: `msg="check failed" check=NAME err=...` names the file '
            "or the timeout; `kubev_check_runs_total` by result.",
        ),
        mitigation=(
            "Fix what the error names (mounts of /proc, /sys, /dev into the pod, "
            "permissions), or raise the check's timeout.",
        ),
        cases=(
            Case(
                {f'kubev_check_success{{{NODE1},check="disk"}}': "0x20"},
                "18m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "check": "disk",
                        "severity": "warning",
                        "description": "node-1:19100: the disk check has failed for 15 minutes; its "
                        "requirements are unknown meanwhile.",
                    },
                ),
            ),
            Case({f'kubev_check_success{{{NODE1},check="disk"}}': "1x20"}, "18m"),
        ),
    ),
    Alert(
        name="KubevExporterDown",
        rules=(
            Rule(
                expr=f"up{{{SELECTOR}}} == 0",
                impact=Impact.DEGRADES,
                for_="5m",
                summary="The node's exporter cannot be scraped",
                description="{{ $labels.instance }}: Prometheus cannot scrape the exporter (job "
                "{{ $labels.job }}); the node's requirements are not watched.",
            ),
        ),
        meaning="Prometheus cannot scrape an exporter (its target is down).",
        impact="Nothing stops by itself, but nothing on that node is watched: every other alert "
        "of this pack is silent there until the exporter is back. A node that is down as a "
        "whole fires this too; Kubernetes' own node alerts say so.",
        diagnosis=(
            "Prometheus's Targets page for the job; on the node: `curl -s "
            f"NODE:{DEFAULT_PORT}/-/healthy`; `kubectl -n monitoring get ds,pods -l "
            "app.kubernetes.io/name=kubev-node-exporter`.",
        ),
        mitigation=(
            "Restart the pod; check the ServiceMonitor/scrape config and network "
            f"policies between Prometheus and port {DEFAULT_PORT}.",
        ),
        cases=(
            Case(
                {f"up{{{NODE1}}}": "0x10"},
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "severity": "warning",
                        "description": "node-1:19100: Prometheus cannot scrape the exporter (job "
                        "kubev-node-exporter); the node's requirements are not watched.",
                    },
                ),
            ),
            Case({f"up{{{NODE1}}}": "1x20"}, "18m"),
        ),
    ),
    Alert(
        name="KubevExporterAbsent",
        rules=(
            Rule(
                expr=f"absent(up{{{SELECTOR}}})",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="No target of the node exporter at all",
                description=f"Prometheus has no target that matches {SELECTOR}: no node's "
                "requirements are watched.",
            ),
        ),
        meaning=f"Prometheus has no target that matches `{SELECTOR}` at all.",
        impact="Nothing stops by itself, but nothing is watched on any node: every other alert "
        "of this pack is silent.",
        diagnosis=(
            "Prometheus's Targets and Service Discovery pages; `kubectl get "
            "servicemonitor -A | grep kubev`; the scrape config's job name.",
        ),
        mitigation=(
            "Deploy the DaemonSet and its ServiceMonitor, or fix the job name in the "
            f"scrape config (the rules expect `{SELECTOR}`).",
        ),
        cases=(
            Case(
                {'up{instance="other:9100",job="other"}': "1x20"},
                "18m",
                (
                    {
                        "job": JOB,
                        "severity": "warning",
                        "description": f'Prometheus has no target that matches job="{JOB}": '
                        "no node's requirements are watched.",
                    },
                ),
            ),
            Case({f"up{{{NODE1}}}": "1x20"}, "18m"),
        ),
    ),
)
