"""Whole nodes as they really run, each in a network namespace of its own: real listeners
where kubeadm, Kubernetes and Kube-OVN put theirs, Kube-OVN-like HTTP endpoints, a tunnel
device, and the exporter process (daemon and `check`) judging the ports and OVN.

Where each component listens (sources in exporter/spec.py's port table and
/work/notes): kube-apiserver, kubelet and kube-proxy's healthz on every address; etcd's
clients on 127.0.0.1 and the node address, its peers on the node address; the scheduler
and the controller-manager on 127.0.0.1; OVN's databases and raft ports, and Kube-OVN's
endpoints, on the node address (ENABLE_BIND_LOCAL_IP). A multi-node worker has the
genev_sys_6081 device, for which the kernel binds 6081/udp: this kernel has no geneve
module, so a VXLAN device of that name on 6081 stands in (the same kind of kernel UDP
tunnel socket), brought up so the kernel binds the port itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from exporter.checks import CHECKS
from tests.helpers import (
    ROOT,
    background,
    ip,
    metrics_when,
    network_namespace,
    running,
    runs,
    value,
    veth_pair,
)
from tests.httpstub import FORBIDDEN_TOKEN, TOKEN, ca_signed_certificate, ovn_body_samples

NODE = "10.214.0.1"
JUDGED = ("ports", "ovn")
OTHERS_OFF = [f"--no-collector.{name}" for name in CHECKS if name not in JUDGED]
SCHEMA = json.loads((ROOT / "docs" / "check-output.schema.json").read_text())

#: a kubeadm control plane (which a single node is too), as ss -ltn shows it
KUBEADM = {
    "kube-apiserver": ["tcp6:[::]:6443"],  # Go's ":6443": one dual-stack socket
    "etcd": ["tcp:127.0.0.1:2379", f"tcp:{NODE}:2379", f"tcp:{NODE}:2380", "tcp:127.0.0.1:2381"],
    "kubelet": ["tcp:0.0.0.0:10250", "tcp:127.0.0.1:10248"],
    "kube-scheduler": ["tcp:127.0.0.1:10259"],
    "kube-controller-manager": ["tcp:127.0.0.1:10257"],
    "kube-proxy": ["tcp:0.0.0.0:10256", "tcp:127.0.0.1:10249"],
    "ovn-central": [f"tcp:{NODE}:{port}" for port in (6641, 6642, 6643, 6644)],
}
WORKER = {
    "kubelet": ["tcp:0.0.0.0:10250", "tcp:127.0.0.1:10248"],
    "kube-proxy": ["tcp:0.0.0.0:10256", "tcp:127.0.0.1:10249"],
}
#: Kube-OVN on a kube-ovn/role=master node, and on any node
OVN_MASTER = [f"{NODE}:10660=ovn", f"{NODE}:10661=ovn", f"{NODE}:10665=ovn"]
OVN_CNI = [f"{NODE}:10665=ovn"]


def specs(node: dict[str, list[str]], **replace: list[str]) -> list[str]:
    """The listener specs of a node shape, with some components replaced (or dropped)."""
    return [spec for component, own in {**node, **replace}.items() for spec in own]


@dataclass
class Node:
    """What the exporter made of a node: its metrics, its log, and the check report."""

    metrics: str
    log: str
    report: dict[str, object]
    exit_code: int

    def row(self, requirement: str) -> dict[str, str]:
        rows = self.report["rows"]
        assert isinstance(rows, list)
        found = [r for r in rows if r["requirement"] == requirement]
        assert len(found) == 1, rows
        return found[0]  # type: ignore[no-any-return]

    def verdict(self, requirement: str) -> str:
        return self.row(requirement)["verdict"]

    def met(self, requirement: str) -> float | None:
        return value(
            self.metrics, "kubev_requirement_met", requirement=requirement, level="minimum"
        )

    def port(self, metric: str, component: str, port: int, protocol: str = "tcp") -> float | None:
        return value(self.metrics, metric, component=component, port=str(port), protocol=protocol)

    def ovn(self, metric: str, component: str, port: int) -> float | None:
        return value(self.metrics, metric, component=component, port=str(port))

    def ovn_state(self, component: str, port: int) -> str:
        states = [
            state
            for state in (
                "serving",
                "metrics_disabled",
                "unauthorized",
                "metrics_failing",
                "dead",
                "absent",
            )
            if value(
                self.metrics,
                "kubev_ovn_endpoint_state",
                component=component,
                port=str(port),
                state=state,
            )
            == 1
        ]
        assert len(states) == 1, states
        return states[0]


def check_report(ns: str, args: Sequence[str]) -> tuple[dict[str, object], int]:
    """`kubev-node-exporter check --output json` inside the node's namespace."""
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "exporter",
            "check",
            "--output=json",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_IP": "", "NODE_NAME": "scenario-node"},
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    return report, done.returncode


