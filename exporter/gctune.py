"""The cyclic garbage collector, tuned for a server whose scrapes must not wait.

A full collection holds the interpreter lock while it walks every tracked object. After
start-up most of those are modules, classes and the catalog (pyroute2's message classes
alone are tens of thousands), so a collection that a check's burst of allocations sets off
(a netlink dump of 256 links) stalled the event loop for 15-35 ms. Two settings remove
that, measured in docs/performance.md:

- gc.freeze() once every check has run once: what exists then lives as long as the
  process, and later collections no longer walk it;
- a young-generation threshold of 10,000 allocations instead of 700: fewer collections
  during a check's burst; what is garbage is still collected, a little later.
"""

from __future__ import annotations

import gc

from exporter.runtime import Runtime, Snapshot

GEN0_THRESHOLD = 10_000


def tune(runtime: Runtime) -> None:
    """Raise the young threshold now; freeze the heap after the first full round."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    frozen = False

    def after_first_round(snapshot: Snapshot) -> None:
        nonlocal frozen
        if snapshot.ready and not frozen:
            frozen = True
            gc.collect()
            gc.freeze()

    runtime.subscribe(after_first_round)
