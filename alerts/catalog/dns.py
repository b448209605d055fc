"""Alerts of the dns check (exporter/checks/dns.py): resolution, its speed, NodeLocal DNSCache."""

from __future__ import annotations

from alerts.catalog.common import INSTANCE, JOB, NODE1, SELECTOR, Alert, Case, Rule
from exporter.checks import ROWS
from exporter.checks.nodelocal import NODELOCAL_ADDRESS as NODELOCAL_DNS_ADDRESS
from exporter.spec import DNS_SLOW_SECONDS, Req

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevDNSResolutionFailing",
        rules=(
            Rule(
                expr=f"kubev_dns_resolution_success{{{SELECTOR}}} == 0",
                severity="critical",
                for_="5m",
                summary="DNS resolution fails on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} does not resolve through "
                "the node's resolver.",
            ),
        ),
        meaning="A configured name did not resolve (NXDOMAIN, SERVFAIL or no answer within "
        "the lookup timeout) for 5 minutes.",
        impact="Nodes cannot find each other or external services: image pulls, API access "
        "and VM networking break.",
        diagnosis=(
            "The exporter's log says why; on the node: `getent hosts NAME`, "
            "`cat /etc/resolv.conf`, `dig NAME @NAMESERVER`.",
        ),
        mitigation=(
            ROWS[Req.DNS].hint,
            "Fix the resolver configuration or the DNS server; add the name to DNS.",
        ),
        cases=(
            Case(
                {f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "0x10"},
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "name": "api.example.com",
                        "severity": "critical",
                        "description": "node-1:19100: api.example.com does not resolve through the "
                        "node's resolver.",
                    },
                ),
            ),
            Case({f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x10"}, "8m"),
        ),
    ),
    Alert(
        name="KubevDNSResolutionSlow",
        rules=(
            Rule(
                # a failing name is KubevDNSResolutionFailing's; its duration is the timeout
                expr=f"kubev_dns_resolution_duration_seconds{{{SELECTOR}}} > {DNS_SLOW_SECONDS:g} "
                f"and on(instance, job, name) kubev_dns_resolution_success{{{SELECTOR}}} == 1",
                severity="warning",
                for_="15m",
                summary="DNS resolution is slow on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} takes "
                "{{ $value | humanizeDuration }} to resolve (warning above "
                f"{DNS_SLOW_SECONDS * 1000:g}ms).",
            ),
        ),
        meaning=f"A name resolves, but slower than {DNS_SLOW_SECONDS * 1000:g} ms, for 15 minutes.",
        impact="Every new connection waits; timeouts cascade in components with short deadlines.",
        diagnosis=(
            "`dig NAME` timing on the node; is the first nameserver in resolv.conf down "
            "(each lookup waits for its timeout before the next)?",
        ),
        mitigation=("Remove dead nameservers, add a local cache, fix the upstream resolver.",),
        cases=(
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com"}}': "2x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x30",
                },
                "20m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "name": "api.example.com",
                        "severity": "warning",
                        "description": "node-1:19100: api.example.com takes 2s to resolve (warning "
                        "above 500ms).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com"}}': "0.01x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com"}}': "1x30",
                },
                "20m",
            ),
        ),
    ),
    Alert(
        name="KubevNodeLocalDNSCacheDetected",
        rules=(
            Rule(
                expr=f"kubev_dns_nodelocal_cache_detected{{{SELECTOR}}} == 1",
                severity="info",
                for_="1h",
                summary="NodeLocal DNSCache runs on a node that hosts VMs",
                description="{{ $labels.instance }}: NodeLocal DNSCache "
                f"({NODELOCAL_DNS_ADDRESS}) is in use. Guest clusters in VMs that run it too need "
                "their dnsConfig/dnsPolicy adjusted.",
            ),
        ),
        meaning=f"{NODELOCAL_DNS_ADDRESS}, NodeLocal DNSCache's default address, is configured "
        "on the node or used as its nameserver.",
        impact="None by itself. Guest Kubernetes clusters in KubeVirt VMs that also run "
        "NodeLocal DNSCache on the same address can get answers from the wrong cluster.",
        diagnosis=(
            f"`ip addr | grep {NODELOCAL_DNS_ADDRESS}`; in a guest VM: `cat /etc/resolv.conf` "
            "of a pod, `nslookup kubernetes.default`.",
        ),
        mitigation=(
            "Give guest VMs `dnsPolicy: None` with an explicit `dnsConfig`, or run "
            "one NodeLocal DNSCache on another address (docs/dns.md).",
        ),
        cases=(
            Case(
                {f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "1x70"},
                "65m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "severity": "info",
                        "description": "node-1:19100: NodeLocal DNSCache (169.254.20.10) is in use. "
                        "Guest clusters in VMs that run it too need their dnsConfig/dnsPolicy "
                        "adjusted.",
                    },
                ),
            ),
            Case({f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "0x70"}, "65m"),
        ),
    ),
)
