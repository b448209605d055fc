"""sock_diag against `ss`, the kernel's own tool for the same question, in a network
namespace the test creates, so that the only sockets there are the test's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from exporter import sockdiag
from tests.helpers import ROOT, needs_root, network_namespace

#: opens the sockets it is told to (in the namespace it runs in), then prints what
#: sockdiag.listening_ports() and `ss` see while they are open
PROBE = textwrap.dedent(
    """
    import json, resource, socket, subprocess, sys
    from exporter.sockdiag import listening_ports
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    spec = json.loads(sys.argv[1])
    keep = []
    def sock(family, kind, address, port):
        s = socket.socket(family, kind)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, port))
        keep.append(s)
        return s
    for port in range(spec["first"], spec["first"] + spec["tcp4"]):
        sock(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", port).listen()
    for port in spec["tcp6"]:
        sock(socket.AF_INET6, socket.SOCK_STREAM, "::1", port).listen()
    for port in spec["udp4"]:
        sock(socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0", port)
    for port in spec["udp6"]:
        sock(socket.AF_INET6, socket.SOCK_DGRAM, "::", port)
    # neither is listening: a bound TCP socket without listen(), a connected UDP socket
    sock(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", spec["bound_only"])
    sock(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", spec["connected_udp"]).connect(
        ("127.0.0.1", 9)
    )
    # a live TCP connection: its ends are ESTABLISHED, not LISTEN
    server = sock(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", spec["established"])
    server.listen()
    client = socket.create_connection(("127.0.0.1", spec["established"]))
    accepted, _ = server.accept()
    keep += [client, accepted]
    ours = {k: sorted(v) for k, v in listening_ports().items()}
    def ss(*flags):
        out = subprocess.run(["ss", "-H", "-n", *flags], capture_output=True, text=True,
                             check=True).stdout
        return sorted({int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()})
    print(json.dumps({"ours": ours, "ss": {"tcp": ss("-lt"), "udp": ss("-lu")}}))
    """
)


def probe(ns: str, spec: dict[str, object]) -> dict[str, dict[str, list[int]]]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    result: dict[str, dict[str, list[int]]] = json.loads(done.stdout)
    return result


SPEC = {
    "first": 30000,
    "tcp4": 3,
    "tcp6": [31000, 31001],
    "udp4": [6081, 32000],
    "udp6": [32001],
    "bound_only": 33000,
    "connected_udp": 33001,
    "established": 33002,
}


@needs_root
def test_listening_sockets_as_ss_sees_them() -> None:
    with network_namespace() as ns:
        seen = probe(ns, SPEC)
    assert seen["ours"] == seen["ss"]
    assert seen["ours"]["tcp"] == [30000, 30001, 30002, 31000, 31001, 33002]
    assert seen["ours"]["udp"] == [6081, 32000, 32001]


@needs_root
def test_a_dump_over_many_replies() -> None:
    """Ten thousand listeners: the kernel's dump spans many netlink replies."""
    with network_namespace() as ns:
        seen = probe(ns, {**SPEC, "tcp4": 10000, "first": 40000})
    assert seen["ours"] == seen["ss"]
    assert len(seen["ours"]["tcp"]) == 10000 + 3  # two v6 listeners and the established one's


def test_reply_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply larger than the cap is refused with an error that says so, not read on."""
    monkeypatch.setattr(sockdiag, "MAX_REPLY_BYTES", 0)
    with pytest.raises(sockdiag.SockDiagError, match="over 0 bytes"):
        sockdiag.listening_ports()