def run_node(
    tmp_path: Path,
    *,
    role: str,
    listeners: Sequence[str],
    ovn_stubs: Sequence[str] = (),
    geneve: bool = False,
    ovn_config: str = "",
    check_configs: Sequence[str] = (),
) -> tuple[Node, list[Node]]:
    """Set the node up, run the exporter in it until both checks ran, run `check` in it
    (once with the exporter's config, then once per extra config body)."""

    def config(name: str, ovn: str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"role: {role}\nchecks:\n  ports: {{connect_timeout: 500ms}}\n  ovn:\n"
            "    interval: 2s\n    timeout: 2s\n" + ovn
        )
        return f"--config.file={path}"

    main = config("exporter", ovn_config)
    with network_namespace() as ns, contextlib.ExitStack() as stack:
        veth_pair(ns, f"{NODE}/24")
        ip(ns, "route", "add", "default", "via", "10.214.0.254", "dev", "kva")
        if geneve:
            ip(ns, "link", "add", "genev_sys_6081", "type", "vxlan", "id", "1", "dstport", "6081")
            ip(ns, "link", "set", "genev_sys_6081", "up")
        if listeners:
            stack.enter_context(background(["tests.listeners", *listeners], ns))
        if ovn_stubs:
            stack.enter_context(background(["tests.httpstub", *ovn_stubs], ns))
        exporter = stack.enter_context(running([main, *OTHERS_OFF], netns=ns, env={"NODE_IP": ""}))
        text = metrics_when(exporter, lambda t: all(runs(t, c) >= 1 for c in JUDGED))
        reports = [check_report(ns, [main, *OTHERS_OFF])]
        for i, body in enumerate(check_configs):
            reports.append(check_report(ns, [config(f"check{i}", body), *OTHERS_OFF]))
        exporter.stop()
    nodes = [Node(text, exporter.stderr, report, code) for report, code in reports]
    return nodes[0], nodes[1:]


