"""sock_diag against `ss`, the kernel's own tool for the same question, in a network
namespace the test creates, so that the only sockets there are the test's."""

from __future__ import annotations

import contextlib
import errno
import json
import struct
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.checks import sockdiag
from tests.helpers import ROOT, network_namespace

#: opens the sockets it is told to (in the namespace it runs in), then prints what
#: sockdiag.listeners() and `ss` see while they are open: the address and port of each
PROBE = textwrap.dedent(
    """
    import json, resource, socket, subprocess, sys
    from exporter.checks.sockdiag import listeners
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
    found = listeners()
    ours = {p: sorted(f"{a}|{port}" for port in found.ports(p) for a in found.addresses(p, port))
            for p in ("tcp", "udp")}
    def ss(*flags):
        out = subprocess.run(["ss", "-H", "-n", *flags], capture_output=True, text=True,
                             check=True).stdout
        seen = set()
        for line in out.splitlines():
            address, _, port = line.split()[3].rpartition(":")
            seen.add(f"{address.strip('[]').replace('*', '0.0.0.0')}|{port}")
        return sorted(seen)
    print(json.dumps({"ours": ours, "ss": {"tcp": ss("-lt"), "udp": ss("-lu")}}))
    """
)


def probe(ns: str, spec: dict[str, object]) -> dict[str, dict[str, list[str]]]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    result: dict[str, dict[str, list[str]]] = json.loads(done.stdout)
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


@pytest.mark.root
def test_listening_sockets_as_ss_sees_them() -> None:
    with network_namespace() as ns:
        seen = probe(ns, SPEC)
    assert seen["ours"] == seen["ss"]
    assert seen["ours"]["tcp"] == [
        "127.0.0.1|30000",
        "127.0.0.1|30001",
        "127.0.0.1|30002",
        "127.0.0.1|33002",
        "::1|31000",
        "::1|31001",
    ]
    assert seen["ours"]["udp"] == [
        "0.0.0.0|32000",
        "0.0.0.0|6081",
        "::|32001",
    ]


@pytest.mark.root
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


def message(kind: int, seq: int, payload: bytes, flags: int = 2) -> bytes:
    header = struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0)
    return header + payload + b"\0" * (-len(payload) % 4)


def diag_message(
    seq: int, port: int, attributes: bytes, flags: int = 2, address: bytes = b"\x7f\0\0\x01"
) -> bytes:
    """An inet_diag_msg for a socket bound to this address and port, as the kernel lays it
    out (an IPv4 address in the first 4 of the 16 source bytes)."""
    family = 2 if len(address) == 4 else 10
    source = address.ljust(16, b"\0")
    body = struct.pack("=BBBB", family, 10, 0, 0) + struct.pack("!HH", port, 0) + source
    body += b"\0" * (64 - len(source))
    return message(sockdiag.SOCK_DIAG_BY_FAMILY, seq, body + attributes, flags)


def done(seq: int, code: int = 0) -> bytes:
    return message(sockdiag.NLMSG_DONE, seq, struct.pack("=i", code))


@given(
    ports=st.lists(st.integers(0, 65535), max_size=50),
    attributes=st.binary(max_size=40),
    seq=st.integers(1, 2**32 - 1),
)
def test_parse_reply_reads_every_port(ports: list[int], attributes: bytes, seq: int) -> None:
    data = b"".join(diag_message(seq, p, attributes) for p in ports)
    dump = sockdiag.Dump(seq)
    sockdiag.parse_reply(data, dump)
    assert not dump.done
    sockdiag.parse_reply(data + done(seq), dump)
    assert dump.done and not dump.interrupted
    assert {port for _, _, port in dump.sockets} == set(ports)
    assert {(f, a) for f, a, _ in dump.sockets} <= {(2, b"\x7f\0\0\x01")}
    # a datagram answering another request (another seq) adds nothing
    other = sockdiag.Dump(seq ^ 1)
    sockdiag.parse_reply(data, other)
    assert other.sockets == set()


def test_parse_reply_reads_addresses() -> None:
    v6 = bytes(15) + b"\x01"
    data = diag_message(5, 10250, b"", address=b"\x0a\x01\x00\x01")
    data += diag_message(5, 10259, b"", address=v6) + done(5)
    dump = sockdiag.Dump(5)
    sockdiag.parse_reply(data, dump)
    found = sockdiag.Listeners.of(("tcp", *socket) for socket in dump.sockets)
    assert found.addresses("tcp", 10250) == {"10.1.0.1"}
    assert found.addresses("tcp", 10259) == {"::1"}
    assert found.ports("tcp") == {10250, 10259} and found.ports("udp") == set()


#: netlink messages as a broken or hostile peer could frame them: any length field, the
#: kinds the parser acts on, the right sequence number mostly, payloads of any size
framed = st.lists(
    st.tuples(
        st.integers(0, 600) | st.integers(0, 2**32 - 1),
        st.sampled_from([sockdiag.NLMSG_ERROR, sockdiag.NLMSG_DONE, 20, 1, 0xFFFF]),
        st.sampled_from([1, 1, 1, 2]),
        st.binary(max_size=120),
    ),
    max_size=6,
).map(lambda msgs: b"".join(struct.pack("=IHHII", n, k, 0, q, 0) + p for n, k, q, p in msgs))


@given(framed | st.binary(max_size=400))
def test_parse_reply_garbage_is_an_error_or_nothing(data: bytes) -> None:
    """Whatever a datagram holds, the parser returns or raises SockDiagError, never
    struct.error or IndexError (which would surface as an "unexpected" check failure)."""
    with contextlib.suppress(sockdiag.SockDiagError):
        sockdiag.parse_reply(data, sockdiag.Dump(1))


def test_kernel_errors_name_the_errno() -> None:
    err = message(sockdiag.NLMSG_ERROR, 7, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
    with pytest.raises(sockdiag.SockDiagError, match="Operation not permitted"):
        sockdiag.parse_reply(err, sockdiag.Dump(7))
    # a dump that fails midway ends in NLMSG_DONE with the error as its payload (a
    # protocol whose diag module is missing): that is an error, not "no sockets"
    with pytest.raises(sockdiag.SockDiagError, match="No such file or directory"):
        sockdiag.parse_reply(diag_message(7, 6081, b"") + done(7, -errno.ENOENT), sockdiag.Dump(7))
    with pytest.raises(sockdiag.SockDiagError, match="truncated"):
        sockdiag.parse_reply(message(sockdiag.NLMSG_ERROR, 7, b"\xff\xff"), sockdiag.Dump(7))
    with pytest.raises(sockdiag.SockDiagError, match="truncated"):  # longer than the datagram
        sockdiag.parse_reply(err[:-4], sockdiag.Dump(7))


def test_an_interrupted_dump_is_flagged() -> None:
    dump = sockdiag.Dump(3)
    sockdiag.parse_reply(diag_message(3, 10250, b"", flags=2 | sockdiag.NLM_F_DUMP_INTR), dump)
    sockdiag.parse_reply(done(3), dump)
    assert dump.done and dump.interrupted and {p for _, _, p in dump.sockets} == {10250}
