"""Every generated file of the repository, written or checked in one go.

    python -m tools.generate write    # make generate
    python -m tools.generate check    # make check-generated: exit 1 naming stale files

Order matters: the deploy manifests embed the rule file and the dashboards; the mixin
copies the dashboards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from alerts import generate as alerts
from dashboards import generate as dashboards
from deploy import generate as deploy
from tests.fixtures import build as fixtures
from tools import docs, mixin

GENERATORS: tuple[tuple[str, Callable[[list[str]], int]], ...] = (
    ("docs", docs.main),
    ("fixtures", fixtures.main),
    ("alerts", alerts.main),
    ("dashboards", dashboards.main),
    ("deploy", deploy.main),
    ("mixin", mixin.main),
)


def main(argv: list[str]) -> int:
    worst = 0
    for _, run in GENERATORS:
        worst = max(worst, run(argv))
        if worst == 2:  # bad usage: the same for every generator
            break
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
