"""helm/workfleet: strict lint, schema-valid Kubernetes objects, and the worker pod's contract."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.chart.rendering import (
    CHART_DIR,
    CI_FILES,
    NAMESPACE,
    ROOT,
    Manifest,
    ci_values,
    objects,
    one,
    release_for,
    render,
    render_templates,
    worker_container,
)

KUBE_VERSION = "1.30"
# Custom resources have no bundled schema; tests/chart/test_operators.py checks them field by field.
CRD_KINDS = {
    "ScaledObject",
    "TriggerAuthentication",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
}
CI_IDS = [p.name for p in CI_FILES]


def _load_values(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_ci_values_files_are_the_three_documented_ones() -> None:
    assert [p.name for p in CI_FILES] == [
        "billing-values.yaml",
        "media-values.yaml",
        "minimal-values.yaml",
    ]


def test_app_version_is_the_package_version() -> None:
    init = (ROOT / "src" / "workfleet" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    assert match
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == match.group(1)


@pytest.mark.parametrize("values_file", CI_FILES, ids=CI_IDS)
def test_lint_strict_is_clean(values_file: Path) -> None:
    report = helm.lint(
        CHART_DIR, _load_values(values_file), strict=True, kube_version=f"v{KUBE_VERSION}.0"
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_lint_strict_is_clean_with_the_chart_defaults() -> None:
    # `helm lint helm/workfleet` without values: required values only warn in lint mode
    report = helm.lint(CHART_DIR, None, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_a_broken_template(tmp_path: Path) -> None:
    # the lint check above can fail: a template with a syntax error is an error finding
    broken = tmp_path / "workfleet"
    shutil.copytree(CHART_DIR, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.prefix \n")
    report = helm.lint(broken, ci_values("minimal"), strict=True)
    assert report["errors"] or [m for m in report["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize("values_file", CI_FILES, ids=CI_IDS)
def test_every_core_object_is_valid_for_kubernetes_1_30(values_file: Path) -> None:
    docs = render(_load_values(values_file), release_for(values_file))
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {"Deployment", "ServiceAccount", "Service", "PodDisruptionBudget"} <= {
        d["kind"] for d in core
    }
    for doc in core:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_strict_validation_catches_an_unknown_field() -> None:
    # the validation above is able to fail: a misspelt field in the pod spec is rejected
    deployment = one(render(ci_values("minimal"), "content"), "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("values_file", CI_FILES, ids=CI_IDS)
def test_every_object_is_named_for_the_release_and_lives_in_its_namespace(
    values_file: Path,
) -> None:
    release = release_for(values_file)
    for doc in render(_load_values(values_file), release):
        meta = doc["metadata"]
        assert release in meta["name"], meta["name"]
        assert len(meta["name"]) <= 63
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["app.kubernetes.io/instance"] == release
        assert meta["labels"]["app.kubernetes.io/name"] == "workfleet"


def test_two_releases_with_different_prefixes_do_not_collide() -> None:
    billing = ci_values("minimal") | {"prefix": "billing.%"}
    media = ci_values("minimal") | {"prefix": "media.%"}
    for extra in ({}, {"keda": {"enabled": True}, "migrations": {"enabled": False}}):
        a = render(billing | extra, "billing")
        b = render(media | extra, "media")
        names_a = {(d["kind"], d["metadata"]["name"]) for d in a}
        names_b = {(d["kind"], d["metadata"]["name"]) for d in b}
        assert names_a and names_b
        assert not names_a & names_b
        # nor do their pods: each Deployment, Service and PDB selects only its own release
        sel_a = one(a, "Deployment")["spec"]["selector"]["matchLabels"]
        sel_b = one(b, "Deployment")["spec"]["selector"]["matchLabels"]
        assert sel_a != sel_b
        assert one(a, "Service")["spec"]["selector"] == sel_a
        assert one(a, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == sel_a


def test_a_release_named_like_the_chart_is_not_doubled() -> None:
    docs = render(ci_values("minimal"), "workfleet")
    assert one(docs, "Deployment")["metadata"]["name"] == "workfleet"


def test_prefix_and_database_secret_are_required() -> None:
    values = ci_values("minimal")
    del values["prefix"]
    with pytest.raises(helm.HelmRenderError, match=r"prefix is required: .*--set prefix="):
        render(values)
    values = ci_values("minimal")
    values["database"] = {"existingSecret": ""}
    with pytest.raises(helm.HelmRenderError, match=r"database\.existingSecret is required"):
        render(values)


def _probe(container: Manifest, key: str) -> Manifest:
    probe: Manifest = container[key]
    return probe


def test_worker_pod_contract_minimal() -> None:
    docs = render(ci_values("minimal"), "content")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(docs)

    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["annotations"]["workfleet/prefix"] == "content.%"
    assert container["image"] == "workfleet:0.1.0", "the tag defaults to appVersion"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert container["args"] == ["worker"]
    for key, path in (
        ("startupProbe", "/startupz"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        assert _probe(container, key)["httpGet"] == {"path": path, "port": "metrics"}

    # drain-aware shutdown: drainTimeout 30 + the default 15 s margin
    assert pod["terminationGracePeriodSeconds"] == 45

    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp

    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False

    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    env_names = [e["name"] for e in container["env"]]
    assert len(env_names) == len(set(env_names)), "no variable is set twice"
    assert not objects(docs, "Job"), "migrations are opt-in"
    assert not objects(docs, "NetworkPolicy")
    assert not {d["kind"] for d in docs} & CRD_KINDS


def test_media_long_drain_pdb_and_network_policy() -> None:
    values = ci_values("media")
    docs = render(values, "media")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    grace = math.ceil(values["drainTimeout"]) + values["terminationGraceMarginSeconds"]
    assert pod["terminationGracePeriodSeconds"] == grace == 630
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {
        "minAvailable": 2,
        "selector": one(docs, "Deployment")["spec"]["selector"],
    }
    assert pod["nodeSelector"] == {"workload": "media"}
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    meta = one(docs, "Deployment")["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "media"
    assert meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"

    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": values["networkPolicy"]["metricsFrom"],
        }
    ]
    postgres, dns, *extra = policy["egress"]
    assert postgres == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    }
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]
    assert extra == values["networkPolicy"]["extraEgress"]
    # the policy covers the workers (and the migration Job) of this release only
    selector = policy["podSelector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "workfleet",
        "app.kubernetes.io/instance": "media",
    }


def test_network_policy_without_a_database_address_fails_clearly() -> None:
    values = ci_values("minimal") | {"networkPolicy": {"enabled": True}}
    with pytest.raises(helm.HelmRenderError, match=r"networkPolicy\.postgres\.cidrs"):
        render(values)


def test_migration_job_is_a_pre_install_pre_upgrade_hook() -> None:
    docs = render(ci_values("billing"), "billing")
    job = one(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    assert container["image"] == worker_container(docs)["image"]
    env = {e["name"]: e for e in container["env"]}
    worker_env = {e["name"]: e for e in worker_container(docs)["env"]}
    assert env["WORKFLEET_DATABASE_URL"] == worker_env["WORKFLEET_DATABASE_URL"]
    assert env["WORKFLEET_SCHEMA"] == worker_env["WORKFLEET_SCHEMA"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    # hooks run before the chart's ServiceAccount exists on a first install
    assert "serviceAccountName" not in pod
    # and the Job's pods are not the Service's endpoints
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"


def test_image_digest_and_pull_settings() -> None:
    digest = "sha256:" + "ab" * 32
    values = ci_values("minimal") | {
        "image": {"repository": "r.example/wf", "digest": digest, "pullPolicy": "Always"}
    }
    container = worker_container(render(values))
    assert container["image"] == f"r.example/wf@{digest}"
    assert container["imagePullPolicy"] == "Always"


def test_extra_env_env_from_and_volumes_reach_the_container() -> None:
    values = ci_values("minimal") | {
        "extraEnv": [{"name": "PAYMENT_GATEWAY", "value": "https://pay.example"}],
        "envFrom": [{"configMapRef": {"name": "plugin-config"}}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    }
    docs = render(values)
    container = worker_container(docs)
    assert container["env"][-1] == {"name": "PAYMENT_GATEWAY", "value": "https://pay.example"}
    assert container["envFrom"] == [{"configMapRef": {"name": "plugin-config"}}]
    assert {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in volumes


def test_notes_name_the_prefix_and_the_deployment() -> None:
    notes = render_templates(ci_values("billing"), "billing")["workfleet/templates/NOTES.txt"]
    assert '"billing.%"' in notes
    assert "deploy/billing-workfleet" in notes
    assert "KEDA" in notes
