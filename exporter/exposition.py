"""Snapshot -> encoded exposition, encoded once per snapshot generation and format.

A scrape between two check results costs a dictionary lookup; the encoding work happens
once, in a thread, right after a result arrives (see Exposition.warm()).
"""

from __future__ import annotations

import logging
import platform
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder

from exporter import __version__, metrics
from exporter.blocking import lower_priority
from exporter.checks import CATALOG, OBSERVED_BY
from exporter.config import Config
from exporter.encoder import assemble, sample_lines
from exporter.model import CheckOutput, HistogramSample, Sample
from exporter.runtime import Snapshot
from exporter.spec import Profile, Req, Role, requirements

log = logging.getLogger("exporter.exposition")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True)
class Identity:
    node: str
    role: Role
    profile: Profile

    @classmethod
    def of(cls, config: Config) -> Identity:
        return cls(node=config.node(), role=config.role, profile=config.profile)


def unjudged(snapshot: Snapshot) -> list[Req]:
    """The requirements the node's report reads ERROR for (CheckState.unreadable)."""
    return [
        req
        for req, check in OBSERVED_BY.items()
        if (state := snapshot.states.get(check.name)) is not None
        and state.unreadable(req) is not None
    ]


def self_samples(snapshot: Snapshot, identity: Identity) -> list[Sample]:
    """The exporter's own metrics and the verdicts, derived from the snapshot."""
    s: list[Sample] = [
        Sample(metrics.BUILD_INFO, (__version__, platform.python_version()), 1),
        Sample(metrics.NODE_INFO, (identity.node, identity.role.value, identity.profile.value), 1),
    ]
    for name, state in snapshot.states.items():
        s.append(Sample(metrics.CHECK_SUCCESS, (name,), float(state.success)))
        if state.duration is not None:
            s.append(Sample(metrics.CHECK_DURATION, (name,), state.duration))
        if state.last_success is not None:
            s.append(Sample(metrics.CHECK_LAST_SUCCESS, (name,), state.last_success))
        for result, count in state.runs.items():
            s.append(Sample(metrics.CHECK_RUNS, (name, result), count))
    for v in snapshot.verdicts:
        s.append(Sample(metrics.REQUIREMENT_MET, (v.requirement.name.value, v.level.value), v.met))
    for unjudged_req in unjudged(snapshot):
        s.append(Sample(metrics.REQUIREMENT_ERROR, (unjudged_req.value,), 1))
    observed = {v.requirement.name: v for v in snapshot.verdicts}
    for req in requirements(identity.profile).values():
        for level, threshold in req.thresholds.items():
            s.append(
                Sample(
                    metrics.REQUIREMENT_THRESHOLD,
                    (req.name.value, level.value, req.unit),
                    threshold,
                )
            )
        if req.name in observed:
            s.append(
                Sample(
                    metrics.REQUIREMENT_OBSERVED,
                    (req.name.value, req.unit),
                    observed[req.name].observed,
                )
            )
    return s


ExtraSamples = Callable[[], Sequence[Sample | HistogramSample]]


def wants_openmetrics(accept: str) -> bool:
    """Content negotiation, once per scrape: OpenMetrics when the client asks for it."""
    return choose_encoder(accept)[1].startswith("application/openmetrics")


class _OutputLines:
    """Each check's encoded lines, kept until the check publishes a new output: a new
    result re-encodes that check's samples only, never the other checks'. Two outputs per
    check are kept, so that a scrape of the previous snapshot while the next one is encoded
    does not evict it."""

    KEEP = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[tuple[CheckOutput, dict[bool, dict[str, str]]]]] = {}

    def _find(self, check: str, output: CheckOutput) -> dict[bool, dict[str, str]] | None:
        for cached, formats in self._entries.get(check, ()):
            if cached is output:
                return formats
        return None

    def lines(self, check: str, output: CheckOutput, openmetrics: bool) -> dict[str, str]:
        with self._lock:
            formats = self._find(check, output)
            if formats is not None and openmetrics in formats:
                return formats[openmetrics]
        # encoded outside the lock: a scrape encoding a format nobody asked for before
        # never waits behind the encoder thread (at worst both encode the same lines)
        encoded = sample_lines(output.samples, openmetrics)
        with self._lock:
            formats = self._find(check, output)
            if formats is None:
                formats = {}
                kept = self._entries.setdefault(check, [])
                kept.insert(0, (output, formats))
                del kept[self.KEEP :]
            formats[openmetrics] = encoded
        return encoded


