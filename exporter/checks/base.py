"""What every check is: a name, its settings, and one run that returns a CheckOutput."""

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
        self.gate = BlockingGate(self.name)

    @property
    def settings(self) -> CheckSettings:
        return self.config.check(self.name)

    async def run(self) -> CheckOutput:
        """One run. The host is read in a thread; the event loop never blocks on it."""
        return await self.gate.run(self.collect)

    @abstractmethod
    def collect(self) -> CheckOutput:
        """Read the host and build the output. Runs in a thread; may block."""
