"""What every check is and declares, in its own module:

- `name`, and the report `area` (key and title) its verdict rows appear under;
- `settings_type` and `defaults`: its settings (exporter/settings.py), under
  `checks.<name>` in the config file;
- `metrics`: the MetricGroup of everything it emits;
- `rows`: the requirements it observes (exporter/spec.py holds their thresholds), each with
  the alert whose runbook says more and a one-line hint for when it is not met;
- `detail()`: what exactly is wrong, for a requirement's report row;
- one async `run()` that returns a CheckOutput.

The registry (exporter/checks/__init__.py) lists the checks; the config schema, the metric
catalog, the report's areas and the alert catalog's hints are derived from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast

from exporter.blocking import BlockingGate
from exporter.metrics import MetricGroup
from exporter.model import CheckOutput, OutputBuilder, Sample
from exporter.paths import Paths
from exporter.settings import CheckSettings
from exporter.spec import Req
from exporter.verdicts import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterator

    from exporter.config import Config
    from exporter.metrics import MetricDef

S = TypeVar("S", bound=CheckSettings)


@dataclass(frozen=True)
class RequirementRow:
    """How a requirement's verdict reads: the alert whose runbook says more, and one line
    on what to do when the requirement is not met (the runbook's Mitigation opens with it)."""

    requirement: Req
    alert: str
    hint: str


class Check(ABC, Generic[S]):
    name: ClassVar[str]
    #: the report area its rows appear under: (key, title)
    area: ClassVar[tuple[str, str]]
    settings_type: ClassVar[type[CheckSettings]]
    defaults: ClassVar[CheckSettings]
    metrics: ClassVar[MetricGroup]
    rows: ClassVar[tuple[RequirementRow, ...]] = ()

    def __init__(self, config: Config, paths: Paths) -> None:
        self.config = config
        self.paths = paths
        #: every blocking call of the check goes through here (see blocking.py)
        self.gate = BlockingGate(self.name)

    @property
    def settings(self) -> S:
        return cast(S, self.config.check(self.name))

    @classmethod
    def requirements(cls) -> frozenset[Req]:
        return frozenset(row.requirement for row in cls.rows)

    @classmethod
    def output(cls) -> OutputBuilder:
        """A builder that takes only this check's metrics and requirements."""
        return OutputBuilder(cls.name, cls.requirements())

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        """What exactly is wrong, for the requirement's report row. By default the first
        note the check tagged with the requirement, when the verdict is not PASS."""
        if outcome is not Outcome.PASS:
            related = output.notes_about(requirement)
            if related:
                return related[0]
        return ""

    @abstractmethod
    async def run(self) -> CheckOutput:
        """One run. Must not block the event loop."""


def samples_of(output: CheckOutput, metric: MetricDef) -> Iterator[Sample]:
    """The plain samples of one metric in an output (for detail texts)."""
    return (s for s in output.samples if isinstance(s, Sample) and s.metric is metric)


class BlockingCheck(Check[S]):
    """A check whose whole run is blocking I/O (files, ioctl, netlink): run in a thread."""

    async def run(self) -> CheckOutput:
        return await self.gate.run(self.collect)

    @abstractmethod
    def collect(self) -> CheckOutput:
        """Read the host and build the output. Runs in a thread; may block."""
