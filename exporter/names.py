"""Names of the node's devices (network interfaces, block devices) as label values.

The kernel takes any bytes in such a name but "/" and NUL (an interface name also no
whitespace or ":"), so a name need not be UTF-8, while a Prometheus label value must be.
Python hands such a name over as a str holding surrogate escapes (os.fsdecode, what
os.listdir and pathlib return) or, from pyroute2's netlink parser, as bytes. A name is kept
in that form for the calls that need it (open a sysfs file, ask ethtool) and shown as
`label()`: its UTF-8 text, with each byte that is not UTF-8 written as \\xNN.
"""

from __future__ import annotations

import os


def raw(name: str | bytes) -> bytes:
    """The name's bytes, as the kernel holds them."""
    return name if isinstance(name, bytes) else os.fsencode(name)


def local(name: str | bytes) -> str:
    """The name as Python's os and pathlib functions take it (surrogate escapes)."""
    return os.fsdecode(name) if isinstance(name, bytes) else name


def label(name: str | bytes) -> str:
    """The name as a label value: UTF-8 text, a byte that is not UTF-8 written \\xNN."""
    return raw(name).decode("utf-8", "backslashreplace")


def is_utf8(name: str | bytes) -> bool:
    try:
        raw(name).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def odd_name_note(kind: str, name: str | bytes) -> str:
    """The note for a name that is not UTF-8 (it still reports, under its escaped label)."""
    return (
        f"{kind} {label(name)}: the name is not UTF-8; its label writes each byte that is "
        "not as \\xNN"
    )
