"""The DNS message parser against good replies and hostile ones: whatever a server (or
anyone who guesses the port and ID) sends, the parser returns a Reply or raises one of its
two documented errors, and its loops are bounded by the message, not by what it claims."""

from __future__ import annotations

import ipaddress
import itertools
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exporter.checks.dnswire import (
    EDNS_PAYLOAD,
    MAX_CNAMES,
    MalformedReply,
    NotOurReply,
    Query,
    Rcode,
    Reply,
    RRType,
    encode_name,
    make_query,
    parse_reply,
    rcode_reason,
    read_name,
)
from tests.dnsmsg import a_record, record

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUERY = make_query("kubernetes.default.svc.cluster.local", RRType.A, 0x1234)
QUESTION_AT = 12  # the question's name starts right after the header


def header(
    query: Query = QUERY,
    *,
    rcode: int = 0,
    tc: bool = False,
    qd: int = 1,
    an: int = 0,
    txid: int | None = None,
    qr: bool = True,
) -> bytes:
    flags = (0x8000 if qr else 0) | 0x0100 | 0x0080 | (0x0200 if tc else 0) | rcode
    return struct.pack("!HHHHHH", query.txid if txid is None else txid, flags, qd, an, 0, 0)


def question(query: Query = QUERY) -> bytes:
    return encode_name(query.name) + struct.pack("!HH", query.qtype, 1)


def reply(*answers: bytes, query: Query = QUERY, **head: object) -> bytes:
    an = head.pop("an", len(answers))
    return header(query, an=an, **head) + question(query) + b"".join(answers)  # type: ignore[arg-type]


# --- good replies ---------------------------------------------------------------------


def test_a_records_of_the_name() -> None:
    got = parse_reply(reply(a_record("10.96.0.1"), a_record("10.96.0.2")), QUERY)
    assert got == Reply(Rcode.NOERROR, False, ("10.96.0.1", "10.96.0.2"))


def test_aaaa_records() -> None:
    query = make_query("kubernetes.default.svc.cluster.local.", RRType.AAAA, 7)
    rr = record(b"\xc0\x0c", RRType.AAAA, ipaddress.ip_address("fd00:10:96::1").packed)
    assert parse_reply(reply(rr, query=query), query).addresses == ("fd00:10:96::1",)


def test_a_cname_chain_is_followed_and_strangers_are_not_counted() -> None:
    target = encode_name(b"coredns.kube-system.svc.cluster.local")
    cname = record(b"\xc0\x0c", RRType.CNAME, target)
    target_at = 12 + len(question()) + 12  # owner pointer (2) + fixed part (10)
    owned = a_record("10.244.0.5", owner=struct.pack("!H", 0xC000 | target_at))
    stranger = a_record("192.0.2.66", owner=encode_name(b"other.example"))
    got = parse_reply(reply(cname, owned, stranger), QUERY)
    assert got.addresses == ("10.244.0.5",)


def test_a_cname_loop_ends() -> None:
    """a -> b -> a: the chain is followed once around, then stops; no address."""
    b = encode_name(b"b.example")
    to_b = record(b"\xc0\x0c", RRType.CNAME, b)
    b_at = 12 + len(question()) + 12
    to_a = record(struct.pack("!H", 0xC000 | b_at), RRType.CNAME, b"\xc0\x0c")
    assert parse_reply(reply(to_b, to_a), QUERY).addresses == ()


def test_case_of_the_echoed_question_does_not_matter() -> None:
    shouted = make_query("KUBERNETES.default.svc.cluster.local", RRType.A, QUERY.txid)
    data = header(an=1) + encode_name(b"KUBERNETES.DEFAULT.svc.cluster.local") + b"\x00\x01\x00\x01"
    assert parse_reply(data + a_record("10.96.0.1"), shouted).addresses == ("10.96.0.1",)


