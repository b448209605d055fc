"""Alerts of the peers check (exporter/checks/peers.py): ports other nodes must reach,
probed from every node, and the peer list and identities the probing rests on."""

from __future__ import annotations

from alerts.catalog.common import (
    CLUSTER_LABEL,
    INSTANCE,
    JOB,
    NODE1,
    PINGER,
    PINGER_JOB,
    SELECTOR,
    Alert,
    Case,
    Impact,
    Rule,
)
from exporter.checks import ROWS
from exporter.spec import OVERLAY_PING_LOSS_RATIO, Req, port_row


def _ports(*components: str) -> str:
    """'6641/6642', '2379-2380': a component's ports as the spec's table has them."""
    texts = []
    for component in components:
        row = port_row(component)
        texts.append(str(row.first) if row.first == row.last else f"{row.first}-{row.last}")
    return "/".join(texts)


def _tcp_ports() -> str:
    """The TCP ports other nodes must reach, for a firewall rule: '6443, 2379-2380, ...'."""
    components = (
        "kube-apiserver",
        "etcd",
        "kubelet",
        "kube-proxy",
        "ovn-nb",
        "ovn-sb",
        "ovn-nb-raft",
        "ovn-sb-raft",
        "kube-ovn-cni",
    )
    return ", ".join(_ports(c) for c in components)


#: ports whose blocked path stops the platform wherever the probing node stands: every
#: node's kubelet needs the API server, ovn-controller the SB database, the overlay Geneve
ANY_NODE = ("kube-apiserver", "ovn-sb", "geneve")
#: ports only the control plane needs across nodes: etcd's members, the NB database and the
#: databases' raft, and the kubelet API (logs, exec, metrics)
FROM_CONTROL_PLANE = ("etcd", "ovn-nb", "ovn-nb-raft", "ovn-sb-raft", "kubelet")


def _blocked_of(components: tuple[str, ...]) -> str:
    return f'kubev_peer_unreachable{{{SELECTOR},component=~"{"|".join(components)}"}} == 1'


#: per cluster where the series carry one (a Prometheus for several clusters)
_BY = f"count by ({CLUSTER_LABEL}, job, component, port, protocol, state)"
_CRITICAL = (
    f"{_BY} ({_blocked_of(ANY_NODE)}) > 0 or {_BY} (({_blocked_of(FROM_CONTROL_PLANE)}) "
    f'* on(instance, job, {CLUSTER_LABEL}) group_left() kubev_node_info{{{SELECTOR},role="control-plane"}}) > 0'
)
_ANY = f"{_BY} (kubev_peer_unreachable{{{SELECTOR}}} == 1) > 0"
_DESCRIPTION = (
    "{{ $value }} node pair(s) cannot reach {{ $labels.component }} {{ $labels.port }}/"
    "{{ $labels.protocol }} ({{ $labels.state }})."
)


#: The overlay's evidence on a running cluster (docs/peers.md "Geneve on a running
#: cluster"): the Kube-OVN pinger pings every node's InternalIP from a pod on every node,
#: 3 pings a round, a round every 5 s; each round adds the pings sent and lost to two
#: counters per (source, target) node (kubeovn/kube-ovn pkg/pinger/metrics.go
#: pinger_node_ping_count_total and pinger_node_ping_lost_total; pkg/pinger/ping.go
#: pingNodes). A pod-to-node ping crosses the Geneve tunnel between the two nodes.
_PING_BY = f"sum by ({CLUSTER_LABEL}, src_node_name, target_node_name)"
_PING_LOSS = (
    f"{_PING_BY} (increase(pinger_node_ping_lost_total{{{PINGER}}}[10m])) / "
    f"{_PING_BY} (increase(pinger_node_ping_count_total{{{PINGER}}}[10m])) "
    f"> {OVERLAY_PING_LOSS_RATIO:g}"
)


