"""What every check is: a name, its settings, and one async run that returns a CheckOutput."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from exporter.blocking import BlockingGate
from exporter.config import CheckSettings, Config
from exporter.model import CheckOutput
from exporter.paths import Paths


class Check(ABC):
    name: ClassVar[str]

    def __init__(self, config: Config, paths: Paths) -> None:
        self.config = config
        self.paths = paths
        #: every blocking call of the check goes through here (see blocking.py)
        self.gate = BlockingGate(self.name)

    @property
    def settings(self) -> CheckSettings:
        return self.config.check(self.name)

    @abstractmethod
    async def run(self) -> CheckOutput:
        """One run. Must not block the event loop."""


class BlockingCheck(Check):
    """A check whose whole run is blocking I/O (files, ioctl, netlink): run in a thread."""

    async def run(self) -> CheckOutput:
        return await self.gate.run(self.collect)

    @abstractmethod
    def collect(self) -> CheckOutput:
        """Read the host and build the output. Runs in a thread; may block."""
