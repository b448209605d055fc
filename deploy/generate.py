"""Writes the deploy files made from other sources: the Helm chart's generated files
(deploy/chart.py) and the kustomize manifests rendered from the chart (deploy/kustomize.py).

    python -m deploy.generate write    # part of make generate
    python -m deploy.generate check    # fails when a committed file is stale

Every rendered variant must pass the rules a schema does not see (deploy/policy.py):
a template change that breaks one fails here, before anything is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deploy import chart, kustomize, policy, render
from tools.generated import sync


class PolicyError(Exception):
    pass


def files() -> dict[Path, str]:
    out = chart.files()
    with render.chart() as loaded:
        for variant in (kustomize.BASE, *kustomize.VARIANTS):
            found = policy.violations(loaded.render(variant.values).objects)
            if found:
                raise PolicyError(f"{variant.path}: " + "; ".join(found))
        out.update(kustomize.files(loaded))
    return out


def main(argv: list[str]) -> int:
    owned = chart.owned() + kustomize.owned()
    return sync(files(), argv, "deploy files", owned=owned)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
