"""Alerts of the ovn check (exporter/checks/ovn.py): Kube-OVN's metrics endpoints."""

from __future__ import annotations

from alerts.catalog.common import INSTANCE, JOB, NODE1, SELECTOR, Alert, Case, Rule, port_of
from exporter.checks import ROWS
from exporter.checks.ovn import COMPONENTS
from exporter.spec import Req

#: '10660 controller, 10661 monitor, 10665 cni', from the spec's port table
_ENDPOINTS = ", ".join(f"{port_of(c)} {c.removeprefix('kube-ovn-')}" for c in COMPONENTS)
_CNI_PORT = port_of("kube-ovn-cni")

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevOVNEndpointDown",
        rules=(
            Rule(
                # optional endpoints (not expected on the role) count once they answer HTTP
                expr=f"kubev_ovn_endpoint_up{{{SELECTOR}}} == 0 and on(instance, job, component, "
                f"port) (kubev_ovn_endpoint_expected{{{SELECTOR}}} == 1 or "
                f"kubev_ovn_endpoint_http_status{{{SELECTOR}}} > 0)",
                severity="critical",
                for_="5m",
                summary="A Kube-OVN metrics endpoint does not serve metrics",
                description="{{ $labels.instance }}: {{ $labels.component }} on port "
                "{{ $labels.port }} does not serve parseable metrics (HTTP status "
                f"{{{{ with printf `kubev_ovn_endpoint_http_status{{{SELECTOR},instance=%q,"
                "port=%q}` $labels.instance $labels.port | query }}{{ . | first | value }}"
                "{{ end }}).",
            ),
        ),
        meaning=f"GET /metrics on a Kube-OVN endpoint ({_ENDPOINTS}) did not return 200 with "
        "Prometheus text: required endpoints always count, optional ones once they answer at "
        "all.",
        impact="Kube-OVN's own monitoring goes blind; a failing kube-ovn-cni usually means pod "
        "networking on the node is broken too.",
        diagnosis=(
            "`kubev_ovn_endpoint_http_status` (0: no HTTP answer), the exporter's log line for "
            "the endpoint.",
            f"`curl -sk https://NODE_IP:{_CNI_PORT}/metrics | head`; `kubectl -n kube-system "
            "get pods -o wide | grep kube-ovn`.",
        ),
        mitigation=(
            ROWS[Req.OVN_ENDPOINTS].hint,
            "Restart the failing Kube-OVN pod; with secure serving, give the exporter "
            "a bearer token and CA (`checks.ovn`).",
        ),
        cases=(
            Case(
                {
                    f'kubev_ovn_endpoint_up{{{NODE1},component="kube-ovn-cni",port="10665"}}': "0x10",
                    f'kubev_ovn_endpoint_expected{{{NODE1},component="kube-ovn-cni",port="10665"}}': "1x10",
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="kube-ovn-cni",port="10665"}}': "500x10",
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": "kube-ovn-cni",
                        "port": "10665",
                        "severity": "critical",
                        "description": "node-1:19100: kube-ovn-cni on port 10665 does not serve "
                        "parseable metrics (HTTP status 500).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_ovn_endpoint_up{{{NODE1},component="kube-ovn-monitor",port="10661"}}': "0x10",
                    f'kubev_ovn_endpoint_expected{{{NODE1},component="kube-ovn-monitor",'
                    'port="10661"}': "0x10",
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="kube-ovn-monitor",'
                    'port="10661"}': "0x10",
                },
                "8m",
            ),
        ),
    ),
)
