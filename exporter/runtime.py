"""The scheduler: every check in its own loop, the latest results in one immutable snapshot.

Scrapes read the snapshot and never wait for a check. Each loop bounds its check by the
check's own timeout, so a hung probe costs that check one timeout and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from exporter.checks.base import Check
from exporter.config import Config
from exporter.model import CheckError, CheckOutput, Note
from exporter.spec import Req, requirements
from exporter.verdicts import Verdict, evaluate

log = logging.getLogger("exporter.runtime")


@dataclass(frozen=True)
class CheckState:
    name: str
    runs: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"success": 0, "failure": 0, "timeout": 0})
    )
    success: bool = False
    error: str | None = None
    duration: float | None = None
    last_success: float | None = None
    #: what is served: the last run's output, or the last good one when keep_last_good is set
    output: CheckOutput | None = None

    @property
    def has_run(self) -> bool:
        return sum(self.runs.values()) > 0

    def unreadable(self, requirement: Req) -> str | None:
        """Why the requirement cannot be judged (its report row reads ERROR, its
        kubev_requirement_error is 1): the run produced nothing, or the item the requirement
        needs could not be read. None when it can be judged, or nothing has run yet."""
        if not self.has_run:
            return None
        if not self.success and self.output is None:
            return self.error or "the check failed"
        errors = self.output.errors_about(requirement) if self.output is not None else []
        return "; ".join(errors) or None


@dataclass(frozen=True)
class Snapshot:
    generation: int
    states: Mapping[str, CheckState]
    verdicts: tuple[Verdict, ...]
    updated: float

    @property
    def ready(self) -> bool:
        return all(state.has_run for state in self.states.values())


class Runtime:
    def __init__(self, config: Config, checks: Sequence[Check[Any]]) -> None:
        self.config = config
        self.checks = list(checks)
        self._snapshot = Snapshot(
            generation=0,
            states=MappingProxyType({c.name: CheckState(c.name) for c in self.checks}),
            verdicts=(),
            updated=time.time(),
        )
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._notes: dict[str, frozenset[Note]] = {}

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Called on the event loop after every change of the snapshot."""
        self._listeners.append(listener)

    def start(self) -> None:
        for index, check in enumerate(self.checks):
            # every check runs at once at start (readiness), then each keeps its own phase
            # in its interval, so that the checks' threads seldom run at the same time; a
            # check never runs again sooner than its interval
            phase = check.settings.interval * index / len(self.checks)
            self._tasks.append(
                asyncio.create_task(self._loop(check, phase), name=f"check-{check.name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def run_once(self, check: Check[Any]) -> CheckState:
        """Run one check now, bounded by its timeout, and publish the result."""
        settings = check.settings
        started = time.monotonic()
        output: CheckOutput | None = None
        result = "failure"
        deadline = asyncio.timeout(settings.timeout)
        try:
            async with deadline:
                output = await check.run()
            result, error = "success", None
            if output.errors:  # some items failed; what was read is still served
                result, error = "failure", "; ".join(e.text for e in output.errors)
        except TimeoutError as e:
            if deadline.expired():
                result, error = "timeout", f"timed out after {settings.timeout:g}s"
            else:  # ETIMEDOUT from inside the check (a socket, netlink): the check failed
                error = f"{type(e).__name__}: {e}"
        except CheckError as e:
            error = str(e)
        except Exception as e:  # a bug in a check must not take the exporter down
            error = f"unexpected {type(e).__name__}: {e}"
            if error != self._snapshot.states[check.name].error:  # a traceback once per change
                log.exception("check raised", extra={"kv": {"check": check.name}})
        duration = time.monotonic() - started
        return self._publish(check, output, result, error, duration)

    async def _loop(self, check: Check[Any], phase: float = 0.0) -> None:
        interval = check.settings.interval
        next_run = time.monotonic() + phase  # runs now, then at start + phase + k * interval
        while True:
            try:
                await self.run_once(check)
            except Exception:  # never let one bad cycle end the loop for good
                log.exception("check cycle failed", extra={"kv": {"check": check.name}})
            next_run += interval
            now = time.monotonic()
            if next_run < now:  # the run overran its slot: skip missed ticks, keep the phase
                next_run += interval * ((now - next_run) // interval + 1)
            await asyncio.sleep(next_run - now)

    def _publish(
        self,
        check: Check[Any],
        output: CheckOutput | None,
        result: str,
        error: str | None,
        duration: float,
    ) -> CheckState:
        old = self._snapshot.states[check.name]
        runs = dict(old.runs)
        runs[result] += 1
        served = output
        failed = output is None or bool(output.errors)
        if failed and check.settings.keep_last_good and old.output is not None:
            served = old.output  # the last output kept whole, not the partial one
        success = result == "success"
        state = replace(
            old,
            runs=MappingProxyType(runs),
            success=success,
            error=error,
            duration=duration,
            last_success=time.time() if success else old.last_success,
            output=served,
        )
        self._log_change(old, state)
        states = dict(self._snapshot.states)
        states[check.name] = state
        observations = [
            obs for s in states.values() if s.output is not None for obs in s.output.observations
        ]
        self._snapshot = Snapshot(
            generation=self._snapshot.generation + 1,
            states=MappingProxyType(states),
            verdicts=tuple(evaluate(requirements(self.config.profile), observations)),
            updated=time.time(),
        )
        for listener in self._listeners:
            try:
                listener(self._snapshot)
            except Exception:
                log.exception("snapshot listener failed")
        return state

    def _log_change(self, old: CheckState, new: CheckState) -> None:
        """Log failures and notes once per change of state, never every cycle."""
        kv = {"check": new.name}
        if new.error is not None and new.error != old.error:
            log.warning("check failed", extra={"kv": {**kv, "err": new.error}})
        elif new.success and not old.success and old.has_run:
            log.info("check recovered", extra={"kv": kv})
        notes = frozenset(new.output.notes) if new.output else frozenset()
        if new.output is not None:
            for note in sorted(
                notes - self._notes.get(new.name, frozenset()), key=lambda n: n.text
            ):
                log.info(note.text, extra={"kv": kv})
            self._notes[new.name] = notes