class _Encoded:
    """Every encoding of one snapshot generation, filled as formats are asked for."""

    def __init__(
        self,
        snapshot: Snapshot,
        identity: Identity,
        cache: _OutputLines,
        extra: ExtraSamples | None = None,
    ) -> None:
        self.generation = snapshot.generation
        #: every enabled check's first result is in this encoding
        self.ready = snapshot.ready
        self._own = [*self_samples(snapshot, identity), *(extra() if extra else ())]
        self._outputs = [
            (name, state.output)
            for name, state in snapshot.states.items()
            if state.output is not None
        ]
        self._cache = cache
        self._bodies: dict[tuple[bool, bool], bytes] = {}
        self._lock = threading.Lock()

    def body(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, str]:
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        with self._lock:
            body = self._bodies.get((openmetrics, gzipped))
            if body is None:
                plain = self._bodies.get((openmetrics, False))
                if plain is None:
                    groups = [sample_lines(self._own, openmetrics)]
                    for name, output in self._outputs:
                        groups.append(self._cache.lines(name, output, openmetrics))
                    plain = assemble(CATALOG, groups, openmetrics)
                    self._bodies[(openmetrics, False)] = plain
                # zlib lets go of the interpreter lock while it compresses
                body = zlib.compress(plain, 6, wbits=31) if gzipped else plain
                self._bodies[(openmetrics, gzipped)] = body
        return body, content_type


class Exposition:
    """Encodes each new snapshot in a thread of its own, so a scrape never waits for an
    encoding: until the new one is ready (well under a millisecond for a compliant node, a
    few ms when a check with 1,000 ports re-ran), scrapes get the previous snapshot's bytes.
    Only the check that published is re-encoded; the other checks' lines come from cache."""

    def __init__(self, identity: Identity, extra: ExtraSamples | None = None) -> None:
        self.identity = identity
        #: samples that live outside the snapshot (event-loop lag), read at encoding time
        self.extra = extra
        self._ready: _Encoded | None = None
        self._lines = _OutputLines()
        self._latest: Snapshot | None = None
        self._encoding = False
        self._lock = threading.Lock()
        #: formats to encode ahead; Prometheus's own until a scrape asks for another
        self._wanted: dict[tuple[bool, bool], None] = {(True, True): None}

    def warm(self, snapshot: Snapshot) -> None:
        """A new snapshot: encode what scrapers ask for most, off the event loop."""
        with self._lock:
            self._latest = snapshot
            if self._encoding:
                return  # the running encoder picks the newest snapshot up when done
            self._encoding = True
        threading.Thread(target=self._encode_latest, name="exposition", daemon=True).start()

    def _encode_latest(self) -> None:
        lower_priority()
        try:
            while True:
                with self._lock:
                    snapshot = self._latest
                assert snapshot is not None
                encoded = _Encoded(snapshot, self.identity, self._lines, self.extra)
                for openmetrics, gzipped in list(self._wanted):
                    encoded.body(openmetrics, gzipped)
                with self._lock:
                    self._ready = encoded
                    if self._latest is snapshot:
                        self._encoding = False
                        return
        except Exception:  # a bug; scrapes then encode themselves and show the error
            log.exception("encoding the exposition failed")
            with self._lock:
                self._encoding = False

    def render(self, snapshot: Snapshot, accept: str, gzipped: bool) -> tuple[bytes, str]:
        """The body and content type for this Accept header."""
        # remember the format (at most four: OpenMetrics or text, gzip or not) so that the
        # next snapshot is encoded ahead in it, and only in what scrapers ask for
        openmetrics = wants_openmetrics(accept)
        self._wanted[(openmetrics, gzipped)] = None
        return self._serving(snapshot).body(openmetrics, gzipped)

    def serves_ready(self, snapshot: Snapshot) -> bool:
        """True once what a scrape gets now holds every enabled check's first result: the
        snapshot may be ready while the encoder still works on it, and until it is done
        scrapes get the previous encoding."""
        return self._serving(snapshot).ready

    def _serving(self, snapshot: Snapshot) -> _Encoded:
        """The encoding a scrape gets now: the latest one encoded ahead, while the encoder
        is busy with a newer snapshot; otherwise this snapshot's."""
        with self._lock:
            ready = self._ready
            busy = self._encoding
        if ready is None or (ready.generation != snapshot.generation and not busy):
            # nothing encoded yet, or a snapshot nobody warmed: encode it here, once
            ready = _Encoded(snapshot, self.identity, self._lines, self.extra)
            with self._lock:
                if self._ready is None or self._ready.generation < ready.generation:
                    self._ready = ready
        return ready
