"""Render the Helm chart with Helm's own engine (helm-python-sdk: Helm v4's Go SDK, no
helm binary), from a copy assembled in a temporary directory: the hand-written templates
plus the generated files as `make generate` would write them. So the kustomize manifests
and the tests see the chart as it will be, even before its generated files are written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from deploy.chart import CHART, NAME, files

NAMESPACE = "kubev-monitoring"
#: helm install kubev-node-exporter ...: the release name that gives the plain names
RELEASE = NAME
#: labels that say Helm manages an object: not so for the kustomize copies
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    #: template path (kubev-node-exporter/templates/daemonset.yaml) -> its objects
    templates: dict[str, list[Obj]]
    notes: str

    @property
    def objects(self) -> list[Obj]:
        return [o for objs in self.templates.values() for o in objs]


@contextmanager
def assembled() -> Iterator[Path]:
    """The chart directory as `make generate` leaves it, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="kubev-chart-") as tmp:
        target = Path(tmp) / NAME
        shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("files", *_generated_names()))
        for path, text in files().items():
            dest = target / path.relative_to(CHART)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
        yield target


def _generated_names() -> list[str]:
    return [p.name for p in files() if p.parent == CHART]


class Chart:
    """The assembled chart, loaded once, rendered as often as asked."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._chart = helm.Chart.load(str(directory))

    def close(self) -> None:
        self._chart.close()

    def render(
        self,
        values: Mapping[str, Any] | None = None,
        name: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> Rendered:
        """Raises helm.HelmValuesError when the values break the schema, HelmRenderError
        when a template fails."""
        out = self._chart.render(dict(values or {}), name=name, namespace=namespace)
        templates: dict[str, list[Obj]] = {}
        notes = ""
        for path, text in sorted(out.items()):
            if path.endswith("NOTES.txt"):
                notes = text
                continue
            objects = [d for d in yaml.safe_load_all(text) if d]
            if objects:
                templates[path] = objects
        return Rendered(templates, notes)

    def lint(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = helm.lint(str(self.directory), dict(values or {}))
        return result


@contextmanager
def chart() -> Iterator[Chart]:
    with assembled() as directory:
        loaded = Chart(directory)
        try:
            yield loaded
        finally:
            loaded.close()


def without_helm_labels(obj: Obj) -> Obj:
    """A copy without the labels that say Helm manages it (object and pod template)."""
    copy: Obj = yaml.safe_load(yaml.safe_dump(obj))
    holders = [copy.get("metadata", {})]
    template = copy.get("spec", {}).get("template")
    if isinstance(template, dict):
        holders.append(template.get("metadata", {}))
    for meta in holders:
        labels = meta.get("labels")
        if isinstance(labels, dict):
            for key in HELM_LABELS:
                labels.pop(key, None)
    return copy


def identity(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]
