"""Render helm/workfleet offline (embedded Helm, no cluster) and look at what came out."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "workfleet"
CI_DIR = CHART_DIR / "ci"
CI_FILES = sorted(CI_DIR.glob("*-values.yaml"))
NAMESPACE = "workfleet"

Manifest = dict[str, Any]


@cache
def _chart(path: Path) -> helm.Chart:
    # charts are immutable and thread-safe; one load per directory for the whole session
    return helm.Chart.load(path)


def ci_values(name: str) -> dict[str, Any]:
    """The values of ``ci/<name>-values.yaml`` (a fresh copy each call)."""
    loaded = yaml.safe_load((CI_DIR / f"{name}-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return copy.deepcopy(loaded)


def release_for(values_file: Path) -> str:
    """The release name a ci values file is meant for: ``billing-values.yaml`` -> ``billing``."""
    return values_file.name.removesuffix("-values.yaml")


def render_templates(
    values: dict[str, Any],
    release: str = "billing",
    *,
    chart_dir: Path = CHART_DIR,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would print it (NOTES included)."""
    return _chart(chart_dir).render(
        values, name=release, namespace=namespace, is_install=True, revision=1
    )


def render(
    values: dict[str, Any],
    release: str = "billing",
    *,
    chart_dir: Path = CHART_DIR,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """Every Kubernetes object the chart renders for ``values``, parsed."""
    docs: list[Manifest] = []
    rendered = render_templates(values, release, chart_dir=chart_dir, namespace=namespace)
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path} rendered a non-object document: {doc!r}"
            docs.append(doc)
    return docs


def objects(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def _component(doc: Manifest) -> str | None:
    labels = doc.get("metadata", {}).get("labels") or {}
    component: str | None = labels.get("app.kubernetes.io/component")
    return component


def one(docs: list[Manifest], kind: str) -> Manifest:
    """The one object of ``kind`` outside the API component (``api.enabled`` adds a Deployment
    and a Service of its own, which tests/chart/test_api.py checks)."""
    found = [d for d in objects(docs, kind) if _component(d) != "api"]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def worker_container(docs: list[Manifest]) -> Manifest:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    container: Manifest = containers[0]
    return container


def keda_query(docs: list[Manifest]) -> str:
    """The SQL of the ScaledObject's postgresql trigger."""
    triggers = one(docs, "ScaledObject")["spec"]["triggers"]
    assert len(triggers) == 1 and triggers[0]["type"] == "postgresql"
    query = triggers[0]["metadata"]["query"]
    assert isinstance(query, str)
    return query
