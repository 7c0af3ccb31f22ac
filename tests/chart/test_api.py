"""helm/workfleet with ``api.enabled``: the API's Deployment, Service and Ingress, hardened like
the worker, probed on /health and /livez, and refused without its keys Secret."""

from __future__ import annotations

import os
from typing import Any

import helm_python as helm
import pytest

from tests.chart.rendering import CHART_DIR, Manifest, ci_values, render
from workfleet.settings import load_settings


def _named(docs: list[Manifest], kind: str, suffix: str) -> Manifest:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc


def _api_values(**api: Any) -> dict[str, Any]:
    values = ci_values("minimal")
    values["api"] = {"enabled": True, "keysSecret": "api-keys", **api}
    return values


def test_no_api_objects_unless_enabled() -> None:
    docs = render(ci_values("minimal"), "content")
    assert not [d for d in docs if d["metadata"]["name"].endswith("-api")]


def test_the_api_deployment_is_hardened_and_probed() -> None:
    docs = render(_api_values(), "content")
    deployment = _named(docs, "Deployment", "-api")
    worker = _named(docs, "Deployment", "content-workfleet")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["api"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    worker_pod = worker["spec"]["template"]["spec"]
    assert pod["securityContext"] == worker_pod["securityContext"]
    assert container["securityContext"] == worker_pod["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["WORKFLEET_API__KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "api-keys",
        "key": "API_KEYS",
    }
    assert "valueFrom" in env["WORKFLEET_DATABASE_URL"]
    # the two Deployments select disjoint pods
    api_sel = deployment["spec"]["selector"]["matchLabels"]
    worker_sel = worker["spec"]["selector"]["matchLabels"]
    assert api_sel["app.kubernetes.io/component"] == "api"
    assert worker_sel["app.kubernetes.io/component"] == "worker"
    service = _named(docs, "Service", "-api")
    assert service["spec"]["selector"] == api_sel
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert not [d for d in docs if d["kind"] == "Ingress"]


def test_the_ingress_routes_to_the_api_service_with_tls() -> None:
    docs = render(ci_values("billing"), "billing")
    ingress = _named(docs, "Ingress", "-api")
    service = _named(docs, "Service", "-api")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "workfleet.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [
        {"hosts": ["workfleet.example.com"], "secretName": "workfleet-example-tls"}
    ]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    deployment = _named(docs, "Deployment", "-api")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["WORKFLEET_API__SECURE_COOKIES"] == "true"


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({"enabled": True}, "api.keysSecret is required"),
        (
            {"enabled": True, "keysSecret": "k", "ingress": {"enabled": True}},
            "api.ingress.host is required",
        ),
    ],
)
def test_missing_required_api_values_fail_clearly(api: dict[str, Any], message: str) -> None:
    values = ci_values("minimal")
    values["api"] = api
    with pytest.raises(Exception, match=message):
        render(values, "content")


@pytest.mark.parametrize(
    "api",
    [
        {"enabled": "yes"},
        {"port": 0},
        {"maxBodyBytes": 10},
        {"keysSecret": "Not_A_Name"},
        {"ingress": {"host": "bad host"}},
        {"surprise": 1},
    ],
)
def test_the_schema_rejects_bad_api_values(api: dict[str, Any]) -> None:
    values = ci_values("minimal")
    values["api"] = api
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(Exception):  # noqa: B017, PT011
        chart.validate_schema(values)


def test_the_api_environment_parses_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(ci_values("billing"), "billing")
    [container] = _named(docs, "Deployment", "-api")["spec"]["template"]["spec"]["containers"]
    for name in list(os.environ):
        if name.startswith("WORKFLEET_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    keys = f"ops:admin:{'a' * 64}"
    for var in container["env"]:
        secret = var.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
        value = {"API_KEYS": keys, "url": "postgresql://db.example/app"}.get(
            secret, var.get("value")
        )
        monkeypatch.setenv(var["name"], value)
    settings = load_settings()
    assert settings.api.port == 8080 and settings.api.max_body_bytes == 1_048_576
    assert settings.api.secure_cookies is True and settings.api.pool_max_size == 10
    assert [k.name for k in settings.api.keys] == ["ops"]


def test_the_network_policy_lets_the_api_be_reached() -> None:
    values = _api_values()
    peer = [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}]
    values["networkPolicy"] = {
        "enabled": True,
        "postgres": {"cidrs": ["10.0.0.0/24"]},
        "apiFrom": peer,
    }
    [policy] = [d for d in render(values, "content") if d["kind"] == "NetworkPolicy"]
    rules = policy["spec"]["ingress"]
    assert {"ports": [{"port": "http", "protocol": "TCP"}], "from": peer} in rules
    without = ci_values("minimal") | {"networkPolicy": values["networkPolicy"]}
    [closed] = [d for d in render(without, "content") if d["kind"] == "NetworkPolicy"]
    assert all(r["ports"][0]["port"] == "metrics" for r in closed["spec"]["ingress"])
