"""The DNS client against servers on loopback sockets that answer as the test scripts:
well, with error codes, with forged datagrams first, truncated (then over TCP), broken,
or not at all. Real UDP and TCP sockets; no root, no packet beyond 127.0.0.1."""

from __future__ import annotations

import socket
import struct

import pytest

from exporter.checks.dnsclient import Answer, LookupFailed, resolve
from exporter.checks.dnswire import Rcode, RRType
from tests.dnsmsg import a_record, answer, question_of
from tests.unit.dnsservers import Script, serving

NAME = "kubernetes.default.svc.cluster.local"


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def ok(*addresses: str) -> Script:
    return lambda q: [answer(q, *(a_record(a) for a in addresses))]


async def failure(script: Script, tcp: Script | None = None, within: float = 5.0) -> str:
    async with serving(script, tcp) as server:
        with pytest.raises(LookupFailed) as caught:
            await resolve("127.0.0.1", NAME, within, port=server.port)
    return str(caught.value)


async def test_the_address_comes_back() -> None:
    async with serving(ok("10.96.0.1")) as server:
        got = await resolve("127.0.0.1", NAME, 5.0, port=server.port)
    assert got == Answer(("10.96.0.1",), "udp")
    assert server.queries == [("udp", RRType.A)]


async def test_forged_datagrams_are_ignored() -> None:
    """A datagram with another ID, then one for another question, then the answer."""

    def script(q: bytes) -> list[bytes]:
        own_id = question_of(q)[0]
        other = answer(q, a_record("192.0.2.66"), txid=(own_id + 1) & 0xFFFF)
        other_question = bytearray(answer(q, a_record("192.0.2.67")))
        other_question[13] ^= 0x01  # "k" -> "j": another name (case would not count)
        return [other, bytes(other_question), answer(q, a_record("10.96.0.1"))]

    async with serving(script) as server:
        got = await resolve("127.0.0.1", NAME, 5.0, port=server.port)
    assert got.addresses == ("10.96.0.1",)


@pytest.mark.parametrize(
    ("rcode", "reason"),
    [
        (Rcode.NXDOMAIN, "the name does not exist (NXDOMAIN)"),
        (Rcode.SERVFAIL, "the server failed to answer (SERVFAIL): its upstream or zone is broken"),
        (
            Rcode.REFUSED,
            "the server refused the query (REFUSED): it does not serve this name or this client",
        ),
    ],
)
async def test_error_codes_are_reasons(rcode: int, reason: str) -> None:
    assert await failure(lambda q: [answer(q, rcode=rcode)]) == reason


async def test_no_a_records_asks_for_aaaa() -> None:
    def script(q: bytes) -> list[bytes]:
        if question_of(q)[2] == RRType.A:
            return [answer(q)]  # NOERROR, no records: NODATA
        return [answer(q, a_record("fd00:10:96::a"))]

    async with serving(script) as server:
        got = await resolve("127.0.0.1", NAME, 5.0, port=server.port)
    assert got.addresses == ("fd00:10:96::a",)
    assert server.queries == [("udp", RRType.A), ("udp", RRType.AAAA)]


async def test_no_records_at_all_is_nodata() -> None:
    reason = await failure(lambda q: [answer(q)])
    assert reason == "the name exists but has no A or AAAA records (NODATA)"


async def test_a_truncated_reply_is_asked_again_over_tcp() -> None:
    many = [f"10.1.0.{i}" for i in range(1, 201)]
    udp: Script = lambda q: [answer(q, tc=True)]  # noqa: E731
    tcp: Script = lambda q: [framed(answer(q, *(a_record(a) for a in many)))]  # noqa: E731
    async with serving(udp, tcp) as server:
        got = await resolve("127.0.0.1", NAME, 5.0, port=server.port)
    assert got == Answer(tuple(many), "tcp")
    assert server.queries == [("udp", RRType.A), ("tcp", RRType.A)]


async def test_a_tcp_reply_cut_short() -> None:
    udp: Script = lambda q: [answer(q, tc=True)]  # noqa: E731
    tcp: Script = lambda q: [framed(answer(q, a_record("10.0.0.1")))[:-3]]  # noqa: E731
    reason = await failure(udp, tcp)
    assert reason == "the TCP connection closed before the whole reply came"


async def test_a_broken_reply_of_ours_is_malformed() -> None:
    def script(q: bytes) -> list[bytes]:
        broken = bytearray(answer(q, a_record("10.0.0.1")))
        broken[7] = 0xFF  # 255 answers claimed, one carried
        return [bytes(broken)]

    reason = await failure(script)
    assert reason == "malformed reply: the header claims 255 answers, but only 16 bytes follow"


async def test_a_server_that_never_answers() -> None:
    assert await failure(lambda q: [], within=0.3) == "no answer within 0.3s"


async def test_nothing_listening_is_reported_at_once() -> None:
    """A closed UDP port on loopback: the kernel's ICMP port unreachable ends the wait."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LookupFailed) as caught:
        await resolve("127.0.0.1", NAME, 30.0, port=port)
    assert str(caught.value) == f"nothing answers on port {port} there (ICMP port unreachable)"


async def test_a_name_dns_cannot_carry() -> None:
    with pytest.raises(LookupFailed, match="label of 64 bytes"):
        await resolve("127.0.0.1", "x" * 64 + ".example", 1.0, port=9)
