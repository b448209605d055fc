"""DNS replies made by hand for the tests: good ones, error ones and broken ones."""

from __future__ import annotations

import ipaddress
import struct

from exporter.checks.dnswire import RRType, read_name

#: the owner name "see the question" (a compression pointer to byte 12)
AT_QUESTION = b"\xc0\x0c"


def record(owner: bytes, rtype: int, rdata: bytes, ttl: int = 30) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a_record(address: str, owner: bytes = AT_QUESTION) -> bytes:
    """An A (or AAAA, for an IPv6 address) record, by default for the question's name."""
    packed = ipaddress.ip_address(address).packed
    return record(owner, RRType.A if len(packed) == 4 else RRType.AAAA, packed)


def question_of(query: bytes) -> tuple[int, bytes, int]:
    """A query's transaction ID, its question section (bytes) and the type it asks for."""
    _, end = read_name(query, 12)
    (qtype,) = struct.unpack_from("!H", query, end)
    return int.from_bytes(query[:2], "big"), query[12 : end + 4], qtype


def answer(
    query: bytes, *records: bytes, rcode: int = 0, tc: bool = False, txid: int | None = None
) -> bytes:
    """A reply to `query` carrying `records` in its answer section."""
    own_id, question, _ = question_of(query)
    flags = 0x8180 | (0x0200 if tc else 0) | rcode
    head = struct.pack("!HHHHHH", own_id if txid is None else txid, flags, 1, len(records), 0, 0)
    return head + question + b"".join(records)
