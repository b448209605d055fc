"""Run blocking work (ioctl, file reads that can hang, fsync, netlink) off the event loop.

Each call gets a daemon thread rather than a pool worker: a read that hangs forever (a
FIFO, a wedged NFS mount, a stuck driver) can then never block shutdown or starve other
checks. A gate per check refuses to start new work while an earlier call is still stuck,
so a hung file costs one thread, not one per cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from exporter.model import CheckError

T = TypeVar("T")

#: nice value of the threads doing check and encoding work: when a core is contended the
#: kernel runs the thread serving scrapes first
BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Lower the calling thread's CPU priority by BACKGROUND_NICE from what it inherited
    (Linux: setpriority takes a thread id). Always permitted: lowering needs no privilege."""
    with contextlib.suppress(OSError):
        thread = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + BACKGROUND_NICE))


class BlockingGate:
    def __init__(self, name: str, *, timed: bool = False) -> None:
        """`timed`: the work measures a latency (fsync, connect, name lookup), so it runs
        at the priority of the thread that started it: at nice 10, CPU contention on a busy
        node would inflate what it measures. Other work runs at BACKGROUND_NICE."""
        self.name = name
        self.timed = timed
        self._busy = False
        self._busy_in = ""

    async def run(self, fn: Callable[[], T]) -> T:
        if self._busy:
            # no elapsed time in the text: the error must stay the same while the
            # block lasts, so it is logged once
            raise CheckError(
                f"an earlier run is still blocked in {self._busy_in}; not starting another"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def deliver(ok: bool, value: object) -> None:
            self._busy = False
            if future.done():
                return
            if ok:
                future.set_result(value)  # type: ignore[arg-type]
            else:
                assert isinstance(value, BaseException)
                future.set_exception(value)

        def work() -> None:
            if not self.timed:
                lower_priority()
            try:
                result: object = fn()
                ok = True
            except BaseException as e:  # handed to the awaiting coroutine
                result, ok = e, False
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(deliver, ok, result)

        self._busy = True
        self._busy_in = getattr(fn, "__qualname__", repr(fn))
        threading.Thread(target=work, name=f"check-{self.name}", daemon=True).start()
        return await future
