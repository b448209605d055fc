"""The alert catalog's prose, as JSON by alert name, in this world or in one where every
number of exporter/spec.py is different.

    python -m tests.pack.other_spec same
    python -m tests.pack.other_spec other

A process of its own because the catalog (and the checks, whose hints it quotes) read
spec.py when they are imported: the numbers change before anything imports them.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from exporter import spec

#: every number of the spec is multiplied by this: 7 turns none of the spec's numbers into
#: another of them (8 GiB -> 56 GiB, 10% -> 70%, 1500 -> 10500)
FACTOR = 7
#: ports move by this much: no shifted port lands on another port the prose cites
PORT_SHIFT = 7
#: units, not thresholds: scaling them would only change how a value is written
UNITS = frozenset({"GIB", "MBPS"})


def _scaled(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value * FACTOR
    if isinstance(value, tuple) and all(isinstance(v, int | float) for v in value):
        return tuple(v * FACTOR for v in value)
    return value  # tables (PROFILES, PORTS) are rebuilt below


def _other_requirement(req: spec.Requirement) -> spec.Requirement:
    if req.unit == "bool":
        return req  # 1 means met: not a figure
    return dataclasses.replace(
        req,
        thresholds={level: value * FACTOR for level, value in req.thresholds.items()},
        slack=spec.MEMORY_SLACK if req.slack else 0.0,
    )


def change_every_number() -> None:
    for name, value in list(vars(spec).items()):
        if name.isupper() and name not in UNITS:
            setattr(spec, name, _scaled(value))
    spec.PROFILES = {
        profile: {name: _other_requirement(req) for name, req in reqs.items()}
        for profile, reqs in spec.PROFILES.items()
    }
    spec.CLUSTER_REQUIREMENTS = {
        name: req
        if req.unit == "bool"
        else dataclasses.replace(req, threshold=req.threshold * FACTOR)
        for name, req in spec.CLUSTER_REQUIREMENTS.items()
    }
    spec.PORTS = tuple(
        dataclasses.replace(row, first=row.first + PORT_SHIFT, last=row.last + PORT_SHIFT)
        for row in spec.PORTS
    )
    # not the spec's, but a number the prose cites all the same
    from exporter import web

    web.DEFAULT_PORT += PORT_SHIFT


def main(argv: list[str]) -> int:
    if argv != ["same"]:
        if argv != ["other"]:
            print("usage: same | other", file=sys.stderr)
            return 2
        change_every_number()
    from alerts.catalog import ALERTS

    print(json.dumps({alert.name: list(alert.prose()) for alert in ALERTS}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