@pytest.mark.root
def test_kubeadm_single_node_with_kube_ovn(tmp_path: Path) -> None:
    """A kubeadm single node with Kube-OVN (one master: a one-member raft cluster), no
    Geneve (no other node to tunnel to): ports and OVN pass."""
    node, _ = run_node(tmp_path, role="single-node", listeners=specs(KUBEADM), ovn_stubs=OVN_MASTER)
    assert node.met("ports") == 1 and node.met("ovn_endpoints") == 1
    assert (node.verdict("ports"), node.verdict("ovn_endpoints")) == ("PASS", "PASS")
    assert node.exit_code == 0
    for component, port in (
        ("kube-apiserver", 6443),
        ("etcd", 2379),
        ("etcd", 2380),
        ("kubelet", 10250),
        ("kube-proxy", 10256),
        ("ovn-nb", 6641),
        ("ovn-sb", 6642),
        ("ovn-nb-raft", 6643),
        ("ovn-sb-raft", 6644),
        ("kube-ovn-cni", 10665),
    ):
        assert node.port("kubev_port_up", component, port) == 1, component
        assert node.port("kubev_port_expected", component, port) == 1, component
        assert node.port("kubev_port_unreachable_bind", component, port) == 0, component
    # kubeadm's loopback-only components are probed where they are, not held against it
    assert node.port("kubev_port_up", "kube-scheduler", 10259) == 1
    assert node.port("kubev_port_up", "kube-controller-manager", 10257) == 1
    assert node.port("kubev_port_unreachable_bind", "kube-scheduler", 10259) is None
    # what the node runs: OVN central, clustered; no tunnel on a single node
    assert value(node.metrics, "kubev_tunnel_info", type="none") == 1
    for condition, holds in (("ovn-central", 1), ("ovn-raft", 1), ("geneve", 0)):
        assert value(node.metrics, "kubev_port_condition", condition=condition) == holds
    assert node.port("kubev_port_expected", "geneve", 6081, "udp") is None
    for component, port in (
        ("kube-ovn-controller", 10660),
        ("kube-ovn-monitor", 10661),
        ("kube-ovn-cni", 10665),
    ):
        assert node.ovn_state(component, port) == "serving", component
        assert node.ovn("kubev_ovn_endpoint_up", component, port) == 1
        assert node.ovn("kubev_ovn_endpoint_samples", component, port) == ovn_body_samples()
    assert value(node.metrics, "kubev_ovn_local_port_range_overlaps_nodeport") == 0
    assert node.row("ports")["detail"].startswith("all ") and node.row("ports")["hint"] == ""
    assert node.row("ovn_endpoints")["detail"] == (
        "kube-ovn-controller :10660 alive, serves metrics; kube-ovn-cni :10665 alive, "
        "serves metrics; kube-ovn-monitor :10661 alive, serves metrics"
    )


@pytest.mark.root
def test_multi_node_worker_with_geneve(tmp_path: Path) -> None:
    """A worker of a multi-node cluster: kubelet, kube-proxy, kube-ovn-cni, and the Geneve
    device, for which the kernel binds 6081/udp (no process of the test binds it)."""
    node, _ = run_node(
        tmp_path, role="worker", listeners=specs(WORKER), ovn_stubs=OVN_CNI, geneve=True
    )
    assert (node.verdict("ports"), node.verdict("ovn_endpoints")) == ("PASS", "PASS")
    assert node.met("ports") == 1 and node.met("ovn_endpoints") == 1
    assert value(node.metrics, "kubev_tunnel_info", type="geneve") == 1
    assert value(node.metrics, "kubev_port_condition", condition="geneve") == 1
    assert value(node.metrics, "kubev_port_condition", condition="ovn-central") == 0
    assert node.port("kubev_port_up", "geneve", 6081, "udp") == 1
    assert node.port("kubev_port_unreachable_bind", "geneve", 6081, "udp") == 0
    assert node.port("kubev_port_expected", "ovn-nb", 6641) is None  # not a central node
    assert node.ovn_state("kube-ovn-cni", 10665) == "serving"
    # the master-only endpoints are not here, and that is no failure
    assert node.ovn_state("kube-ovn-controller", 10660) == "absent"
    assert node.ovn_state("kube-ovn-monitor", 10661) == "absent"
    assert node.ovn("kubev_ovn_endpoint_expected", "kube-ovn-controller", 10660) == 0
    assert "not on this node" in node.row("ovn_endpoints")["detail"]


@pytest.mark.root
def test_metrics_disabled_is_alive(tmp_path: Path) -> None:
    """ENABLE_METRICS=false: kube-ovn-cni serves only its health paths. Alive: PASS, with
    the state reported and said."""
    node, _ = run_node(
        tmp_path,
        role="worker",
        listeners=specs(WORKER),
        ovn_stubs=[f"{NODE}:10665=ovn-disabled"],
        geneve=True,
    )
    assert node.verdict("ovn_endpoints") == "PASS" and node.met("ovn_endpoints") == 1
    assert node.ovn_state("kube-ovn-cni", 10665) == "metrics_disabled"
    assert node.ovn("kubev_ovn_endpoint_up", "kube-ovn-cni", 10665) == 1
    assert node.ovn("kubev_ovn_endpoint_metrics_served", "kube-ovn-cni", 10665) == 0
    assert node.ovn("kubev_ovn_endpoint_http_status", "kube-ovn-cni", 10665) == 404
    assert value(node.metrics, "kubev_ovn_checksum_errors") is None  # no metrics, no facts
    detail = node.row("ovn_endpoints")["detail"]
    assert detail.startswith(
        f"kube-ovn-cni http://{NODE}:10665: alive, metrics disabled: GET /metrics answered 404"
    )
    assert "ENABLE_METRICS=false" in detail


