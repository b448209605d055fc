"""How long can a regular expression take on a name? A bound, computed from the pattern,
so that a config's include/exclude pattern that could backtrack for minutes is refused
when the file is loaded instead of freezing the process when a name comes along.

Python's `re` backtracks: `(a+)+$` tries 2^n ways to split n a's before it gives up, and
a match holds the GIL throughout (no other thread, the event loop included, runs). The
names these patterns filter are short (the kernel's interface names have at most 15
characters, block device names at most 31), and filters apply them to at most
NAME_LIMIT characters, so a pattern is safe if the number of ways it can try on such a
name is small. `ways()` bounds that number, conservatively:

- a single-character item (a, [a-z], \\d, .) and an anchor: 1 way;
- a sequence: the product of its items' ways;
- an alternation: the sum of its branches' ways;
- a repeat of something that matches in one way only (a+, [0-9]{1,3}, (ab)*): as many ways
  as the counts it can try (at most NAME_LIMIT), but only if giving a character back can
  let what follows go on (the character set of the repeat and the first characters of
  what follows overlap); otherwise each count it gives back fails on the next character
  at once, and the repeat adds no ways: [a-z]+[0-9]* and sd[a-z]+$ are 1 way each;
- a repeat of something that can match in several ways ((a|b)*, (a+)+): the sum of
  ways(body)^k over its counts k, which is what makes such patterns exponential;
- a backreference or a conditional group: refused (matching them is NP-hard in general,
  and names never need them).

A trailing repeat (nothing after it can fail) adds nothing. `.*foo.*bar.*` is 65 x 65 =
4,225 ways (counts 0 to 64, twice), `\\d*\\d*x` 65; `(a|a)*`, `(a+)+`, `(ab|a)*c` and
`\\d*\\d*\\d*\\d*x` are beyond MAX_WAYS. Measured: the worst accepted patterns (e.g.
`(a|a){12}b`) search a 64-character name in ~10 ms on a busy 2-core machine.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Any

# The stdlib's own parser of regular expressions (what re.compile uses). It is not a
# public module, hence imported by name and treated as untyped; its shape has been stable
# since Python 3.11 (the opcode names below).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

#: filters match names of at most this many characters (longer names are not selected)
NAME_LIMIT = 64
#: a pattern that may try more ways than this on one name is refused
MAX_WAYS = (NAME_LIMIT + 1) ** 2
#: a pattern longer than this is refused outright (names are short; so are real filters)
MAX_PATTERN = 512

_ASCII = 128
_OTHER = 1 << _ASCII  # one bit for every character beyond ASCII
_ALL = (1 << (_ASCII + 1)) - 1
_CAP = MAX_WAYS * 1024  # ways are saturated here: the exact size of a huge number is moot


class PatternTooCostly(ValueError):
    """The pattern is refused; the message says why, for a config error."""


def _chars(text: str) -> int:
    mask = 0
    for c in text:
        mask |= 1 << ord(c) if ord(c) < _ASCII else _OTHER
    return mask


_DIGITS = _chars("0123456789")
_SPACE = _chars(" \t\n\r\f\v")
_WORD = _chars("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# the Unicode classes also match characters beyond ASCII: the _OTHER bit
_CATEGORIES = {
    "DIGIT": _DIGITS | _OTHER,
    "SPACE": _SPACE | _OTHER,
    "WORD": _WORD | _OTHER,
    "LINEBREAK": _chars("\n") | _OTHER,
}


def _category(code: object) -> int:
    name = str(code).removeprefix("CATEGORY_").removeprefix("UNI_").removeprefix("LOC_")
    if name.startswith("NOT_"):
        return _ALL & ~(_CATEGORIES[name[4:]] & ~_OTHER)
    return _CATEGORIES[name]


def _fold(mask: int) -> int:
    """With IGNORECASE, a letter matches its other case too."""
    for c in range(ord("A"), ord("Z") + 1):
        if mask & (1 << c) or mask & (1 << (c + 32)):
            mask |= (1 << c) | (1 << (c + 32))
    return mask


def _char_set(op: object, av: Any, ignorecase: bool) -> int | None:
    """The characters a single-character item matches, or None if it is not one."""
    if op is _c.LITERAL:
        mask = 1 << av if av < _ASCII else _OTHER
    elif op is _c.NOT_LITERAL:
        mask = _ALL & ~(1 << av) if av < _ASCII else _ALL
    elif op is _c.ANY:
        mask = _ALL
    elif op is _c.CATEGORY:
        mask = _category(av)
    elif op is _c.IN:
        mask, negate = 0, False
        for item_op, item_av in av:
            if item_op is _c.NEGATE:
                negate = True
            elif item_op is _c.LITERAL:
                mask |= 1 << item_av if item_av < _ASCII else _OTHER
            elif item_op is _c.RANGE:
                low, high = item_av
                for c in range(low, min(high, _ASCII - 1) + 1):
                    mask |= 1 << c
                if high >= _ASCII:
                    mask |= _OTHER
            elif item_op is _c.CATEGORY:
                mask |= _category(item_av)
            else:  # anything else in a class: assume it matches everything
                mask = _ALL
        if negate:
            mask = _ALL & ~(mask & ~_OTHER)
    else:
        return None
    return _fold(mask) if ignorecase else mask


@dataclass(frozen=True)
class _Shape:
    """What a piece of pattern does: how many ways it can try, which characters it can
    start with, and whether it can match nothing."""

    ways: int
    first: int
    nullable: bool


def _sat(n: int) -> int:
    return min(n, _CAP)


def _sequence(items: Any, follow: int, ignorecase: bool) -> _Shape:
    """`follow`: the first characters of what comes after this sequence (0 at the end of
    the pattern: nothing there can fail)."""
    ways, first, nullable = 1, 0, True
    # right to left: each item sees the first characters of what follows it
    for op, av in reversed(list(items)):
        shape = _item(op, av, follow, ignorecase)
        ways = _sat(ways * shape.ways)
        first = shape.first | (first if shape.nullable else 0)
        follow = shape.first | (follow if shape.nullable else 0)
        nullable = nullable and shape.nullable
    return _Shape(ways, first, nullable)


def _item(op: object, av: Any, follow: int, ignorecase: bool) -> _Shape:
    chars = _char_set(op, av, ignorecase)
    if chars is not None:
        return _Shape(1, chars, False)
    if op is _c.AT:
        return _Shape(1, 0, True)
    if op in (_c.ASSERT, _c.ASSERT_NOT):  # zero-width; its own tries still count
        inner = _sequence(av[1], 0, ignorecase)
        return _Shape(inner.ways, 0, True)
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        if add_flags & _c.SRE_FLAG_IGNORECASE:
            ignorecase = True
        elif del_flags & _c.SRE_FLAG_IGNORECASE:
            ignorecase = False
        return _sequence(body, follow, ignorecase)
    if op is _c.ATOMIC_GROUP:
        return _sequence(av, follow, ignorecase)
    if op is _c.BRANCH:
        shapes = [_sequence(branch, follow, ignorecase) for branch in av[1]]
        return _Shape(
            _sat(sum(s.ways for s in shapes)),
            _fold_or(shapes),
            any(s.nullable for s in shapes),
        )
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        return _repeat(av, follow, ignorecase)
    if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
        raise PatternTooCostly("backreferences and conditional groups are not supported")
    raise PatternTooCostly(f"unsupported construct {op}")


def _fold_or(shapes: list[_Shape]) -> int:
    mask = 0
    for s in shapes:
        mask |= s.first
    return mask


def _repeat(av: Any, follow: int, ignorecase: bool) -> _Shape:
    low, high, body = av
    min_width = body.getwidth()[0]
    most = NAME_LIMIT // min_width if min_width else NAME_LIMIT
    high = min(high, most)
    low = min(low, high)
    # inside the repeat, the body is followed by itself or by what follows the repeat
    probe = _sequence(body, follow, ignorecase)
    inner = _sequence(body, probe.first | follow, ignorecase)
    if inner.ways == 1:
        # one way per count: the counts it gives back matter only if what follows can
        # start with a character the body can end with (its first characters, as a
        # conservative stand-in)
        counts = high - low + 1
        ways = counts if inner.first & follow else 1
    else:
        ways = sum(inner.ways**k for k in range(low, min(high, 64) + 1))
    return _Shape(_sat(ways), inner.first, low == 0 or inner.nullable)


def ways(pattern: str) -> int:
    """An upper bound of the ways `pattern` can try from one position of a name of at
    most NAME_LIMIT characters (saturated far above MAX_WAYS)."""
    with warnings.catch_warnings():  # re.compile has warned already, if it had to
        warnings.simplefilter("ignore")
        parsed = _parser.parse(pattern, 0)
    ignorecase = bool(parsed.state.flags & _c.SRE_FLAG_IGNORECASE)
    return _sequence(parsed, 0, ignorecase).ways


def check(pattern: str) -> None:
    """Raise PatternTooCostly if `pattern` (already known to compile) could backtrack too
    long on a name."""
    if len(pattern) > MAX_PATTERN:
        raise PatternTooCostly(f"longer than {MAX_PATTERN} characters")
    if ways(pattern) > MAX_WAYS:
        raise PatternTooCostly(
            "could backtrack too long on some names: a repeat inside a repeat, a repeated "
            "alternation, or repeats next to each other that can match the same "
            "characters (e.g. (a+)+, (a|b)*, \\d*\\d*\\d*); rewrite it so that each part "
            "of a name can be matched only one way"
        )
