"""Dashboards and alert rules: committed files match the generator; promtool accepts them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards import generate

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
METRIC = re.compile(r"\b(workfleet_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=\s*[{\[)])")
DOC_ROW = re.compile(r"^\| `(workfleet_\w+)` \|", re.MULTILINE)
ALERTS = {
    "WorkfleetRunsFailing",
    "WorkfleetOldestPendingTooOld",
    "WorkfleetPendingNotClaimed",
    "WorkfleetListenerDown",
    "WorkfleetLeaseLossSpike",
    "WorkfleetWorkerDown",
}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def _alert_rules() -> list[dict[str, str]]:
    data = yaml.safe_load((DASHBOARDS / "alerts.yaml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = generate.render()
    assert set(rendered) == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"run: python dashboards/generate.py ({name})"
        )
    assert generate.main(["--check"]) == 0, "the chart's copies are stale: run the generator"


def test_overview_has_the_promised_panels_and_variables() -> None:
    data = json.loads(generate.render()["workfleet-overview.json"])
    variables = {v["name"] for v in data["templating"]["list"]}
    assert {"prefix", "type", "datasource"} <= variables
    titles = {p["title"] for p in data["panels"]}
    for wanted in (
        "Throughput by outcome",
        "Run duration",
        "Queue wait",
        "Pending per prefix",
        "Oldest pending per prefix",
        "In flight vs concurrency",
        "Claims and claim errors",
        "Listener",
        "Lease losses",
        "Connection pool saturation",
    ):
        assert wanted in titles
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [e for _, e in generate.expressions(generate.render()["workfleet-overview.json"])]
    assert any("histogram_quantile(0.99" in e for e in exprs)


def test_run_type_dashboard_is_about_one_type() -> None:
    data = json.loads(generate.render()["workfleet-run-type.json"])
    [variable] = [v for v in data["templating"]["list"] if v["name"] == "type"]
    assert variable["multi"] is False
    for _, expr in generate.expressions(generate.render()["workfleet-run-type.json"]):
        if not expr.startswith("label_values"):
            assert 'type="$type"' in expr, expr


def test_every_expression_uses_documented_metrics_only() -> None:
    documented = set(DOC_ROW.findall((ROOT / "docs" / "metrics.md").read_text()))
    exprs = [e for text in generate.render().values() for _, e in generate.expressions(text)]
    exprs += [rule["expr"] for rule in _alert_rules()]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used, "the pattern must find metric names"
    assert used <= documented, used - documented


def test_alert_rules_cover_the_promised_conditions() -> None:
    rules = _alert_rules()
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = _promtool()
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts_test.yaml"]):
        done = subprocess.run(
            [promtool, *args], cwd=DASHBOARDS, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
