"""Renders every dashboards/*.dashboard.py to the JSON beside it.

python -m dashboards.generate write|check
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from grafanalib._gen import DashboardEncoder

from tools.generated import sync

HERE = Path(__file__).resolve().parent


def sources() -> list[Path]:
    return sorted(HERE.glob("*.dashboard.py"))


def render(source: Path) -> str:
    spec = importlib.util.spec_from_file_location(source.stem.replace(".", "_"), source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads(json.dumps(module.dashboard().to_json_data(), cls=DashboardEncoder))
    return json.dumps(modernize(data), sort_keys=True, indent=2) + "\n"


def modernize(node: Any) -> Any:
    """What grafanalib 0.7 writes the old way, in today's form: data source references as
    objects, and the base threshold step from null (grafanalib writes the string "null")."""
    if isinstance(node, dict):
        out = {k: modernize(v) for k, v in node.items()}
        if out.get("datasource") == "${datasource}":
            out["datasource"] = {"type": "prometheus", "uid": "${datasource}"}
        if "color" in out and out.get("value") == "null":
            out = {"color": out["color"], "value": None}
        return out
    if isinstance(node, list):
        return [modernize(v) for v in node]
    return node


def outputs() -> dict[Path, str]:
    return {
        src.with_name(src.name.replace(".dashboard.py", ".json")): render(src) for src in sources()
    }


def main(argv: list[str]) -> int:
    # every JSON file here is generated from a source beside it: one without is stale
    return sync(outputs(), argv, "dashboards", owned=HERE.glob("*.json"))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