def test_query_on_the_wire() -> None:
    wire = make_query("kubernetes.default.svc.cluster.local", RRType.A, 0xBEEF).wire()
    txid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire)
    assert (txid, flags, qd, an, ns, ar) == (0xBEEF, 0x0100, 1, 0, 0, 1)  # RD, one OPT
    name, pos = read_name(wire, 12)
    assert name == b"kubernetes.default.svc.cluster.local"
    assert struct.unpack_from("!HH", wire, pos) == (RRType.A, 1)
    # the OPT pseudo-record: root owner, type 41, class = the UDP payload we accept
    assert wire[pos + 4 :] == b"\x00" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, 0, 0)


@pytest.mark.parametrize(
    "name", ["", "a..b", "x" * 64 + ".example", ".".join(["abcdefgh"] * 32), "nöde.example"]
)
def test_names_dns_cannot_carry_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        make_query(name, RRType.A, 1)


# --- error replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rcode", "words"),
    [
        (Rcode.NXDOMAIN, "does not exist (NXDOMAIN)"),
        (Rcode.SERVFAIL, "failed to answer (SERVFAIL)"),
        (Rcode.REFUSED, "refused the query (REFUSED)"),
        (Rcode.FORMERR, "(FORMERR)"),
        (Rcode.NOTIMP, "(NOTIMP)"),
        (9, "error code 9"),
    ],
)
def test_rcodes_read_as_reasons(rcode: int, words: str) -> None:
    got = parse_reply(reply(rcode=rcode), QUERY)
    assert got == Reply(rcode, False)
    assert words in rcode_reason(got.rcode)


def test_an_error_reply_without_the_question_is_still_ours() -> None:
    data = header(rcode=Rcode.REFUSED, qd=0)
    assert parse_reply(data, QUERY) == Reply(Rcode.REFUSED, False)


def test_a_truncated_reply_is_flagged_and_its_records_not_read() -> None:
    data = reply(an=40, tc=True)  # claims 40 answers, carries none: normal for TC
    assert parse_reply(data, QUERY) == Reply(Rcode.NOERROR, True)


# --- not ours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        reply(a_record("10.0.0.1"), txid=0x4321),  # another transaction
        reply(a_record("10.0.0.1"), qr=False),  # a query, not a reply
        reply(a_record("10.0.0.1"), query=make_query("evil.example", RRType.A, 0x1234)),
        reply(a_record("10.0.0.1"), query=make_query(QUERY.name.decode(), RRType.AAAA, 0x1234)),
        b"\x12\x34\x80",  # shorter than a header
        header() + b"\x05short",  # a question cut off
    ],
)
def test_replies_to_something_else_are_not_ours(data: bytes) -> None:
    with pytest.raises(NotOurReply):
        parse_reply(data, QUERY)


# --- hostile replies ------------------------------------------------------------------------


def test_a_pointer_to_itself_is_refused() -> None:
    at = 12 + len(question())
    loop = struct.pack("!H", 0xC000 | at) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x0a\0\0\1"
    with pytest.raises(MalformedReply, match="points forward or loops"):
        parse_reply(reply(loop), QUERY)


def test_a_label_then_a_pointer_back_to_it_is_refused() -> None:
    """ "a" then a pointer to the "a": the pointer is behind itself, but it would repeat
    "a.a.a..." for ever."""
    at = 12 + len(question())
    owner = b"\x01a" + struct.pack("!H", 0xC000 | at)
    with pytest.raises(MalformedReply, match="points forward or loops"):
        parse_reply(reply(a_record("10.0.0.1", owner=owner)), QUERY)


def test_two_pointers_pointing_at_each_other_are_refused() -> None:
    """Owner at X: a label, then a pointer to Y; at Y (before X): a pointer back to X."""
    at = 12 + len(question())
    y = at  # first record: its owner is only a pointer, to the second record's owner
    x = at + 2 + 10 + 4
    first = struct.pack("!H", 0xC000 | x) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x0a\0\0\1"
    second = b"\x01a" + struct.pack("!H", 0xC000 | y) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\0" * 4
    with pytest.raises(MalformedReply, match="points forward or loops"):
        parse_reply(reply(first, second), QUERY)


