"""Alerts of the ovn check (exporter/checks/ovn.py): Kube-OVN's endpoints, by their state
(kubev_ovn_endpoint_state: docs/ports.md), and the node facts kube-ovn-cni reports."""

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
    port_of,
)
from exporter.checks import ROWS
from exporter.checks.ovn import CNI, COMPONENTS
from exporter.spec import Req, port_row

#: '10660 controller, 10661 monitor, 10665 cni', from the spec's port table
_ENDPOINTS = ", ".join(f"{port_of(c)} {c.removeprefix('kube-ovn-')}" for c in COMPONENTS)
_CNI_PORT = port_of(CNI)
_NODEPORT = port_row("nodeport")


def _dead(cni: bool) -> Rule:
    """kube-ovn-cni dead stops the node's pod network (page); the controller (replicas
    behind a leader election) and the monitor (OVN's database metrics) do not (ticket)."""
    status = (
        f"{{{{ with {lookup('kubev_ovn_endpoint_http_status', same=('component', 'port'))} }}}}"
        "{{ $status := . | first | value }}{{ if eq $status 0.0 }}no HTTP answer{{ else }}"
        "HTTP {{ $status }}"
        + ("{{ if eq $status 503.0 }}: its CNI socket probe failed{{ end }}" if cni else "")
        + "{{ end }}{{ end }}"
    )
    return Rule(
        expr=f'kubev_ovn_endpoint_state{{{SELECTOR},state="dead",'
        f'component{"=" if cni else "!="}"{CNI}"}} == 1',
        impact=Impact.STOPS if cni else Impact.DEGRADES,
        for_="5m",
        summary="A Kube-OVN endpoint is dead",
        description="{{ $labels.instance }}: {{ $labels.component }} on port {{ $labels.port }} "
        f"does not answer its health path (/livez) ({status}).",
    )


