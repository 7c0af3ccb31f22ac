"""KEDA, prometheus-operator and Grafana objects, field by field (they have no bundled schema)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tests.chart.rendering import (
    CHART_DIR,
    ROOT,
    ci_values,
    keda_query,
    objects,
    one,
    render,
    worker_container,
)

ALERTS = ROOT / "dashboards" / "alerts.yaml"
CHART_ALERTS = CHART_DIR / "files" / "alerts.yaml"
CHART_DASHBOARDS = CHART_DIR / "files" / "dashboards"


# --- KEDA ------------------------------------------------------------------------------------


def test_billing_scaled_object_field_by_field() -> None:
    docs = render(ci_values("billing"), "billing")
    deployment = one(docs, "Deployment")
    scaled = one(docs, "ScaledObject")
    auth = one(docs, "TriggerAuthentication")

    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert spec["minReplicaCount"] == 0
    assert spec["maxReplicaCount"] == 20
    assert spec["pollingInterval"] == 10
    assert spec["cooldownPeriod"] == 600
    assert spec["fallback"] == {"failureThreshold": 5, "replicas": 2}
    assert spec["advanced"] == {
        "horizontalPodAutoscalerConfig": {
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
        }
    }
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    # KEDA reads trigger metadata as strings
    assert trigger["metadata"]["targetQueryValue"] == "16"
    assert trigger["metadata"]["activationTargetQueryValue"] == "1"
    assert set(trigger["metadata"]) == {"query", "targetQueryValue", "activationTargetQueryValue"}

    # the connection comes from the same Secret (and key) as the worker's DSN
    dsn_ref = next(
        e for e in worker_container(docs)["env"] if e["name"] == "WORKFLEET_DATABASE_URL"
    )["valueFrom"]["secretKeyRef"]
    assert auth["spec"] == {
        "secretTargetRef": [
            {"parameter": "connection", "name": dsn_ref["name"], "key": dsn_ref["key"]}
        ]
    }
    assert dsn_ref == {"name": "workfleet-db", "key": "url"}

    # KEDA owns the replica count
    assert "replicas" not in deployment["spec"]


def test_billing_query_has_the_claims_eligibility() -> None:
    query = " ".join(keda_query(render(ci_values("billing"), "billing")).split())
    assert query == (
        'SELECT count(*) FROM ( SELECT 1 FROM "workflow".workflow_run r'
        " WHERE r.status = 'pending' AND r.run_at <= now() AND r.deleted_at IS NULL"
        " AND r.type LIKE 'billing.%' AND NOT EXISTS ("
        ' SELECT 1 FROM "workflow".workflow_registry g'
        " WHERE g.workflow_name = r.type AND NOT g.is_enabled AND g.deleted_at IS NULL )"
        " LIMIT 320 ) AS runnable"
    )


def _query_for(prefix: str, **keda: object) -> str:
    values = ci_values("billing")
    values["prefix"] = prefix
    values["keda"].update(keda)
    return keda_query(render(values))


def test_a_quote_in_the_prefix_cannot_break_out_of_the_literal() -> None:
    query = _query_for("o'hara.%';DROP/**/TABLE/**/workflow_run;--%")
    # the quotes are doubled, the literal `%` inside the prefix escaped: one string literal
    assert "r.type LIKE 'o''hara.\\%'';DROP/**/TABLE/**/workflow\\_run;--%'" in query
    body = query.split("LIKE ", 1)[1].split("\n", 1)[0]
    assert body.startswith("'") and body.endswith("'")
    assert "''" in body and body[1:-1].replace("''", "").count("'") == 0


def test_like_metacharacters_of_the_prefix_are_literal_as_in_the_claim() -> None:
    from workfleet.patterns import TypePattern

    for prefix in ("media_v2.%", "back\\slash.%", "100%off.%", "%"):
        query = _query_for(prefix)
        assert f"r.type LIKE '{TypePattern.parse(prefix).like()}'" in query, prefix


def test_an_exact_type_is_matched_with_equality() -> None:
    query = _query_for("billing.invoice.v1")
    assert "r.type = 'billing.invoice.v1'" in query
    assert "LIKE" not in query


def test_schema_is_a_quoted_identifier() -> None:
    values = ci_values("billing") | {"schema": "Jobs_2"}
    query = keda_query(render(values))
    assert 'FROM "Jobs_2".workflow_run r' in query
    assert 'FROM "Jobs_2".workflow_registry g' in query


def test_the_count_stops_at_what_max_replicas_can_use() -> None:
    assert "LIMIT 21" in _query_for("billing.%", maxReplicaCount=3, targetRunsPerReplica=7)
    # the target defaults to the concurrency
    values = ci_values("billing")
    values["keda"]["targetRunsPerReplica"] = None
    docs = render(values)
    trigger = one(docs, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"]["targetQueryValue"] == str(values["concurrency"])
    assert f"LIMIT {20 * values['concurrency']}" in keda_query(docs)


def test_keda_connection_can_come_from_another_secret() -> None:
    values = ci_values("billing")
    values["keda"]["connection"] = {"existingSecret": "keda-db", "secretKey": "pgx"}
    auth = one(render(values), "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": "keda-db", "key": "pgx"}
    ]


def test_fallback_can_be_disabled_and_min_must_not_exceed_max() -> None:
    values = ci_values("billing")
    values["keda"]["fallback"]["replicas"] = 0
    assert "fallback" not in one(render(values), "ScaledObject")["spec"]
    values["keda"].update(minReplicaCount=5, maxReplicaCount=2)
    with pytest.raises(helm.HelmRenderError, match="minReplicaCount must not exceed"):
        render(values)


def test_without_keda_the_deployment_sets_replicas() -> None:
    values = ci_values("billing")
    values["keda"]["enabled"] = False
    values["replicas"] = 4
    docs = render(values)
    assert one(docs, "Deployment")["spec"]["replicas"] == 4
    assert not objects(docs, "ScaledObject") and not objects(docs, "TriggerAuthentication")


# --- prometheus-operator ---------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = render(ci_values("billing"), "billing")
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert spec["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert not objects(docs, "PodMonitor")


def test_pod_monitor_scrapes_the_worker_pods() -> None:
    docs = render(ci_values("media"), "media")
    monitor = one(docs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"]
        == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert not objects(docs, "ServiceMonitor")


def test_service_monitor_and_pod_monitor_are_exclusive() -> None:
    values = ci_values("billing")
    values["metrics"]["podMonitor"] = {"enabled": True}
    with pytest.raises(helm.HelmRenderError, match="either serviceMonitor or podMonitor"):
        render(values)


def test_chart_alerts_are_a_byte_for_byte_copy_of_dashboards_alerts() -> None:
    assert CHART_ALERTS.read_bytes() == ALERTS.read_bytes(), (
        "copy dashboards/alerts.yaml to helm/workfleet/files/alerts.yaml"
    )


def test_prometheus_rule_groups_are_the_alert_file_untouched() -> None:
    docs = render(ci_values("billing"), "billing")
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    expected = yaml.safe_load(CHART_ALERTS.read_text())["groups"]
    assert rule["spec"] == {"groups": expected}
    # Prometheus templates survive: the chart did not evaluate them
    annotations = [r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels." in a["summary"] for a in annotations)
    assert all(r.get("expr") for g in rule["spec"]["groups"] for r in g["rules"])


# --- Grafana dashboards ----------------------------------------------------------------------


def _chart_copy(tmp_path: Path, dashboards: dict[str, str]) -> Path:
    copy = tmp_path / "workfleet"
    shutil.copytree(CHART_DIR, copy)
    target = copy / "files" / "dashboards"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.json"):
        old.unlink()
    for name, text in dashboards.items():
        (target / name).write_text(text)
    return copy


def _dashboard_values() -> dict[str, object]:
    values = ci_values("minimal")
    values["grafana"] = {"dashboards": {"enabled": True}}
    return values


def test_no_dashboard_files_render_no_config_maps(tmp_path: Path) -> None:
    chart = _chart_copy(tmp_path, {})
    docs = render(_dashboard_values(), chart_dir=chart)
    assert not objects(docs, "ConfigMap")


def test_each_dashboard_file_becomes_a_labelled_config_map(tmp_path: Path) -> None:
    overview = json.dumps(
        {"title": "workfleet overview", "templating": {"list": [{"query": "${datasource}"}]}},
        indent=2,
    )
    per_type = json.dumps({"title": "by type", "description": "{{ $labels.type }} as text"})
    chart = _chart_copy(
        tmp_path,
        {"workfleet-overview.json": overview, "Per_Type.json": per_type},
    )
    (chart / "files" / "dashboards" / "notes.txt").write_text("not a dashboard")
    values = _dashboard_values()
    values["grafana"] = {
        "dashboards": {
            "enabled": True,
            "labelKey": "grafana_dashboard",
            "labelValue": "yes",
            "annotations": {"grafana_folder": "workfleet"},
        }
    }
    maps = objects(render(values, "content", chart_dir=chart), "ConfigMap")
    by_key = {next(iter(m["data"])): m for m in maps}
    assert set(by_key) == {"workfleet-overview.json", "Per_Type.json"}
    assert json.loads(by_key["workfleet-overview.json"]["data"]["workfleet-overview.json"]) == (
        json.loads(overview)
    )
    assert by_key["Per_Type.json"]["data"]["Per_Type.json"] == per_type
    names = {m["metadata"]["name"] for m in maps}
    assert names == {
        "content-workfleet-dashboard-workfleet-overview",
        "content-workfleet-dashboard-per-type",
    }
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "yes"
        assert m["metadata"]["annotations"] == {"grafana_folder": "workfleet"}


def test_the_shipped_dashboards_render_with_the_default_sidecar_label() -> None:
    shipped = sorted(CHART_DASHBOARDS.glob("*.json"))
    maps = objects(render(_dashboard_values(), "content"), "ConfigMap")
    assert len(maps) == len(shipped)
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = m["data"].values()
        json.loads(text)
    assert not objects(render(ci_values("minimal"), "content"), "ConfigMap"), "opt-in"
