"""The Helm chart, offline: strict lint and rendering with the Helm SDK, every manifest validated
against the Kubernetes schemas, and what the rendered objects promise (settings the service
accepts, probes, security, RBAC, drained shutdown). Every check has a twin that must fail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from entrypoints.settings import Settings
from tests.deploy.deploy_helpers import (
    CHART,
    DOCKERFILE,
    FEATURE_VALUES,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    VALUES_FILES,
    by_kind,
    container,
    env_of,
    lint_problems,
    load_yaml,
    manifests,
    one,
    render,
    schema_errors,
)

pytestmark = pytest.mark.integration

CONFIGMAP_API = Path(__file__).resolve().parents[2] / "src" / "adapters" / "configmap" / "api.py"


# --------------------------------------------------------------------------- Helm chart


@pytest.mark.parametrize("environment", sorted(VALUES_FILES))
def test_chart_lints_clean_in_strict_mode(environment: str) -> None:
    problems = lint_problems(CHART, load_yaml(VALUES_FILES[environment]))
    assert not problems, f"helm lint --strict with {VALUES_FILES[environment].name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("environment", sorted(VALUES_FILES))
def test_every_rendered_manifest_validates_against_kubernetes_schemas(environment: str) -> None:
    documents = manifests(CHART, load_yaml(VALUES_FILES[environment]))
    kinds = set(by_kind(documents))
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"} <= kinds, kinds
    errors = schema_errors(documents)
    assert not errors, f"manifests rendered with {VALUES_FILES[environment].name}:\n" + "\n".join(errors)


@pytest.mark.parametrize("feature", sorted(FEATURE_VALUES))
def test_optional_features_lint_and_validate(feature: str) -> None:
    values = FEATURE_VALUES[feature]
    problems = lint_problems(CHART, values)
    assert not problems, f"helm lint --strict with {feature}:\n" + "\n".join(problems)
    errors = schema_errors(manifests(CHART, values))
    assert not errors, f"manifests rendered with {feature}:\n" + "\n".join(errors)


# What the Secrets referenced by the feature values would hold, for the settings check below.
SECRET_VALUES = {"redis-url": "redis://redis-master:6379/0", "admin-token": "an-admin-token-of-some-length"}


@pytest.mark.parametrize(
    "values_name", [*(f"file:{name}" for name in sorted(VALUES_FILES)), *sorted(FEATURE_VALUES)]
)
def test_rendered_environment_is_accepted_by_the_service_settings(values_name: str) -> None:
    # The chart and the service agree on every COUNTER_* variable and its values.
    if values_name.startswith("file:"):
        values = load_yaml(VALUES_FILES[values_name.removeprefix("file:")])
    else:
        values = FEATURE_VALUES[values_name]
    environ: dict[str, str] = {}
    for name, value in env_of(manifests(CHART, values)).items():
        if isinstance(value, str):
            environ[name] = value
        elif "fieldRef" in value:
            assert value["fieldRef"]["fieldPath"] == "metadata.namespace"
            environ[name] = NAMESPACE
        else:
            environ[name] = SECRET_VALUES[value["secretKeyRef"]["key"]]
    assert all(name.startswith("COUNTER_") for name in environ), sorted(environ)
    settings = Settings.from_env(environ)
    with helm.Chart.load(CHART) as loaded:
        merged = loaded.merge_values(values)
    assert settings.backend == merged["store"]["backend"]
    assert settings.host == "0.0.0.0"
    if settings.backend == "configmap":
        assert settings.configmap_namespace == NAMESPACE
        configmap = merged["store"]["configmap"]
        assert settings.configmap_coalesce == configmap["coalesce"]
        assert settings.configmap_max_writes_per_second == configmap["maxWritesPerSecond"]
    assert settings.rate_limit_per_client == merged["rateLimit"]["perClient"]
    assert settings.rate_limit_per_counter_writes == merged["rateLimit"]["perCounterWrites"]
    assert settings.trusted_proxy_hops == merged["rateLimit"]["trustedProxyHops"]
    assert settings.cors_allow_origins == ",".join(merged["cors"]["allowOrigins"])
    if merged["cors"]["allowOrigins"]:
        assert settings.cors_allow_methods == ",".join(merged["cors"]["allowMethods"])


def test_prod_scales_and_is_protected_from_disruption() -> None:
    documents = manifests(CHART, load_yaml(VALUES_FILES["prod"]))
    hpa = one(documents, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in one(documents, "Deployment")["spec"], "the HPA owns the replica count"
    assert one(documents, "PodDisruptionBudget")["spec"]["minAvailable"] >= 1


def test_deployment_probes_security_and_resources() -> None:
    documents = manifests(CHART, {})
    main = container(documents)
    assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert main["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is True, "the ConfigMap store needs the API token"
    assert main["image"] == "ghcr.io/counter-web-server/counter-web-server:0.1.0"
    env = env_of(documents)
    assert env["COUNTER_HOST"] == "0.0.0.0"
    assert env["COUNTER_BACKEND"] == "configmap"
    assert env["COUNTER_LOG_FORMAT"] == "json"
    assert env["COUNTER_CONFIGMAP_NAME"] == "counter-store"
    assert env["COUNTER_CONFIGMAP_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    service = one(documents, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


# The official client's ConfigMap calls and the RBAC verb each needs.
CLIENT_CALL_VERBS = {
    "read_namespaced_config_map": "get",
    "patch_namespaced_config_map": "patch",
    "create_namespaced_config_map": "create",
    "replace_namespaced_config_map": "update",
    "delete_namespaced_config_map": "delete",
    "list_namespaced_config_map": "list",
}


def verbs_the_store_uses(source: str) -> set[str]:
    verbs = {verb for call, verb in CLIENT_CALL_VERBS.items() if re.search(rf"\b{call}\b", source)}
    if re.search(r"\bwatch\s*=\s*True|\bWatch\(", source):
        verbs.add("watch")
    return verbs


def test_the_store_needs_get_patch_and_create_and_the_check_sees_other_calls() -> None:
    assert verbs_the_store_uses(CONFIGMAP_API.read_text()) == {"get", "patch", "create"}
    assert verbs_the_store_uses("api.replace_namespaced_config_map(name, ns, body)") == {"update"}
    assert verbs_the_store_uses("watch.Watch().stream(api.list_namespaced_config_map, ns)") == {
        "list",
        "watch",
    }


def test_role_allows_only_get_and_patch_on_the_one_store_object() -> None:
    # What the ConfigMap store calls (src/adapters/configmap/api.py), and nothing more: no update.
    needed = verbs_the_store_uses(CONFIGMAP_API.read_text())
    documents = manifests(CHART, {})
    configmap = one(documents, "ConfigMap")
    assert one(documents, "Role")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [configmap["metadata"]["name"]],
            "verbs": ["get", "patch"],
        }
    ]
    assert set(one(documents, "Role")["rules"][0]["verbs"]) == needed - {"create"}, (
        "create is granted only when the chart does not create the ConfigMap"
    )
    binding = one(documents, "RoleBinding")
    assert binding["roleRef"]["name"] == one(documents, "Role")["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": one(documents, "ServiceAccount")["metadata"]["name"],
            "namespace": NAMESPACE,
        }
    ]


def test_role_grants_create_only_when_the_chart_does_not_make_the_store() -> None:
    documents = manifests(CHART, FEATURE_VALUES["store-made-by-the-service"])
    assert "ConfigMap" not in by_kind(documents)
    rules = one(documents, "Role")["rules"]
    assert rules[0]["resourceNames"] == ["shared-store"]
    assert rules[1] == {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}
    granted = {verb for rule in rules for verb in rule["verbs"]}
    assert granted == verbs_the_store_uses(CONFIGMAP_API.read_text())


def test_counter_store_is_kept_and_carries_no_data() -> None:
    # No `data` at all: an upgrade (3-way merge or server-side apply) then never touches the counts.
    configmap = one(manifests(CHART, {}), "ConfigMap")
    assert configmap["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "data" not in configmap
    assert "binaryData" not in configmap
    for is_upgrade in (False, True):
        with helm.Chart.load(CHART) as loaded:
            rendered = loaded.render(
                loaded.merge_values({}), name=RELEASE, namespace=NAMESPACE, is_upgrade=is_upgrade
            )
        assert "\ndata:" not in rendered["counter/templates/configmap.yaml"]


def test_redis_store_reads_its_url_from_a_secret() -> None:
    documents = manifests(CHART, FEATURE_VALUES["redis"])
    env = env_of(documents)
    assert env["COUNTER_REDIS_URL"] == {"secretKeyRef": {"name": "counter-redis", "key": "redis-url"}}
    assert "COUNTER_CONFIGMAP_NAME" not in env
    kinds = by_kind(documents)
    assert "Role" not in kinds
    assert "ConfigMap" not in kinds
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False, "no API token for pods that do not use the API"


def test_digest_pins_the_image() -> None:
    main = container(manifests(CHART, FEATURE_VALUES["ingress-tls-admin-token"]))
    assert main["image"] == "ghcr.io/counter-web-server/counter-web-server@sha256:" + "a" * 64


@pytest.mark.parametrize("environment", sorted(VALUES_FILES))
def test_pods_are_drained_before_the_server_stops(environment: str) -> None:
    # preStop keeps the server answering while the endpoints are removed; then SIGTERM, and the
    # grace period must cover that sleep, the server's graceful shutdown and closing the store.
    values = load_yaml(VALUES_FILES[environment])
    documents = manifests(CHART, values)
    with helm.Chart.load(CHART) as loaded:
        merged = loaded.merge_values(values)
    sleep = merged["preStopSleepSeconds"]
    assert sleep >= 3, "kube-proxy and load balancers need a few seconds to drop the pod"
    assert container(documents)["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", str(sleep)]}}}
    shutdown = Settings.from_env(
        {"COUNTER_SHUTDOWN_TIMEOUT_SECONDS": env_of(documents)["COUNTER_SHUTDOWN_TIMEOUT_SECONDS"]}
    ).shutdown_timeout_seconds
    assert shutdown == merged["config"]["shutdownTimeoutSeconds"]
    grace = one(documents, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= sleep + shutdown + 5, f"grace {grace}s < preStop {sleep}s + shutdown {shutdown}s + 5s"


def test_the_prestop_hook_runs_a_sleep_the_image_has() -> None:
    # An exec of `sleep` (the Kubernetes `sleep` action is off by default on 1.29, which the chart
    # supports): the runtime image must be Debian-based, where coreutils is always installed.
    assert KUBERNETES_VERSIONS[0] == "1.29.0"
    final_base = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)[-1]
    assert re.fullmatch(r"python:[\d.]+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", final_base), (
        final_base
    )


def test_chart_refuses_a_grace_period_that_ends_before_the_graceful_shutdown() -> None:
    # A sum of values, which a JSON schema cannot state: the template refuses it at render time
    # (helm install, upgrade, template), while lint only logs a template's `fail`.
    short = {"terminationGracePeriodSeconds": 19}  # preStop 5 + shutdown 10 + 5 = 20
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds=19 is too short"):
        render(CHART, short)
    assert not lint_problems(CHART, {"terminationGracePeriodSeconds": 20})
    longer = {"config": {"shutdownTimeoutSeconds": 30}, "preStopSleepSeconds": 10}
    with pytest.raises(helm.HelmError, match="45 in all"):
        render(CHART, longer)


def test_no_prestop_hook_when_its_sleep_is_0() -> None:
    documents = manifests(CHART, {"preStopSleepSeconds": 0})
    assert "lifecycle" not in container(documents)
    assert not schema_errors(documents)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"store": {"backend": "redis"}}, "existingSecret"),
        ({"store": {"backend": "sqlite"}, "replicaCount": 2}, "replicaCount"),
        ({"store": {"backend": "memory"}, "autoscaling": {"enabled": True}}, "autoscaling"),
        ({"store": {"backend": "memory"}, "config": {"workers": 2}}, "workers"),
        ({"store": {"backend": "etcd"}}, "store/backend"),
        ({"replicaCountt": 2}, "replicaCountt"),
    ],
)
def test_chart_refuses_values_that_would_lose_counts_or_are_misspelt(
    values: dict[str, Any], message: str
) -> None:
    problems = lint_problems(CHART, values)
    assert any(message in problem for problem in problems), "\n".join(problems) or "lint found nothing"
    with pytest.raises(helm.HelmError, match=message):
        render(CHART, values)


def test_lint_and_render_fail_on_a_broken_template(chart_copy: Path) -> None:
    (chart_copy / "templates" / "broken.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.image.repository | nope }}\n"
    )
    problems = lint_problems(chart_copy, {})
    assert any("nope" in problem for problem in problems), "\n".join(problems) or "lint found nothing"
    with pytest.raises(helm.HelmError):
        render(chart_copy, {})


def test_lint_fails_on_a_template_that_renders_invalid_yaml(chart_copy: Path) -> None:
    service = chart_copy / "templates" / "service.yaml"
    service.write_text(service.read_text().replace("  type: {{", "type: {{"))
    problems = lint_problems(chart_copy, {})
    assert any("service.yaml" in problem for problem in problems), "\n".join(problems) or "lint found nothing"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("revisionHistoryLimit: {{", "revisionHistoryLimits: {{", "'revisionHistoryLimits' was unexpected"),
        ("containerPort: {{", "port: {{", "'containerPort' is a required property"),
        (
            "replicas: {{ .Values.replicaCount }}",
            'replicas: "{{ .Values.replicaCount }}"',
            "is not of type 'integer'",
        ),
    ],
)
def test_schema_validation_fails_on_an_invalid_manifest(
    chart_copy: Path, old: str, new: str, message: str
) -> None:
    # Helm renders these happily (valid YAML); only the Kubernetes schemas know better.
    deployment = chart_copy / "templates" / "deployment.yaml"
    text = deployment.read_text()
    assert old in text
    deployment.write_text(text.replace(old, new, 1))
    errors = schema_errors(manifests(chart_copy, {}))
    assert any(message in error for error in errors), "\n".join(errors) or "no schema error"


def test_notes_say_how_to_reach_the_service() -> None:
    notes = render(CHART, {})["counter/templates/NOTES.txt"]
    assert f"kubectl --namespace {NAMESPACE} port-forward service/{RELEASE}" in notes
    assert "curl -X POST $COUNTER_URL/counter" in notes
    ingress_notes = render(CHART, FEATURE_VALUES["ingress-tls-admin-token"])["counter/templates/NOTES.txt"]
    assert "https://counter.example.org/" in ingress_notes