@pytest.mark.root
def test_secure_serving(tmp_path: Path) -> None:
    """--secure-serving: HTTPS with a certificate from a CA that exists only in Kube-OVN's
    memory (made here by openssl, then deleted), /metrics behind a bearer token, the health
    paths open. The exporter with scheme https, insecure_skip_verify and the token file
    reads metrics; a wrong token, an account without the right, and verification against
    the system CAs each leave the endpoint alive (PASS) in its own state, with its hint.
    The token file is read on every run: rotating it changes the state."""
    cert, key, ca = ca_signed_certificate(tmp_path, NODE, "127.0.0.1")
    ca.unlink()  # Kube-OVN never writes its CA anywhere
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    wrong, forbidden = tmp_path / "wrong", tmp_path / "forbidden"
    wrong.write_text("a-token-the-apiserver-does-not-know\n")
    forbidden.write_text(FORBIDDEN_TOKEN + "\n")
    secure = "    scheme: https\n    tls: {insecure_skip_verify: true}\n"
    node, (wrong_token, no_right, verified) = run_node(
        tmp_path,
        role="worker",
        listeners=specs(WORKER),
        ovn_stubs=["--tls", str(cert), str(key), f"{NODE}:10665=ovn-secure"],
        geneve=True,
        ovn_config=secure + f"    bearer_token_file: {token}\n",
        check_configs=[
            secure + f"    bearer_token_file: {wrong}\n",
            secure + f"    bearer_token_file: {forbidden}\n",
            f"    scheme: https\n    bearer_token_file: {token}\n",
        ],
    )
    assert node.ovn_state("kube-ovn-cni", 10665) == "serving"
    assert node.ovn("kubev_ovn_endpoint_samples", "kube-ovn-cni", 10665) == ovn_body_samples()
    assert value(node.metrics, "kubev_ovn_bridge_nf_call_iptables") == 1
    assert node.verdict("ovn_endpoints") == "PASS"
    for report in (wrong_token, no_right, verified):
        assert report.verdict("ovn_endpoints") == "PASS" and report.exit_code == 0
    assert wrong_token.row("ovn_endpoints")["detail"].startswith(
        f"kube-ovn-cni https://{NODE}:10665: alive, /metrics refused: GET /metrics answered "
        "401: Unauthorized (secure serving wants a bearer token it can verify (TokenReview): "
        "set checks.ovn.bearer_token_file to a projected ServiceAccount token (docs/ports.md))"
    )
    assert (
        "GET /metrics answered 403: Authorization denied for user"
        in (no_right.row("ovn_endpoints")["detail"])
    )
    assert 'nonResourceURLs ["/metrics"], verbs ["get"]' in no_right.row("ovn_endpoints")["detail"]
    detail = verified.row("ovn_endpoints")["detail"]
    assert "alive, metrics not served: GET /metrics: certificate not trusted" in detail
    assert "no CA file can verify it" in detail and "insecure_skip_verify: true" in detail