def test_a_huge_answer_count_is_refused_before_reading() -> None:
    with pytest.raises(MalformedReply, match="claims 65535 answers"):
        parse_reply(reply(a_record("10.0.0.1"), an=65535), QUERY)


def test_a_name_longer_than_255_bytes_is_refused() -> None:
    long_owner = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
    with pytest.raises(MalformedReply, match="longer than 255"):
        parse_reply(reply(a_record("10.0.0.1", owner=long_owner)), QUERY)


def test_extended_label_types_are_refused() -> None:
    with pytest.raises(MalformedReply, match="unsupported label type"):
        parse_reply(reply(a_record("10.0.0.1", owner=b"\x41\x00")), QUERY)


def pointer_chain(at: int, length: int) -> bytes:
    """The root at `at`, then `length` pointers, each to the one before it (the first to
    the root): every pointer points backwards, so only the count can stop a long one."""
    targets = [at] + [at + 1 + 2 * i for i in range(length - 1)]
    return b"\x00" + b"".join(struct.pack("!H", 0xC000 | t) for t in targets)


def test_a_chain_of_pointers_is_bounded() -> None:
    at = 12 + len(question())
    data = header(an=1) + question() + pointer_chain(at, 200)
    last = at + 1 + 2 * 199
    with pytest.raises(MalformedReply, match="more than 127 compression pointers"):
        read_name(data, last)
    fits = at + 1 + 2 * 126  # the 127th pointer: 127 jumps back to the root
    assert read_name(data, fits) == (b"", fits + 2)


def test_an_address_record_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(MalformedReply, match="address record of 5 bytes"):
        parse_reply(reply(record(b"\xc0\x0c", RRType.A, b"\x0a\0\0\1\0")), QUERY)


def test_a_record_running_past_the_end_is_refused() -> None:
    with pytest.raises(MalformedReply, match="runs past the end"):
        parse_reply(reply(a_record("10.0.0.1"))[:-2], QUERY)


def test_more_than_a_message_is_refused() -> None:
    with pytest.raises(MalformedReply, match="more than a DNS message"):
        parse_reply(reply(b"\0" * 70000), QUERY)


def test_opcodes_other_than_query_are_refused() -> None:
    data = bytearray(reply())
    data[2] |= 0x28  # opcode 5 (UPDATE)
    with pytest.raises(MalformedReply, match="opcode 5"):
        parse_reply(bytes(data), QUERY)


# --- properties -------------------------------------------------------------------------

good = reply(a_record("10.96.0.1"), a_record("10.96.0.2"))


def survives(data: bytes) -> Reply | None:
    try:
        reply = parse_reply(data, QUERY)
    except (MalformedReply, NotOurReply):
        return None
    assert reply.rcode in range(16)
    assert all(ipaddress.ip_address(a) for a in reply.addresses)
    return reply


@SETTINGS
@given(st.binary(max_size=2048))
def test_any_bytes_after_our_header_and_question(tail: bytes) -> None:
    """Our ID and question, then anything, under any counts: a Reply or an error."""
    survives(header() + question() + tail)


@SETTINGS
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=1024),
)
def test_any_flags_and_counts(flags: int, qd: int, an: int, tail: bytes) -> None:
    data = struct.pack("!HHHHHH", QUERY.txid, flags, qd, an, 0xFFFF, 0xFFFF) + question() + tail
    survives(data)


@SETTINGS
@given(st.data())
def test_a_good_reply_cut_or_scribbled_anywhere(data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(good)))
    survives(good[:cut])
    spots = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255))))
    scribbled = bytearray(good)
    for at, byte in spots:
        scribbled[at] = byte
    survives(bytes(scribbled))


