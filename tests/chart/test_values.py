"""values.schema.json rejects what the worker would reject, and the env the chart sets parses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from pydantic import AliasChoices

from tests.chart.rendering import CHART_DIR, CI_FILES, ci_values, release_for, render
from workfleet.errors import ConfigError
from workfleet.patterns import TypePattern
from workfleet.settings import ENV_PREFIX, PrefixSpec, Settings, load_settings

FAKE_DSN = "postgresql://worker:s3cret@db.example:5432/app"
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def _schema_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    return str(caught.value)


def _env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The worker container's WORKFLEET_* variables as the kubelet would set them."""
    deployment = next(
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for var in container["env"]:
        name = var["name"]
        if not name.startswith(ENV_PREFIX):
            continue
        if "value" in var:
            assert isinstance(var["value"], str), f"{name} must be a string, got {var['value']!r}"
            env[name] = var["value"]
        else:
            assert set(var["valueFrom"]) == {"secretKeyRef"}, name
            env[name] = FAKE_DSN
    return env


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _known_variables() -> set[str]:
    """The WORKFLEET_* names the settings model reads (an unknown one would be ignored)."""
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            choices = info.validation_alias.choices
            names |= {c for c in choices if isinstance(c, str) and c.startswith(ENV_PREFIX)}
        else:
            names.add(ENV_PREFIX + field.upper())
    return names


@pytest.mark.parametrize("values_file", CI_FILES, ids=[p.name for p in CI_FILES])
def test_the_workers_environment_parses_as_settings(
    values_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = ci_values(release_for(values_file))
    env = _env_of(render(values, release_for(values_file)))
    unknown = set(env) - _known_variables()
    assert not unknown, f"the worker ignores {unknown} (pydantic-settings extra='ignore')"

    settings = _settings_from(env, monkeypatch)
    concurrency = values.get("concurrency", 10)
    assert settings.prefixes == [PrefixSpec(TypePattern.parse(values["prefix"]), concurrency)]
    assert settings.lease_seconds == values.get("leaseSeconds", 30)
    assert settings.poll_interval == values.get("pollInterval", 5)
    assert settings.drain_timeout == values.get("drainTimeout", 30)
    assert settings.log_format == "json"
    assert settings.http_enabled is True
    assert settings.http_port == 9464
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == FAKE_DSN
    assert settings.schema_name == values.get("schema", "workflow")


def test_every_setting_the_chart_exposes_reaches_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = ci_values("minimal") | {
        "prefix": "notify.email.v1",
        "concurrency": 3,
        "leaseSeconds": 12.5,
        "pollInterval": 0.5,
        "pollOnly": True,
        "drainTimeout": 7.5,
        "logFormat": "console",
        "logLevel": "DEBUG",
        "schema": "jobs",
        "metrics": {"port": 9100},
    }
    docs = render(values)
    settings = _settings_from(_env_of(docs), monkeypatch)
    assert [str(p) for p in settings.prefixes] == ["notify.email.v1=3"]
    assert (settings.lease_seconds, settings.poll_interval, settings.drain_timeout) == (
        12.5,
        0.5,
        7.5,
    )
    assert settings.poll_only is True
    assert (settings.log_format, settings.log_level) == ("console", "DEBUG")
    assert settings.schema_name == "jobs"
    assert settings.http_port == 9100
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 8 + 15
    assert pod["containers"][0]["ports"][0]["containerPort"] == 9100


# Values the worker would refuse at start-up are refused at `helm install` already.
BAD_VALUES: list[tuple[str, Any, str, str]] = [
    ("concurrency", 0, "WORKFLEET_PREFIXES", "billing.%=0"),
    ("leaseSeconds", 0, "WORKFLEET_LEASE_SECONDS", "0"),
    ("leaseSeconds", 90000, "WORKFLEET_LEASE_SECONDS", "90000"),
    ("pollInterval", 4000, "WORKFLEET_POLL_INTERVAL", "4000"),
    ("drainTimeout", -1, "WORKFLEET_DRAIN_TIMEOUT", "-1"),
    ("logFormat", "xml", "WORKFLEET_LOG_FORMAT", "xml"),
    ("logLevel", "TRACE", "WORKFLEET_LOG_LEVEL", "TRACE"),
]


@pytest.mark.parametrize(
    ("key", "bad", "variable", "env_value"), BAD_VALUES, ids=[f"{b[0]}={b[1]}" for b in BAD_VALUES]
)
def test_a_value_the_worker_rejects_is_rejected_by_the_schema(
    key: str, bad: Any, variable: str, env_value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = ci_values("billing") | {key: bad}
    assert f"/{key}" in _schema_error(values)
    # ... and the worker would indeed have refused it
    env = _env_of(render(ci_values("billing"))) | {variable: env_value}
    with pytest.raises(ConfigError):
        _settings_from(env, monkeypatch)


@pytest.mark.parametrize(
    ("values_patch", "where"),
    [
        ({"concurrency": "8"}, "/concurrency"),
        ({"replicas": 1.5}, "/replicas"),
        ({"pollOnly": "yes"}, "/pollOnly"),
        ({"image": {"repository": "r", "tag": 1}}, "/image/tag"),
        ({"keda": {"enabled": "true"}}, "/keda/enabled"),
        ({"keda": {"maxReplicaCount": 0}}, "/keda/maxReplicaCount"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
        ({"networkPolicy": {"postgres": {"cidrs": ["db.example"]}}}, "/networkPolicy/postgres"),
        ({"metrics": {"serviceMonitor": {"interval": 30}}}, "/metrics/serviceMonitor/interval"),
        ({"database": {"existingSecret": "Not_A_Name"}}, "/database/existingSecret"),
    ],
)
def test_wrong_types_are_rejected(values_patch: dict[str, Any], where: str) -> None:
    values = ci_values("minimal")
    for key, patch in values_patch.items():
        values[key] = (values.get(key) or {}) | patch if isinstance(patch, dict) else patch
    assert where in _schema_error(values)


@pytest.mark.parametrize(
    "path",
    [
        ("replica",),
        ("image", "name"),
        ("database", "url"),
        ("metrics", "serviceMonitor", "intervall"),
        ("keda", "fallback", "replica"),
        ("keda", "minReplicas"),
        ("probes", "liveness", "path"),
        ("grafana", "dashboards", "label"),
        ("networkPolicy", "dns", "cidrs"),
        ("migrations", "image"),
    ],
    ids=".".join,
)
def test_unknown_keys_are_rejected_at_every_level(path: tuple[str, ...]) -> None:
    values = ci_values("minimal")
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = 1
    message = _schema_error(values)
    assert "additional properties" in message and repr(path[-1]) in message


def test_every_object_the_schema_defines_is_closed() -> None:
    def walk(node: dict[str, Any], where: str) -> list[str]:
        open_ = []
        if "properties" in node and node.get("additionalProperties") is not False:
            open_.append(where or "/")
        for name, child in node.get("properties", {}).items():
            open_.extend(walk(child, f"{where}/{name}"))
        items = node.get("items")
        if isinstance(items, dict):
            open_.extend(walk(items, f"{where}[]"))
        return open_

    # extraEnv items are EnvVar objects: only `name` is pinned down, the rest is Kubernetes'
    assert walk(SCHEMA, "") == ["/extraEnv[]", "/api/extraEnv[]"]


@pytest.mark.parametrize(
    "prefix", ["billing.%,media.%", "billing .%", "billing.%\n", "tab\there", "x" * 201]
)
def test_prefixes_the_worker_cannot_take_one_at_a_time_are_rejected(prefix: str) -> None:
    values = ci_values("minimal") | {"prefix": prefix}
    assert "/prefix" in _schema_error(values)


@pytest.mark.parametrize("schema", ['wf"; DROP', "wf.x", "1wf", "a" * 64, ""])
def test_schema_names_are_plain_identifiers(schema: str) -> None:
    values = ci_values("minimal") | {"schema": schema}
    assert "/schema" in _schema_error(values)


def test_the_ci_values_pass_the_schema() -> None:
    with helm.Chart.load(CHART_DIR) as chart:
        for values_file in CI_FILES:
            chart.validate_schema(ci_values(release_for(values_file)))


FREE_FORM = {"resources", "nodeSelector", "affinity", "podAnnotations", "podLabels"}
FREE_FORM |= {"podSecurityContext", "securityContext", "strategy"}


def test_the_chart_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    missing: list[str] = []
    for key, value in defaults.items():
        paths = [key]
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths = [f"{key}.{sub}" for sub in value]
        missing.extend(p for p in paths if f"`{p}" not in readme)
    assert missing == []