@pytest.mark.root
def test_a_rotated_token_is_read_on_the_next_run(tmp_path: Path) -> None:
    cert, key, _ = ca_signed_certificate(tmp_path, NODE)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    config = tmp_path / "c.yaml"
    config.write_text(
        "role: worker\nchecks:\n  ovn:\n    interval: 1s\n    timeout: 1s\n    scheme: https\n"
        f"    bearer_token_file: {token}\n    tls: {{insecure_skip_verify: true}}\n"
    )

    def state(text: str, name: str) -> bool:
        return (
            value(
                text,
                "kubev_ovn_endpoint_state",
                component="kube-ovn-cni",
                port="10665",
                state=name,
            )
            == 1
        )

    with network_namespace() as ns:
        veth_pair(ns, f"{NODE}/24")
        ip(ns, "route", "add", "default", "via", "10.214.0.254", "dev", "kva")
        stub = ["tests.httpstub", "--tls", str(cert), str(key), f"{NODE}:10665=ovn-secure"]
        only_ovn = [f"--no-collector.{n}" for n in CHECKS if n != "ovn"]
        with (
            background(stub, ns),
            running([f"--config.file={config}", *only_ovn], netns=ns, env={"NODE_IP": ""}) as e,
        ):
            metrics_when(e, lambda t: state(t, "serving"))
            token.write_text(FORBIDDEN_TOKEN)
            text = metrics_when(e, lambda t: state(t, "unauthorized"))
    assert (
        value(text, "kubev_ovn_endpoint_http_status", component="kube-ovn-cni", port="10665") == 403
    )
    assert value(text, "kubev_requirement_met", requirement="ovn_endpoints", level="minimum") == 1


BROKEN = {
    "kubelet on loopback only": (
        "single-node",
        specs(KUBEADM, kubelet=["tcp:127.0.0.1:10250"]),
        OVN_MASTER,
        False,
        "ports",
        f"kubelet 10250/tcp is down on {NODE}: listens on 127.0.0.1 only: other nodes "
        "cannot reach it",
    ),
    "scheduler gone": (
        "single-node",
        specs(KUBEADM, **{"kube-scheduler": []}),
        OVN_MASTER,
        False,
        "ports",
        "kube-scheduler 10259/tcp is down on 127.0.0.1: ECONNREFUSED",
    ),
    "geneve missing on a multi-node worker": (
        "worker",
        specs(WORKER),
        OVN_CNI,
        False,
        "ports",
        f"geneve 6081/udp is down on {NODE}: no bound UDP socket and no genev_sys_6081 device",
    ),
    "kube-ovn-cni not listening": (
        "worker",
        specs(WORKER),
        [],
        True,
        "ovn_endpoints",
        f"kube-ovn-cni {NODE}:10665: dead: nothing listens on port 10665 (restart the "
        "Kube-OVN pod on this node",
    ),
    "kube-ovn-cni's CNI socket gone": (
        "worker",
        specs(WORKER),
        [f"{NODE}:10665=ovn-livez503"],
        True,
        "ovn_endpoints",
        f"kube-ovn-cni {NODE}:10665: dead: GET /livez answered 503: probe failed",
    ),
}


@pytest.mark.root
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_node(tmp_path: Path, case: str) -> None:
    """Each failure fails its requirement, with the reason in the report's detail and the
    log; the other requirement is not dragged along (except where the port is both)."""
    role, listeners, stubs, geneve, failing, reason = BROKEN[case]
    node, _ = run_node(tmp_path, role=role, listeners=listeners, ovn_stubs=stubs, geneve=geneve)
    assert node.verdict(failing) == "FAIL" and node.met(failing) == 0
    assert node.exit_code == 1
    assert reason in node.row(failing)["detail"]
    assert node.row(failing)["hint"] != ""
    assert reason.split(" (")[0] in node.log
    other = "ovn_endpoints" if failing == "ports" else "ports"
    if case != "kube-ovn-cni not listening":  # 10665 is a required port too
        assert node.verdict(other) == "PASS"
    if case == "kubelet on loopback only":
        assert node.port("kubev_port_listening", "kubelet", 10250) == 1
        assert node.port("kubev_port_unreachable_bind", "kubelet", 10250) == 1
    if case == "kube-ovn-cni's CNI socket gone":
        assert node.ovn("kubev_ovn_endpoint_http_status", "kube-ovn-cni", 10665) == 503
        assert node.ovn_state("kube-ovn-cni", 10665) == "dead"
