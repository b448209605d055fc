"""Alerts of the dns check (exporter/checks/dns.py): resolution, its speed, NodeLocal DNSCache.

Every lookup is labelled with the resolver it went through (docs/dns.md): `node` (the
node's own resolver, getaddrinfo) or `cluster:IP` (a cluster DNS server kubelet gives pods,
asked directly)."""

from __future__ import annotations

from alerts.catalog.common import (
    INSTANCE,
    JOB,
    NODE1,
    SELECTOR,
    Alert,
    Case,
    Impact,
    Rule,
    lookup,
    requirement_impact,
)
from exporter.checks import ROWS
from exporter.checks.nodelocal import NODELOCAL_ADDRESS as NODELOCAL_DNS_ADDRESS
from exporter.spec import DNS_SLOW_SECONDS, Level, Req

#: the cluster DNS server of the promtool cases, and the name kubelet's clusterDomain gives
#: the API service there (kubeadm's defaults)
CLUSTER_RESOLVER = "cluster:10.96.0.10"
API_NAME = "kubernetes.default.svc.cluster.local"

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevDNSResolutionFailing",
        rules=(
            Rule(
                expr=f"kubev_dns_resolution_success{{{SELECTOR}}} == 0",
                impact=requirement_impact(Req.DNS, Level.MINIMUM),
                for_="5m",
                summary="DNS resolution fails on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} does not resolve via "
                "{{ $labels.resolver }}.",
            ),
        ),
        meaning="A name did not resolve (NXDOMAIN, SERVFAIL, REFUSED, no address or no answer "
        "within the lookup timeout) for 5 minutes. The `resolver` label says through what: "
        "`node` is the node's own resolver (/etc/hosts, /etc/resolv.conf), `cluster:IP` a "
        "cluster DNS server kubelet gives pods, asked directly (docs/dns.md).",
        impact="`cluster:IP`: pods and VMs with the default dnsPolicy cannot resolve through "
        "that server: Services by name, the API (kubernetes.default), external names; "
        "controllers and workloads that connect by name fail. `node`: the node cannot resolve "
        "the name: kubelet and the container runtime fail where they use it (image pulls "
        "from that registry, peers and servers named in checks.dns.names).",
        diagnosis=(
            "The exporter's log names the resolver and the reason (`DNS lookup of NAME via "
            "cluster:IP failed: ...`); the report's dns row lists every failing lookup.",
            "`node`: on the node `getent hosts NAME`, `cat /etc/resolv.conf`, "
            "`dig NAME @NAMESERVER` for each nameserver.",
            f"`cluster:IP`: `dig @IP NAME` and `dig @IP {API_NAME}` (with the cluster's "
            "clusterDomain) from the node; `kubectl -n kube-system get pods -l "
            "k8s-app=kube-dns -o wide`, their logs, and the Service's endpoints.",
        ),
        mitigation=(
            ROWS[Req.DNS].hint,
            "Add the name to DNS, or remove it from checks.dns.names if nothing needs it.",
        ),
        cases=(
            Case(
                {
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "0x10",
                    f'kubev_dns_resolution_success{{{NODE1},name="{API_NAME}",'
                    f'resolver="{CLUSTER_RESOLVER}"}}': "0x10",
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "name": "api.example.com",
                        "resolver": "node",
                        "severity": "critical",
                        "description": "node-1:19100: api.example.com does not resolve via node.",
                    },
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "name": API_NAME,
                        "resolver": CLUSTER_RESOLVER,
                        "severity": "critical",
                        "description": f"node-1:19100: {API_NAME} does not resolve via "
                        f"{CLUSTER_RESOLVER}.",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "1x10"
                },
                "8m",
            ),
        ),
    ),
    Alert(
        name="KubevDNSResolutionSlow",
        rules=(
            Rule(
                # a failing name is KubevDNSResolutionFailing's (its duration is the timeout);
                # the two series of a lookup share every label (name, resolver, cluster...)
                expr=f"kubev_dns_resolution_duration_seconds{{{SELECTOR}}} > {DNS_SLOW_SECONDS:g} "
                f"and kubev_dns_resolution_success{{{SELECTOR}}} == 1",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="DNS resolution is slow on the node",
                description="{{ $labels.instance }}: {{ $labels.name }} takes "
                "{{ $value | humanizeDuration }} to resolve via {{ $labels.resolver }} "
                f"(warning above {DNS_SLOW_SECONDS * 1000:g}ms).",
            ),
        ),
        meaning=f"A name resolves, but slower than {DNS_SLOW_SECONDS * 1000:g} ms, for 15 minutes.",
        impact="Every new connection by name waits; components with short deadlines time out.",
        diagnosis=(
            "`node`: `dig NAME` timing on the node; is the first nameserver in resolv.conf "
            "down (each lookup waits for its timeout before the next)?",
            "`cluster:IP`: `dig @IP NAME` timing; the cluster DNS pods' load and their upstream.",
        ),
        mitigation=("Remove dead nameservers, add a local cache, fix the upstream resolver.",),
        cases=(
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "2x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "1x30",
                    # the same name through the cluster DNS: fast
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com",'
                    f'resolver="{CLUSTER_RESOLVER}"}}': "0.01x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com",'
                    f'resolver="{CLUSTER_RESOLVER}"}}': "1x30",
                },
                "20m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "name": "api.example.com",
                        "resolver": "node",
                        "severity": "warning",
                        "description": "node-1:19100: api.example.com takes 2s to resolve via "
                        "node (warning above 500ms).",
                    },
                ),
            ),
            Case(
                {
                    f'kubev_dns_resolution_duration_seconds{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "0.01x30",
                    f'kubev_dns_resolution_success{{{NODE1},name="api.example.com",'
                    'resolver="node"}': "1x30",
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
                impact=Impact.ADVISORY,
                for_="1h",
                summary="NodeLocal DNSCache runs on a node that hosts VMs",
                description="{{ $labels.instance }}: NodeLocal DNSCache "
                f"({NODELOCAL_DNS_ADDRESS}) is in use (seen by: "
                f"{{{{ range $i, $s := {lookup('kubev_dns_nodelocal_cache_evidence', where=' == 1')}"
                ' | sortByLabel "source" }}'
                "{{ if $i }} {{ end }}{{ $s.Labels.source }}{{ end }}). Guest clusters in VMs "
                "that run it too need their "
                "dnsConfig/dnsPolicy adjusted.",
            ),
        ),
        meaning=f"NodeLocal DNSCache shows on the node: {NODELOCAL_DNS_ADDRESS}, its default "
        "address, is kubelet's clusterDNS, on a link, or the node's nameserver, or a link "
        "named nodelocaldns exists (`kubev_dns_nodelocal_cache_evidence` says which; "
        "docs/dns.md).",
        impact="None by itself. Guest Kubernetes clusters in KubeVirt VMs that also run "
        "NodeLocal DNSCache on the same address get the infrastructure cluster's cache as "
        "their upstream, and their own cache takes that address once it starts: the guest's "
        "DNS forwards to itself, CoreDNS's loop plugin halts it, and the guest cluster's DNS "
        "pods crash-loop (docs/dns.md).",
        diagnosis=(
            "`kubev_dns_nodelocal_cache_evidence` for the instance (cluster_dns, interface, "
            "address, resolv_conf).",
            f"`ip addr | grep {NODELOCAL_DNS_ADDRESS}`; in a guest VM: `cat /etc/resolv.conf` "
            "of a pod, `nslookup kubernetes.default`.",
        ),
        mitigation=(
            "Give guest VMs `dnsPolicy: None` with an explicit `dnsConfig`, or run "
            "one NodeLocal DNSCache on another address (docs/dns.md).",
        ),
        cases=(
            Case(
                {
                    f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "1x70",
                    f'kubev_dns_nodelocal_cache_evidence{{{NODE1},source="cluster_dns"}}': "1x70",
                    f'kubev_dns_nodelocal_cache_evidence{{{NODE1},source="interface"}}': "1x70",
                    f'kubev_dns_nodelocal_cache_evidence{{{NODE1},source="resolv_conf"}}': "0x70",
                },
                "65m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "severity": "info",
                        "description": "node-1:19100: NodeLocal DNSCache (169.254.20.10) is in use "
                        "(seen by: cluster_dns interface). Guest clusters in VMs that run it too "
                        "need their dnsConfig/dnsPolicy adjusted.",
                    },
                ),
            ),
            Case({f"kubev_dns_nodelocal_cache_detected{{{NODE1}}}": "0x70"}, "65m"),
        ),
    ),
)
