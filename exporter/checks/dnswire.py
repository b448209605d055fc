"""DNS messages on the wire (RFC 1035 section 4): one A or AAAA query out, its reply in.

A reply comes off the network, so the parser trusts none of it. Every step is bounded:
the message size (64 KiB, the most TCP can carry), each label (63 bytes) and each name
(255 bytes, RFC 1035 2.3.4), compression pointers (each must point before the previous
one, so a loop cannot exist, and at most MAX_POINTERS of them per name; a name a pointer
led to is remembered for the message, so thousands of records pointing into one long
chain cost one walk of it), the record counts (a header claiming more records than the
bytes can hold is refused before any is read) and the CNAME chain. Its work is linear in
the message size.

Only what a resolution check needs is decoded: the header, the question, and the A, AAAA
and CNAME records of the answer section; other records are skipped by their length.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

MAX_MESSAGE = 65535  # a TCP reply's length prefix is 16 bits; UDP carries no more either
MAX_NAME = 255  # wire form, length octets included (RFC 1035 2.3.4)
MAX_LABEL = 63
#: a name of 255 bytes has at most 127 labels; more jumps than that only loop or stall
MAX_POINTERS = 127
MAX_CNAMES = 8
#: the EDNS0 UDP payload size DNS Flag Day 2020 settled on: no IP fragmentation
EDNS_PAYLOAD = 1232
MIN_RECORD = 11  # a root owner name (1 byte) plus type, class, TTL, rdlength (10 bytes)

HEADER = struct.Struct("!HHHHHH")
FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdlength
QR, TC = 0x8000, 0x0200
CLASS_IN = 1


class RRType(IntEnum):
    A = 1
    CNAME = 5
    AAAA = 28
    OPT = 41


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


RCODE_REASONS = {
    Rcode.FORMERR: "the server could not read the query (FORMERR)",
    Rcode.SERVFAIL: "the server failed to answer (SERVFAIL): its upstream or zone is broken",
    Rcode.NXDOMAIN: "the name does not exist (NXDOMAIN)",
    Rcode.NOTIMP: "the server does not implement this query (NOTIMP)",
    Rcode.REFUSED: "the server refused the query (REFUSED): it does not serve this name "
    "or this client",
}


def rcode_reason(rcode: int) -> str:
    known = RCODE_REASONS.get(rcode)  # type: ignore[call-overload]
    return known if known is not None else f"the server answered with error code {rcode}"


class MalformedReply(Exception):
    """The reply is ours (its ID and question match) but cannot be read; says why."""


class NotOurReply(Exception):
    """A datagram that does not answer our query (another ID or question): ignored."""


@dataclass(frozen=True)
class Query:
    txid: int
    name: bytes  # lower case, no trailing dot, labels joined by "."
    qtype: RRType

    def wire(self, *, edns: bool = True) -> bytes:
        """The query: recursion desired, one question, and an EDNS0 OPT record (so the
        server may answer up to EDNS_PAYLOAD bytes over UDP) unless `edns` is off."""
        header = HEADER.pack(self.txid, 0x0100, 1, 0, 0, 1 if edns else 0)
        question = encode_name(self.name) + struct.pack("!HH", self.qtype, CLASS_IN)
        opt = b"\x00" + FIXED.pack(RRType.OPT, EDNS_PAYLOAD, 0, 0) if edns else b""
        return header + question + opt


def make_query(name: str, qtype: RRType, txid: int) -> Query:
    """A query for `name` (a trailing dot is allowed); ValueError for a name DNS cannot
    carry."""
    if not 0 <= txid <= 0xFFFF:
        raise ValueError(f"transaction id out of range: {txid}")
    try:
        raw = name.rstrip(".").encode("ascii").lower()
    except UnicodeEncodeError:
        raise ValueError(f"not an ASCII DNS name: {name!r}") from None
    if not raw:
        raise ValueError("an empty name")
    encode_name(raw)  # validates
    return Query(txid, raw, qtype)


def encode_name(name: bytes) -> bytes:
    if not name:
        return b"\x00"
    out = bytearray()
    for label in name.split(b"."):
        if not 1 <= len(label) <= MAX_LABEL:
            raise ValueError(f"label of {len(label)} bytes in {name!r} (1 to {MAX_LABEL})")
        out += bytes([len(label)]) + label
    out += b"\x00"
    if len(out) > MAX_NAME:
        raise ValueError(f"name of {len(out)} bytes on the wire (at most {MAX_NAME})")
    return bytes(out)


def read_name(data: bytes, offset: int, known: dict[int, bytes] | None = None) -> tuple[bytes, int]:
    """The name at `offset` (lower case, labels joined by ".") and the offset after it
    where it is written (a pointer ends it there).

    `known` remembers, for one message, the name each followed pointer led to: a reply
    whose thousands of records all point into one long chain of pointers costs one walk
    of the chain, not one per record, so the work stays linear in the message size."""
    labels: list[bytes] = []
    #: (pointer target, index in labels where the name at that target begins)
    targets: list[tuple[int, int]] = []
    wire_length = 1  # the root's zero byte
    pos = offset
    after: int | None = None
    lowest = offset  # every pointer must point below the previous one (or the name)
    pointers = 0
    tail = b""  # a remembered name that ends this one
    while True:
        if pos >= len(data):
            raise MalformedReply(f"a name at byte {offset} runs past the end of the message")
        length = data[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(data):
                raise MalformedReply(f"a compression pointer at byte {pos} is cut off")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if after is None:
                after = pos + 2
            pointers += 1
            if target >= lowest:
                raise MalformedReply(
                    f"a compression pointer at byte {pos} points forward or loops (to {target})"
                )
            if pointers > MAX_POINTERS:
                raise MalformedReply(
                    f"a name at byte {offset} has more than {MAX_POINTERS} compression pointers"
                )
            if known is not None and target in known:
                tail = known[target]
                wire_length += len(tail) + 1 if tail else 0
                break
            targets.append((target, len(labels)))
            lowest = pos = target
            continue
        if kind:
            raise MalformedReply(f"unsupported label type {kind >> 6:#x} at byte {pos}")
        if length == 0:
            break
        wire_length += length + 1
        if wire_length > MAX_NAME:
            raise MalformedReply(f"a name at byte {offset} is longer than {MAX_NAME} bytes")
        end = pos + 1 + length
        if end > len(data):
            raise MalformedReply(f"a label at byte {pos} runs past the end of the message")
        labels.append(data[pos + 1 : end].lower())
        pos = end
    if wire_length > MAX_NAME:
        raise MalformedReply(f"a name at byte {offset} is longer than {MAX_NAME} bytes")
    if tail:
        labels.append(tail)
    if known is not None:
        for target, index in targets:
            known[target] = b".".join(labels[index:])
    return b".".join(labels), (pos + 1 if after is None else after)


@dataclass(frozen=True)
class Reply:
    rcode: int
    truncated: bool
    addresses: tuple[str, ...] = ()  # of the queried type, for the name or its CNAMEs


def parse_reply(data: bytes, query: Query) -> Reply:
    """Read a reply to `query`. NotOurReply when it answers something else, MalformedReply
    when it is ours but broken. A truncated reply (TC) carries no records worth reading:
    the caller asks again over TCP."""
    if len(data) > MAX_MESSAGE:
        raise MalformedReply(f"{len(data)} bytes, more than a DNS message can hold")
    if len(data) < HEADER.size:
        raise NotOurReply(f"{len(data)} bytes, shorter than a DNS header")
    txid, flags, qdcount, ancount, _, _ = HEADER.unpack_from(data)
    if txid != query.txid or not flags & QR:
        raise NotOurReply("another transaction id, or not a reply")
    opcode = (flags >> 11) & 0xF
    rcode = flags & 0xF
    if opcode != 0:
        raise MalformedReply(f"the reply has opcode {opcode}, the query had 0")
    pos = HEADER.size
    if qdcount == 0 and rcode != Rcode.NOERROR:
        return Reply(rcode, bool(flags & TC))  # some servers drop the question on errors
    if qdcount != 1:
        raise MalformedReply(f"the reply has {qdcount} questions, the query had 1")
    try:
        qname, pos = read_name(data, pos)  # nothing to remember yet
    except MalformedReply as e:
        raise NotOurReply(f"unreadable question: {e}") from None
    if pos + 4 > len(data):
        raise NotOurReply("the question is cut off")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    pos += 4
    if (qname, qtype, qclass) != (query.name, query.qtype, CLASS_IN):
        raise NotOurReply("the reply answers another question")
    if flags & TC:
        return Reply(rcode, True)
    if rcode != Rcode.NOERROR:
        return Reply(rcode, False)
    if ancount * MIN_RECORD > len(data) - pos:
        raise MalformedReply(
            f"the header claims {ancount} answers, but only {len(data) - pos} bytes follow"
        )
    cnames: dict[bytes, bytes] = {}
    found: list[tuple[bytes, str]] = []
    known: dict[int, bytes] = {}
    for _ in range(ancount):
        owner, pos = read_name(data, pos, known)
        if pos + FIXED.size > len(data):
            raise MalformedReply(f"a record at byte {pos} is cut off")
        rtype, rclass, _, rdlength = FIXED.unpack_from(data, pos)
        pos += FIXED.size
        end = pos + rdlength
        if end > len(data):
            raise MalformedReply(f"a record's data at byte {pos} runs past the end")
        if rclass == CLASS_IN and rtype == RRType.CNAME:
            target, after = read_name(data, pos, known)
            if after != end:
                raise MalformedReply(f"a CNAME at byte {pos} does not fill its record")
            cnames.setdefault(owner, target)
        elif rclass == CLASS_IN and rtype == query.qtype:
            size = 4 if rtype == RRType.A else 16
            if rdlength != size:
                raise MalformedReply(f"an address record of {rdlength} bytes (not {size})")
            found.append((owner, str(ipaddress.ip_address(data[pos:end]))))
        pos = end
    names = {query.name}
    name = query.name
    for _ in range(MAX_CNAMES):
        next_name = cnames.get(name)
        if next_name is None or next_name in names:
            break
        names.add(next_name)
        name = next_name
    return Reply(rcode, False, tuple(address for owner, address in found if owner in names))