@SETTINGS
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=300), st.binary(max_size=64))
def test_names_made_only_of_pointers(targets: list[int], filler: bytes) -> None:
    """Any pattern of compression pointers ends: a name, or MalformedReply."""
    body = filler + b"".join(struct.pack("!H", 0xC000 | (t & 0x3FFF)) for t in targets)
    data = header(an=1) + question() + body
    for start in range(len(data) - 2 * len(targets), len(data), 2):
        try:
            name, _ = read_name(data, start)
        except MalformedReply:
            continue
        assert len(name) < 255  # labels and dots: the wire form's bound


@SETTINGS
@given(st.binary(min_size=1, max_size=600), st.lists(st.integers(0, 599), max_size=40))
def test_remembered_names_read_as_walked_names(data: bytes, starts: list[int]) -> None:
    """Reading names with the per-message memory of pointer targets gives the same names
    as walking every pointer, in any order of reading."""
    known: dict[int, bytes] = {}
    for start in starts:
        start %= len(data)
        try:
            walked = read_name(data, start)
        except MalformedReply:
            walked = None
        try:
            remembered = read_name(data, start, known)
        except MalformedReply:
            assert walked is None  # memory never refuses what a walk accepts
            continue
        if walked is not None:
            assert remembered == walked


def test_many_records_into_one_long_chain_walk_it_once() -> None:
    """4,000 records whose owners each point at the end of a 126-pointer chain: each
    pointer target is remembered, so the chain is walked once, not 4,000 times."""
    rdata_at = 12 + len(question()) + 1 + 10
    chain = pointer_chain(rdata_at, 126)
    holder = b"\x00" + struct.pack("!HHIH", 99, 1, 0, len(chain)) + chain  # type 99: skipped
    owner = struct.pack("!H", 0xC000 | (rdata_at + 1 + 2 * 125))
    records = [holder, *(a_record("10.0.0.1", owner=owner) for _ in range(4000))]
    known: dict[int, bytes] = {}
    data = reply(*records)
    assert parse_reply(data, QUERY).addresses == ()  # the owners are the root, not ours
    first_owner = 12 + len(question()) + len(holder)
    read_name(data, first_owner, known)
    assert len(known) == 127  # the owner's target and the 126 on the chain, each once


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
names = st.lists(labels, min_size=1, max_size=5).map(".".join)


@SETTINGS
@given(
    st.lists(st.ip_addresses(v=4).map(str), max_size=30),
    st.lists(st.tuples(names, st.ip_addresses(v=4).map(str)), max_size=10),
)
def test_every_address_of_the_name_and_no_other(mine: list[str], others: list) -> None:  # type: ignore[type-arg]
    """Answers for our name (by pointer) and for other names (spelled out), in any order:
    exactly ours come back."""
    assume(all(name != QUERY.name.decode() for name, _ in others))
    records = [a_record(a) for a in mine]
    records += [a_record(a, owner=encode_name(name.encode())) for name, a in others]
    got = parse_reply(reply(*records), QUERY)
    assert list(got.addresses) == mine


def cname_chain(chain: list[bytes], address: str) -> list[bytes]:
    """CNAME records from each name to the next, and an A record for the last."""
    records = [
        record(encode_name(a), RRType.CNAME, encode_name(b)) for a, b in itertools.pairwise(chain)
    ]
    return [*records, a_record(address, owner=encode_name(chain[-1]))]


def test_the_cname_chain_is_bounded() -> None:
    """MAX_CNAMES hops are followed; a longer chain is not, and gives no address."""
    chain = [QUERY.name] + [f"c{i}.example".encode() for i in range(MAX_CNAMES + 3)]
    assert parse_reply(reply(*cname_chain(chain, "10.0.0.9")), QUERY).addresses == ()
    short = chain[: MAX_CNAMES + 1]
    assert parse_reply(reply(*cname_chain(short, "10.0.0.9")), QUERY).addresses == ("10.0.0.9",)
