"""Prometheus text exposition read as it streams in: a count of the samples and the few
samples asked for by name, without building the whole model.

prometheus_client's parser makes an object per family and per sample: a 4 MB Kube-OVN
body cost 131-187 MiB of RSS and more than the check's timeout on a 2-core node. This
reader keeps only the unfinished line, a counter, and the samples of the names it was
asked for. Every complete line is still checked against the text format's grammar
(https://prometheus.io/docs/instrumenting/exposition_formats/, as expfmt's text parser
reads it), so an HTML page or a binary is refused as "not Prometheus text".

Bounded: a line longer than `max_line` bytes, more than `max_samples` samples, or more
than `keep` samples of one wanted name are refused (ValueError) or not kept; the caller
bounds the body and the time (it feeds chunks from a bounded fetch).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

#: a longer line is refused: real label values are short, and an unbounded line would
#: make the unfinished-line buffer the body
MAX_LINE_BYTES = 64 * 1024
#: more samples than this are refused (a 4 MiB body of the shortest lines has ~1M)
MAX_SAMPLES = 1_000_000
#: samples kept per wanted name (Kube-OVN's node facts have one each)
KEEP = 16

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
#: a label value: runs of anything but a quote, a backslash or a newline, between the three
#: escapes (unrolled and possessive: fast, and a value that never closes cannot backtrack)
_VALUE = r'"[^"\\\n]*+(?:\\[\\"n][^"\\\n]*+)*+"'
_PAIR = rf"{_LABEL_NAME}[ \t]*+=[ \t]*+{_VALUE}"
_LABELS = rf"\{{[ \t]*+(?:{_PAIR}[ \t]*+(?:,[ \t]*+{_PAIR}[ \t]*+)*+,?[ \t]*+)?\}}"
_SAMPLE = re.compile(rf"({_NAME})(?:[ \t]*+({_LABELS}))?[ \t]++([^ \t]++)(?:[ \t]++(-?[0-9]++))?")
_COMMENT = re.compile(r"#[ \t]*+(HELP|TYPE)(?:[ \t]++(.*))?")
_HELP = re.compile(rf"{_NAME}(?:[ \t].*)?")
_TYPE = re.compile(rf"{_NAME}[ \t]++(?:counter|gauge|histogram|summary|untyped)[ \t]*+")
_PAIRS = re.compile(rf'({_LABEL_NAME})[ \t]*=[ \t]*"((?:[^"\\\n]|\\[\\"n])*)"')
_UNESCAPE = re.compile(r"\\([\\\"n])")


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _number(text: str) -> float | None:
    """A sample value as Go's strconv.ParseFloat reads it (NaN, +Inf, -Inf, decimals), or
    None; Python's own extras (digit underscores) are refused."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Kept:
    """One sample of a wanted name."""

    labels: dict[str, str]
    value: float


@dataclass
class Scan:
    """What a body held: its sample count, and the samples of the wanted names."""

    samples: int = 0
    kept: dict[str, list[Kept]] = field(default_factory=dict)


class TextReader:
    """Feed it the body in chunks of any size, then close() it for the Scan. Any line that
    is not Prometheus text raises ValueError (UnicodeDecodeError is one)."""

    def __init__(
        self,
        wanted: Collection[str] = (),
        *,
        max_line: int = MAX_LINE_BYTES,
        max_samples: int = MAX_SAMPLES,
        keep: int = KEEP,
    ) -> None:
        self.wanted = frozenset(wanted)
        self.max_line = max_line
        self.max_samples = max_samples
        self.keep = keep
        self.scan = Scan()
        self._partial = b""
        self._line = 0

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
        else:
            self._partial = data[end + 1 :]
            # whole lines only: a multi-byte character never spans a newline
            self._lines(data[:end].decode("utf-8"))
        if len(self._partial) > self.max_line:
            raise ValueError(f"line {self._line + 1} is longer than {self.max_line} bytes")

    def close(self) -> Scan:
        """The scan; a last line without its newline is read too."""
        if self._partial:
            self._lines(self._partial.decode("utf-8"))
            self._partial = b""
        return self.scan

    def _lines(self, text: str) -> None:
        for line in text.split("\n"):
            self._line += 1
            if len(line) > self.max_line:  # characters <= bytes: a cheap first test
                raise ValueError(f"line {self._line} is longer than {self.max_line} bytes")
            line = line.strip(" \t\r")
            if not line:
                continue
            if line[0] == "#":
                self._comment(line)
                continue
            match = _SAMPLE.fullmatch(line)
            if match is None:
                raise ValueError(f"line {self._line}: not a sample: {line[:60]!r}")
            name, labels, value, _ = match.groups()
            number = _number(value)
            if number is None:
                raise ValueError(f"line {self._line}: invalid sample value {value[:40]!r}")
            self.scan.samples += 1
            if self.scan.samples > self.max_samples:
                raise ValueError(f"more than {self.max_samples} samples")
            if name in self.wanted:
                kept = self.scan.kept.setdefault(name, [])
                if len(kept) < self.keep:
                    pairs = {k: _unescape(v) for k, v in _PAIRS.findall(labels or "")}
                    kept.append(Kept(pairs, number))

    def _comment(self, line: str) -> None:
        """HELP and TYPE lines must name a metric (TYPE a known type); other comments are
        free text."""
        match = _COMMENT.fullmatch(line)
        if match is None:
            return
        keyword, rest = match.groups()
        grammar = _HELP if keyword == "HELP" else _TYPE
        if rest is None or grammar.fullmatch(rest) is None:
            raise ValueError(f"line {self._line}: malformed {keyword}: {line[:60]!r}")


def count_samples(body: bytes) -> int:
    """Samples in a whole Prometheus text body; ValueError when it is not one."""
    reader = TextReader()
    reader.feed(body)
    return reader.close().samples
