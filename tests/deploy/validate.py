"""Offline checks of rendered objects: the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: an unknown field fails), the Prometheus Operator's CRD schemas (cloudcoil's models,
generated from them), promtool for the rule groups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

#: the oldest version the chart supports (Chart.yaml kubeVersion) and a current one
KUBERNETES_VERSIONS = ("1.31.0", "1.33.0")
OPERATOR_API = "monitoring.coreos.com/v1"
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def kubernetes_strict(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    core = [o for o in objects if o["apiVersion"] != OPERATOR_API]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(core))
    for version in KUBERNETES_VERSIONS:
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("kubernetes-validate")),
                "--strict",
                "-k",
                version,
                str(rendered),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count(" passed for resource ") == len(core), done.stdout


def operator_models(objects: list[dict[str, Any]]) -> int:
    """Each Operator object against its CRD model, round-tripped: a field the schema does
    not know would be dropped and the comparison fail. Returns how many were checked."""
    from cloudcoil.models.prometheus_operator import v1

    checked = 0
    for obj in objects:
        if obj["apiVersion"] != OPERATOR_API:
            continue
        model = getattr(v1, obj["kind"]).model_validate(obj)
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj
        checked += 1
    return checked


def promtool_rules(rule: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def kustomize(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]