def _state(component: str, port: int, state: str, values: str) -> dict[str, str]:
    """One endpoint's state series: 1 for `state`, 0 for dead (unless it is dead)."""
    labels = f'{NODE1},component="{component}",port="{port}"'
    series = {f'kubev_ovn_endpoint_state{{{labels},state="{state}"}}': values}
    if state != "dead":
        series[f'kubev_ovn_endpoint_state{{{labels},state="dead"}}'] = "0x40"
    return series


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevOVNEndpointDown",
        rules=(_dead(cni=True), _dead(cni=False)),
        meaning=f"A Kube-OVN endpoint ({_ENDPOINTS}) listens, or must (kube-ovn-cni on every "
        "node), and its health path /livez has not answered 200 for 5 minutes: the state "
        "`dead` of `kubev_ovn_endpoint_state`. An endpoint that is alive but serves no "
        "metrics (metrics_disabled, unauthorized, metrics_failing) never fires this "
        "(docs/ports.md).",
        impact="kube-ovn-cni (critical): the CNI server of this node does not answer, so pods "
        "and VMs created here get no network and stay in ContainerCreating; kube-ovn-cni "
        "answers 503 while its CNI socket does not (kubeovn/kube-ovn cmd/daemon/cniserver.go), "
        "and kubelet's liveness probe on /livez restarts it. kube-ovn-controller (warning): "
        "one replica of a Deployment that elects a leader; while the leader is the dead one, "
        "new pods wait for their addresses until another takes over. kube-ovn-monitor "
        "(warning): OVN's database metrics are gone; nothing stops.",
        diagnosis=(
            "`kubev_ovn_endpoint_state` and `kubev_ovn_endpoint_http_status` (0: no HTTP "
            "answer) for the endpoint; the exporter's log line for it.",
            f"`curl -sk https://NODE_IP:{_CNI_PORT}/livez` (or http://); `kubectl -n "
            "kube-system get pods -o wide | grep kube-ovn` and the pod's log and events.",
        ),
        mitigation=(
            ROWS[Req.OVN_ENDPOINTS].hint,
            "For an endpoint that is alive but serves no metrics, `kubev_ovn_endpoint_state` "
            "says which state and docs/ports.md what to set (KubevOVNMetricsUnreadable).",
        ),
        cases=(
            Case(
                _state(CNI, 10665, "dead", "1x10")
                | {
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="{CNI}",'
                    'port="10665"}': "503x10"
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": CNI,
                        "port": "10665",
                        "state": "dead",
                        "severity": "critical",
                        "description": "node-1:19100: kube-ovn-cni on port 10665 does not answer "
                        "its health path (/livez) (HTTP 503: its CNI socket probe failed).",
                    },
                ),
            ),
            Case(
                _state("kube-ovn-monitor", 10661, "dead", "1x10")
                | {
                    f'kubev_ovn_endpoint_http_status{{{NODE1},component="kube-ovn-monitor",'
                    'port="10661"}': "0x10"
                },
                "8m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": "kube-ovn-monitor",
                        "port": "10661",
                        "state": "dead",
                        "severity": "warning",
                        "description": "node-1:19100: kube-ovn-monitor on port 10661 does not "
                        "answer its health path (/livez) (no HTTP answer).",
                    },
                ),
            ),
            # alive with metrics disabled: nothing to page for
            Case(_state(CNI, 10665, "metrics_disabled", "1x10"), "8m"),
        ),
    ),
    Alert(
        name="KubevOVNMetricsUnreadable",
        rules=(
            Rule(
                expr=f'kubev_ovn_endpoint_state{{{SELECTOR},state=~"unauthorized|metrics_failing"}}'
                " == 1",
                impact=Impact.ADVISORY,
                for_="30m",
                summary="A Kube-OVN endpoint is alive but its metrics cannot be read",
                description="{{ $labels.instance }}: {{ $labels.component }} on port "
                "{{ $labels.port }} is alive, but its /metrics "
                '{{ if eq $labels.state "unauthorized" }}refuses the exporter (401/403)'
                "{{ else }}does not serve Prometheus text{{ end }}.",
            ),
        ),
        meaning="The endpoint answers its health path, but GET /metrics was refused (401/403: "
        "secure serving) or failed otherwise (5xx, not Prometheus text, too large or slow, a "
        "certificate the exporter does not trust) for 30 minutes.",
        impact="Nothing stops: Kube-OVN runs. What the exporter reads from that /metrics is "
        "unknown meanwhile; from kube-ovn-cni that is the node facts behind "
        "KubevUDPChecksumErrors and KubevLocalPortRangeOverlapsNodePort, which stay silent.",
        diagnosis=(
            "`kubev_ovn_endpoint_state` and `kubev_ovn_endpoint_http_status` for the endpoint; "
            "the report's ovn detail names the reason.",
        ),
        mitigation=(
            "unauthorized: give the exporter a token Kube-OVN accepts and the RBAC to read "
            "/metrics (checks.ovn.bearer_token_file, docs/ports.md, Secure serving).",
            "metrics_failing with an untrusted certificate: Kube-OVN signs with a CA it keeps "
            "in memory, so no CA file can verify it: set checks.ovn.tls.insecure_skip_verify; "
            "otherwise read the Kube-OVN pod's log.",
        ),
        cases=(
            Case(
                _state(CNI, 10665, "unauthorized", "1x40"),
                "35m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "component": CNI,
                        "port": "10665",
                        "state": "unauthorized",
                        "severity": "info",
                        "description": "node-1:19100: kube-ovn-cni on port 10665 is alive, but "
                        "its /metrics refuses the exporter (401/403).",
                    },
                ),
            ),
            Case(_state(CNI, 10665, "serving", "1x40"), "35m"),
        ),
    ),
    Alert(
        name="KubevLocalPortRangeOverlapsNodePort",
        rules=(
            Rule(
                expr=f"kubev_ovn_local_port_range_overlaps_nodeport{{{SELECTOR}}} == 1",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="The node's local port range overlaps the NodePort range",
                description="{{ $labels.instance }}: net.ipv4.ip_local_port_range overlaps the "
                f"NodePort range {_NODEPORT.first}-{_NODEPORT.last}: outgoing connections can "
                "draw a NodePort as their source port.",
            ),
        ),
        meaning="net.ipv4.ip_local_port_range, as kube-ovn-cni reports it, overlaps the "
        f"NodePort range of the port table ({_NODEPORT.first}-{_NODEPORT.last}). Kube-OVN's "
        'own help for that metric: it "should not conflict with the nodeport range".',
        impact="An outgoing connection from the node whose source port happens to be a port "
        "a NodePort Service uses can fail to establish, intermittently and hard to trace "
        "(kubernetes/kubernetes#111682, #111823; kube-proxy no longer holds NodePorts open "
        "since 1.21.14, so the kernel may hand them out: awslabs/amazon-eks-ami#1307).",
        diagnosis=(
            "`sysctl net.ipv4.ip_local_port_range net.ipv4.ip_local_reserved_ports` on the "
            "node; kube-apiserver's --service-node-port-range.",
        ),
        mitigation=(
            "Move the local port range off the NodePort range, or reserve the NodePort range: "
            f"`net.ipv4.ip_local_reserved_ports = {_NODEPORT.first}-{_NODEPORT.last}` in "
            "/etc/sysctl.d/.",
        ),
        cases=(
            Case(
                {f"kubev_ovn_local_port_range_overlaps_nodeport{{{NODE1}}}": "1x20"},
                "18m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "severity": "warning",
                        "description": "node-1:19100: net.ipv4.ip_local_port_range overlaps the "
                        "NodePort range 30000-32767: outgoing connections can draw a NodePort "
                        "as their source port.",
                    },
                ),
            ),
            Case({f"kubev_ovn_local_port_range_overlaps_nodeport{{{NODE1}}}": "0x20"}, "18m"),
        ),
    ),
    Alert(
        name="KubevUDPChecksumErrors",
        rules=(
            Rule(
                # a gauge of a count since boot, as kube-ovn-cni reports it: delta, not increase
                expr=f"delta(kubev_ovn_checksum_errors{{{SELECTOR}}}[1h]) > 0",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="UDP packets arrive with bad checksums",
                description="{{ $labels.instance }}: {{ $value | humanize }} UDP packets with a "
                "bad checksum in the last hour (InCsumErrors, as kube-ovn-cni reports it).",
            ),
        ),
        meaning="The kernel's count of UDP packets received with a bad checksum "
        "(InCsumErrors of `netstat -us`, kube-ovn-cni's checksum_err_count) rose within the "
        "last hour.",
        impact="The kernel drops those packets: Geneve (the overlay between nodes is UDP), DNS "
        "and other UDP traffic lose packets, and TCP over the overlay retransmits. A NIC's "
        "checksum offload on tunnel traffic is the usual cause (Kube-OVN turns TX checksum off "
        "on genev_sys_6081 for this: kubeovn/kube-ovn cmd/daemon/init.go initForOS).",
        diagnosis=(
            "`kubev_ovn_checksum_errors` over time; on the node `netstat -us | grep -i csum`, "
            "`ethtool -k IFACE | grep checksum` for the NICs and genev_sys_6081.",
        ),
        mitigation=(
            "Turn checksum offload off on the affected interface (`ethtool -K IFACE tx off`) "
            "or update the NIC's driver and firmware.",
        ),
        cases=(
            Case(
                # 30 errors between minutes 40 and 50; an hour later the window still holds them
                {f"kubev_ovn_checksum_errors{{{NODE1}}}": "0x40 0+3x10 30x40"},
                "80m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "severity": "warning",
                        "description": "node-1:19100: 30 UDP packets with a bad checksum in "
                        "the last hour (InCsumErrors, as kube-ovn-cni reports it).",
                    },
                ),
            ),
            Case({f"kubev_ovn_checksum_errors{{{NODE1}}}": "7x40"}, "35m"),
        ),
    ),
)
