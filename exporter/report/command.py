"""`kubev-node-exporter check`: every enabled check once, the report, an exit code."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, TextIO

from exporter.checks.base import Check
from exporter.config import Config
from exporter.report import model
from exporter.report.text import render_text
from exporter.runtime import Runtime, Snapshot


class Progress:
    """One line on stderr, rewritten as checks finish; only on a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.done: list[str] = []
        self.enabled = stream.isatty()

    def start(self) -> None:
        if self.enabled:
            self.stream.write(
                f"\rchecking 0/{self.total}: slow checks (fsync probe, port "
                "sweep) take a few seconds"
            )
            self.stream.flush()

    def finished(self, name: str) -> None:
        self.done.append(name)
        if self.enabled:
            self.stream.write(
                f"\r\033[Kchecking {len(self.done)}/{self.total}: {', '.join(self.done)}"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


async def run_all(runtime: Runtime, progress: Progress) -> Snapshot:
    async def one(check: Check[Any]) -> None:
        await runtime.run_once(check)
        progress.finished(check.name)

    progress.start()
    try:
        await asyncio.gather(*(one(c) for c in runtime.checks))
    finally:
        progress.close()
    return runtime.snapshot


def run(config: Config, checks: list[Check[Any]], output: str) -> int:
    runtime = Runtime(config, checks)
    snapshot = asyncio.run(run_all(runtime, Progress(sys.stderr, len(checks))))
    report = model.build(snapshot, config)
    if output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(render_text(report, colour))
    sys.stdout.flush()
    return report.exit_code
