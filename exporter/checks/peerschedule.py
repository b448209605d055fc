"""Which (peer, port) pairs a cycle probes, and the latest result of every pair.

A node must not probe every port of every peer every cycle: on a 1,000-node cluster that
is some 5,000 connects per node per cycle, and every node's ports would draw a thousand
connects per cycle. A cycle probes at most `budget` pairs:

1. pairs that failed, least recently probed first, up to half the budget: a fixed
   firewall clears within one cycle (while at most half the budget is failing);
2. then the next pairs of a rotation over all pairs, in an order of this node's own (a
   keyed hash of this node's address and the pair), continuing where the last cycle
   stopped.

So every pair is probed at least once every ceil(pairs / rotation share) cycles, where the
rotation share is the budget less the failing pairs re-probed (at least half the budget):
`full_round_cycles()`. A pair new since the last round (a peer that joined) may wait one
round more. Each node's order differs, so the nodes of a cluster do not all probe the same
peer at once, and a peer's ports are spread over the round, not probed back to back (an
ICMP error is rate limited per destination: the kernel's icmp_ratelimit).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from exporter.checks.peerprobe import FAILING, Result


class Pair(NamedTuple):
    """A tuple: thousands are hashed and compared every run, at C speed."""

    peer: str
    component: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Record:
    result: Result
    #: time.monotonic() of the probe
    at: float


class Rotation:
    def __init__(self, salt: str) -> None:
        self.salt = salt.encode()
        self.records: dict[Pair, Record] = {}
        self._keys: dict[Pair, bytes] = {}
        self._cursor = b""
        self._planned: list[Pair] = []

    def key(self, pair: Pair) -> bytes:
        found = self._keys.get(pair)
        if found is None:
            text = f"{pair.peer}|{pair.component}|{pair.port}|{pair.protocol}".encode()
            found = hashlib.blake2b(text, key=self.salt[:64], digest_size=8).digest()
            self._keys[pair] = found
        return found

    def forget_others(self, current: Iterable[Pair]) -> None:
        """Drop the records and keys of pairs that are gone (a peer left, a port no longer
        served): their series go with them."""
        keep = set(current)
        for pair in [p for p in self.records if p not in keep]:
            del self.records[pair]
        for pair in [p for p in self._keys if p not in keep]:
            del self._keys[pair]

    def failing(self) -> list[Pair]:
        return sorted(
            (p for p, r in self.records.items() if r.result.state in FAILING),
            key=lambda p: self.records[p].at,
        )

    def plan(self, pairs: Sequence[Pair], budget: int) -> list[Pair]:
        """The pairs to probe this cycle (at most `budget`), failing ones first."""
        self.forget_others(pairs)
        if len(pairs) <= budget:
            self._planned = []
            return list(pairs)
        recheck = self.failing()[: max(1, budget // 2)] if budget > 1 else []
        chosen = set(recheck)
        share = budget - len(recheck)
        ordered = sorted((p for p in pairs if p not in chosen), key=self.key)
        keys = [self._keys[p] for p in ordered]
        start = bisect.bisect_right(keys, self._cursor)  # the first pair after the cursor
        if start == len(ordered):
            start = 0  # wrap around
        taken = [ordered[(start + i) % len(ordered)] for i in range(min(share, len(ordered)))]
        self._planned = taken
        return recheck + taken

    def advance(self, done: Iterable[Pair]) -> None:
        """Move the rotation past the planned pairs that were probed: those left out by
        the cycle's deadline come first next cycle."""
        probed = set(done)
        last = None
        for pair in self._planned:
            if pair not in probed:
                break
            last = pair
        if last is not None:
            self._cursor = self.key(last)
        self._planned = []

    def full_round_cycles(self, pairs: int, budget: int) -> int:
        """Cycles in which every pair is probed at least once, at the current failures."""
        if pairs <= budget:
            return 1
        failing = sum(1 for r in self.records.values() if r.result.state in FAILING)
        share = budget - min(failing, max(1, budget // 2))
        return math.ceil(pairs / max(1, share))

    def record(self, pair: Pair, result: Result, at: float) -> None:
        self.records[pair] = Record(result, at)