def _pings(source: str, target: str, sent: str, lost: str) -> dict[str, str]:
    """A pinger's two counters as pkg/pinger/metrics.go labels them (src_pod_ip holds the
    pinger pod's name there, a Kube-OVN quirk)."""
    labels = (
        f'job="{PINGER_JOB}",instance="10.16.0.5:8080",src_node_name="{source}",'
        f'src_node_ip="10.0.0.1",src_pod_ip="kube-ovn-pinger-x7k2p",'
        f'target_node_name="{target}",target_node_ip="10.0.0.2"'
    )
    return {
        f"pinger_node_ping_count_total{{{labels}}}": sent,
        f"pinger_node_ping_lost_total{{{labels}}}": lost,
    }


def _blocked(component: str, port: str, peer: str = "10.0.0.3") -> str:
    return (
        f'kubev_peer_unreachable{{{NODE1},peer="{peer}",component="{component}",'
        f'port="{port}",protocol="tcp",state="filtered"}}'
    )


def _fired(component: str, port: str, severity: str) -> dict[str, str]:
    return {
        "job": JOB,
        "component": component,
        "port": port,
        "protocol": "tcp",
        "state": "filtered",
        "severity": severity,
        "description": f"1 node pair(s) cannot reach {component} {port}/tcp (filtered).",
    }


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="KubevPeerPortBlocked",
        rules=(
            Rule(
                expr=_CRITICAL,
                impact=Impact.STOPS,
                for_="10m",
                summary="A port the platform needs is blocked between nodes",
                description=_DESCRIPTION,
            ),
            Rule(
                # at 1,000 nodes a full round with failures takes about 8 minutes: 15m
                # lets every pair be probed again before it pages a ticket
                expr=f"({_ANY}) unless ({_CRITICAL})",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="A port is blocked between nodes",
                description=_DESCRIPTION,
            ),
        ),
        meaning="A node cannot reach a port another node serves to other nodes: `filtered` "
        "means dropped, or rejected with ICMP administratively prohibited or port "
        "unreachable (a firewall's REJECT); `unreachable` means no route, or the peer is "
        "off the link. Critical where it stops the platform: the API server, the SB database "
        "and Geneve from any node; etcd, the NB database, the databases' raft and the kubelet "
        "API from the control plane.",
        impact=f"{_ports('kube-apiserver')}: the node's kubelet loses the API server: the node "
        "goes NotReady and its VMs are evicted or cannot start. "
        f"{_ports('etcd')}: etcd members cannot replicate: quorum at risk. "
        f"{_ports('ovn-nb', 'ovn-sb')}: ovn-controller gets no flows: new pods and VMs get no "
        f"network. {_ports('ovn-nb-raft', 'ovn-sb-raft')}: the OVN databases' raft cluster "
        f"degrades. {_ports('geneve')}/udp: the overlay between the two nodes is broken. "
        f"{_ports('kubelet')}: logs, exec and metrics of the node's pods fail. "
        f"{_ports('kube-proxy')}: load balancers' health checks fail. "
        f"{_ports('kube-ovn-cni')}: Kube-OVN's metrics cannot be scraped.",
        diagnosis=(
            "Which pairs: `kubev_peer_unreachable == 1` (instance: the probing node, peer: "
            "the target), the exporter page's Peers section, or `kubev-node-exporter check "
            "--peers ...` on the probing node. Its How column says dropped, rejected by this "
            "node, by the peer, or by the path.",
            "Rejected by this node: output rules on the probing node (`nft list ruleset`, "
            "`iptables -S OUTPUT`, `firewall-cmd --list-all`).",
            "Dropped or rejected by the peer: input rules on the peer (`nft -a list ruleset` "
            "and its counters, `iptables -L INPUT -nv --line-numbers`, `firewall-cmd "
            "--get-active-zones; firewall-cmd --zone=Z --list-all`); capture on both ends "
            "(`tcpdump -ni any 'host SRC and port PORT'`).",
            "Unreachable: `ip route get PEER`, `ip neigh show PEER`.",
            "Cloud security groups: `aws ec2 describe-security-groups --group-ids SG`, "
            "`az network nsg rule list -g RG --nsg-name NSG -o table`, `gcloud compute "
            "firewall-rules list --filter=network:NET`, `openstack security group rule list "
            "SG`.",
        ),
        mitigation=(
            ROWS[Req.PEER_REACHABILITY].hint,
            "nftables: `nft insert rule inet filter input ip saddr NODE_CIDR tcp dport { "
            f"{_tcp_ports()} }} accept` and the same for `udp dport {_ports('geneve')}`; "
            "persist it in /etc/nftables.conf.",
            "firewalld: `firewall-cmd --permanent --zone=Z --add-rich-rule='rule "
            "family=ipv4 source address=NODE_CIDR port port=PORT protocol=tcp accept'` for each "
            "port, then `firewall-cmd --reload`.",
            "Cloud: a self-referencing security group rule for the node ports, and udp "
            f"{_ports('geneve')}.",
            "A block on purpose (workers kept off etcd): `checks.peers.skip` on those nodes.",
        ),
        cases=(
            Case(
                {_blocked("kubelet", "10250"): "1x20"},
                "17m",
                (_fired("kubelet", "10250", "warning"),),
            ),
            Case(
                {_blocked("kube-apiserver", "6443"): "1x20"},
                "12m",
                (_fired("kube-apiserver", "6443", "critical"),),
            ),
            Case(
                {
                    _blocked("kubelet", "10250"): "1x20",
                    f'kubev_node_info{{{NODE1},node="cp-1",role="control-plane",'
                    'profile="production"}': "1x20",
                },
                "12m",
                (_fired("kubelet", "10250", "critical"),),
            ),
            Case(
                {
                    f'kubev_peer_ports{{{NODE1},component="kubelet",port="10250",'
                    'protocol="tcp",state="open"}': "3x20"
                },
                "17m",
            ),
        ),
    ),
    Alert(
        name="KubevPeerDiscoveryFailing",
        rules=(
            Rule(
                expr=f"kubev_peer_discovery_success{{{SELECTOR}}} == 0",
                impact=Impact.DEGRADES,
                for_="15m",
                summary="The exporter cannot refresh its peer list",
                description="{{ $labels.instance }}: the peer source {{ $labels.source }} has "
                "not answered; the last good peer list is still probed.",
            ),
        ),
        meaning="The peers check could not read its peer list (the headless Service's DNS "
        "name, the file) in its last run.",
        impact="New nodes are not probed and departed ones still are, until the source "
        "answers again; the blocked-port verdicts go stale for the nodes that changed.",
        diagnosis=(
            "The exporter's log (`peers: ...`); `getent hosts NAME` or the cluster DNS "
            "(`dig @CLUSTER_DNS NAME`) for a DNS source; the file for a file source.",
        ),
        mitigation=(
            "Fix the source the config names (checks.peers): the Service's name and the DNS "
            "the exporter asks, or the file's path and format.",
        ),
        cases=(
            Case(
                {f'kubev_peer_discovery_success{{{NODE1},source="dns"}}': "0x20"},
                "17m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "source": "dns",
                        "severity": "warning",
                        "description": f"{INSTANCE}: the peer source dns has not answered; "
                        "the last good peer list is still probed.",
                    },
                ),
            ),
            Case({f'kubev_peer_discovery_success{{{NODE1},source="dns"}}': "1x20"}, "17m"),
        ),
    ),
    Alert(
        name="KubevPeerIdentityUnavailable",
        rules=(
            Rule(
                expr=f'kubev_peer_identities{{{SELECTOR},result="failed"}} > 0',
                impact=Impact.ADVISORY,
                for_="30m",
                summary="Some peers do not say who they are",
                description="{{ $labels.instance }}: {{ $value }} peer(s) did not answer "
                "/-/identity: they are probed for their role, or for what every node serves.",
            ),
        ),
        meaning="Peers whose /-/identity endpoint did not answer (closed port, other "
        "credentials, garbage) are probed only for what every node serves, or the role the "
        "config gives them.",
        impact="OVN central ports on those peers go unchecked and Geneve reads unknown; "
        "nothing is misjudged, less is judged.",
        diagnosis=(
            "`kubev_peer_identities` per result; the exporter's log names the peers and why.",
        ),
        mitigation=(
            "Open the exporter's port between nodes, or align checks.peers' identity "
            "credentials (username, password_file, tls) with the peers' --web.config.file.",
        ),
        cases=(
            Case(
                {f'kubev_peer_identities{{{NODE1},result="failed"}}': "2x40"},
                "35m",
                (
                    {
                        "instance": INSTANCE,
                        "job": JOB,
                        "result": "failed",
                        "severity": "info",
                        "description": f"{INSTANCE}: 2 peer(s) did not answer /-/identity: "
                        "they are probed for their role, or for what every node serves.",
                    },
                ),
            ),
            Case({f'kubev_peer_identities{{{NODE1},result="failed"}}': "0x40"}, "35m"),
        ),
    ),
    Alert(
        name="KubevOverlayNodePingLoss",
        rules=(
            Rule(
                expr=_PING_LOSS,
                impact=Impact.DEGRADES,
                for_="10m",
                summary="The overlay between two nodes loses the Kube-OVN pinger's pings",
                description="{{ $labels.src_node_name }} to {{ $labels.target_node_name }}: "
                "{{ $value | humanizePercentage }} of the Kube-OVN pinger's node pings lost "
                "over 10 minutes.",
            ),
        ),
        meaning="The Kube-OVN pinger on one node pings the other node's address from the "
        "pod network; the ping crosses the Geneve tunnel between the two nodes. More than "
        f"{OVERLAY_PING_LOSS_RATIO:.0%} of them lost over 10 minutes: the overlay between "
        "them is broken or badly lossy. Only where the pinger runs and is scraped (it is "
        "optional in Kube-OVN); the exporter's own probes cannot tell a dropped "
        f"{_ports('geneve')}/udp once Geneve listens (docs/peers.md).",
        impact="Pods and VMs on the two nodes cannot reach each other over the pod network; "
        "live migration between them and services whose endpoints sit on the other node "
        "fail.",
        diagnosis=(
            "Which pairs: the query of this rule without `> "
            f"{OVERLAY_PING_LOSS_RATIO:g}`; one node to all others points at that node, all "
            "to one at the target.",
            "TCP between the two nodes: `kubev_peer_unreachable` on the source for the "
            f"target; all open and pings lost points at {_ports('geneve')}/udp (Geneve).",
            f"On both nodes: `ip -d link show genev_sys_{_ports('geneve')}`, `ovs-vsctl show` "
            f"(the tunnel port to the other node), `tcpdump -ni any udp port {_ports('geneve')}` "
            "while the pinger runs.",
        ),
        mitigation=(
            f"Open {_ports('geneve')}/udp between the nodes (host firewall, cloud security group), as for "
            "KubevPeerPortBlocked.",
            "An MTU too large for the path also drops the tunnel's packets: compare the "
            "interface MTU with Kube-OVN's MTU setting.",
        ),
        cases=(
            Case(
                _pings("node-a", "node-b", "0+36x30", "0+36x30"),
                "25m",
                (
                    {
                        "src_node_name": "node-a",
                        "target_node_name": "node-b",
                        "severity": "warning",
                        "description": "node-a to node-b: 100% of the Kube-OVN pinger's "
                        "node pings lost over 10 minutes.",
                    },
                ),
            ),
            # a few lost: a working path
            Case(_pings("node-a", "node-b", "0+36x30", "0+1x30"), "25m"),
        ),
    ),
)
