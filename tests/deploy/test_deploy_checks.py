"""Offline checks of everything that deploys the service: the Dockerfile (hadolint), the GitHub
Actions workflows (actionlint, with shellcheck on their `run:` steps), the shell scripts
(shellcheck), the Helm chart (strict lint and rendering with the Helm SDK, then every manifest
validated against the Kubernetes schemas), the pinned image requirements, and the life of a
release: the real helm client upgrades, rolls back, uninstalls and reinstalls the chart's counter
ConfigMap on the Kubernetes API emulator without losing a count.

Every check has a twin that breaks the checked file in a temporary copy and asserts that the
check fails: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from entrypoints.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
REQUIREMENTS = ROOT / "deploy" / "docker" / "requirements.txt"
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = ROOT / "deploy" / "scripts"
CHART = ROOT / "deploy" / "helm" / "counter"
KIND_VALUES = ROOT / "deploy" / "kind" / "values-kind.yaml"

RELEASE = "counter"
NAMESPACE = "counter-test"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
ERROR = 2  # helm lint severities: 1 info, 2 warning, 3 error; strict lint fails on warnings too

VALUES_FILES = {
    "defaults": CHART / "values.yaml",
    "dev": CHART / "values-dev.yaml",
    "preprod": CHART / "values-preprod.yaml",
    "prod": CHART / "values-prod.yaml",
    "kind": KIND_VALUES,
}

# Feature combinations the environment files do not switch on, rendered and validated too.
FEATURE_VALUES: dict[str, dict[str, Any]] = {
    "redis": {"store": {"backend": "redis", "redis": {"existingSecret": "counter-redis"}}},
    "sqlite-on-a-claim": {"store": {"backend": "sqlite", "sqlite": {"existingClaim": "counter-data"}}},
    "memory": {"store": {"backend": "memory"}},
    "store-made-by-the-service": {"store": {"configmap": {"create": False, "name": "shared-store"}}},
    "ingress-tls-admin-token": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "counter.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "counter-tls", "hosts": ["counter.example.org"]}],
        },
        "adminToken": {"existingSecret": "counter-admin"},
        "image": {"digest": "sha256:" + "a" * 64},
        "service": {"type": "LoadBalancer"},
    },
    "pdb-max-unavailable": {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}, "replicaCount": 3},
}


# --------------------------------------------------------------------------- helpers


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: run `make dev`")
    return path


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # The venv's bin first: actionlint finds shellcheck there and checks the workflows' run steps.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return loaded


def lint_problems(chart: Path, values: dict[str, Any]) -> list[str]:
    report = helm.lint(chart, values, strict=True, namespace=NAMESPACE)
    problems = [
        f"[severity {message['severity']}] {message['path']}: {message['error']}"
        for message in report["messages"]
        if message["severity"] >= ERROR
    ]
    return problems + [f"[error] {error}" for error in report["errors"]]


def render(chart: Path, values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(chart) as loaded:
        merged = loaded.merge_values(values)
        loaded.validate_schema(merged)
        return loaded.render(merged, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for template, text in sorted(render(chart, values).items()):
        if not template.endswith(".yaml"):
            continue
        documents.extend(document for document in yaml.safe_load_all(text) if document)
    return documents


def by_kind(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    return kinds


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(documents).get(kind, [])
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def schema_errors(documents: list[dict[str, Any]]) -> list[str]:
    errors = []
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                errors.append(f"{name} (Kubernetes {version}) at {path or '<root>'}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{name} (Kubernetes {version}): {error.message}")
    return errors


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(documents, "Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(documents)["env"]}


@pytest.fixture(scope="module", autouse=True)
def _quiet_helm() -> None:
    # The Helm SDK logs template `fail` calls on stderr; the tests assert on the errors instead.
    helm.disable_logging()


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "counter"
    shutil.copytree(CHART, copy)
    return copy


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_hadolint_clean() -> None:
    result = run(tool("hadolint"), DOCKERFILE)
    assert result.returncode == 0, f"hadolint found problems in {DOCKERFILE}:\n{output_of(result)}"


def test_hadolint_fails_on_a_latest_base_image(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text, count = re.subn(
        r"^FROM python:\S+", "FROM python:latest", DOCKERFILE.read_text(), flags=re.MULTILINE
    )
    assert count == 2, "the Dockerfile should have two stages on the pinned python base"
    broken.write_text(text)
    result = run(tool("hadolint"), broken)
    assert result.returncode != 0, f"hadolint accepted FROM python:latest:\n{output_of(result)}"
    assert "DL3007" in result.stdout, output_of(result)


def test_dockerfile_has_what_the_image_needs() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2, "multi-stage build expected"
    for base in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), (
            f"base image {base} is not a pinned slim Python"
        )
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001", final, flags=re.MULTILINE), (
        "the final stage must run as the non-root uid"
    )
    assert "EXPOSE 8000" in final
    assert "HEALTHCHECK" in final
    assert 'ENTRYPOINT ["counter"]' in final
    assert 'CMD ["serve"]' in final
    for label in ("title", "source", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in final, f"OCI label {label} missing"
    assert "requirements.txt" in text
    assert "--no-deps" in text
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    sources = {source for line in copied for source in line.split()}
    assert sources == {"deploy/docker/requirements.txt", "pyproject.toml", "README.md", "src"}, (
        f"the image installs the service alone, from its wheel: it copies {sorted(sources)}"
    )
    assert not re.search(r"apt-get install|gcc|build-essential", final), "no build tools in the final stage"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*", "the build context must be an allow-list: everything out, then what is needed"
    for needed in ("!pyproject.toml", "!README.md", "!src/", "!deploy/docker/requirements.txt"):
        assert needed in lines, f".dockerignore must let {needed[1:]} into the build context"
    let_in = [line for line in lines if line.startswith("!")]
    for kept_out in ("tools", "tests"):
        assert not [line for line in let_in if line[1:].startswith(kept_out)], f"{kept_out}/ must stay out"


def test_requirements_pin_every_runtime_dependency() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        assert len(requirement.specifier) == 1, f"{line!r} is not pinned"
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line!r} is not pinned with =="
        pins[canonicalize_name(requirement.name)] = specifier.version
    assert "counter-web-server" not in pins, "the project itself is installed from its wheel, not pinned"
    for dependency in dependencies:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{requirement.name} is a runtime dependency but is not pinned in {REQUIREMENTS}: "
            "run deploy/scripts/freeze-requirements.sh"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{REQUIREMENTS} pins {name}=={pins[name]}, outside {requirement.specifier} from pyproject.toml: "
            "run deploy/scripts/freeze-requirements.sh"
        )


# --------------------------------------------------------------------------- workflows


def workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def test_workflows_are_actionlint_clean() -> None:
    tool("shellcheck")  # actionlint checks the `run:` scripts with it
    result = run(tool("actionlint"), *workflow_files())
    assert result.returncode == 0, f"actionlint found problems:\n{output_of(result)}"


def test_actionlint_fails_on_an_undefined_job_output(tmp_path: Path) -> None:
    workflow = WORKFLOWS / "ci-cd.yml"
    reference = "needs.determine-environment-and-tag.outputs.image_tag"
    text = workflow.read_text()
    assert reference in text
    broken = tmp_path / ".github" / "workflows" / "ci-cd.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(reference, "needs.determine-environment-and-tag.outputs.image_tga", 1))
    result = run(tool("actionlint"), broken, cwd=tmp_path)
    assert result.returncode != 0, f"actionlint accepted an undefined job output:\n{output_of(result)}"
    assert "image_tga" in result.stdout, output_of(result)


def test_pipeline_has_the_jobs_and_guards_it_needs() -> None:
    workflow: dict[Any, Any] = load_yaml(WORKFLOWS / "ci-cd.yml")
    # PyYAML (YAML 1.1) reads the `on:` key as the boolean True.
    trigger = workflow.get("on", workflow.get(True))
    assert trigger == {"push": {"branches": ["**"], "tags": ["**"]}}
    assert workflow["permissions"] == {}, "least privilege: no default permissions"
    jobs = workflow["jobs"]
    expected_jobs = {
        "determine-environment-and-tag",
        "lint",
        "test",
        "e2e-kind",
        "build-and-push",
        "package-chart",
        "deploy",
    }
    assert expected_jobs <= set(jobs)
    for name, job in jobs.items():
        assert "permissions" in job, f"job {name} must declare its permissions"
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@v\d+\.\d+\.\d+$", step["uses"]), f"{name}: {step['uses']} is not pinned"
    deploy = jobs["deploy"]
    assert deploy["environment"]["name"] == "${{ needs.determine-environment-and-tag.outputs.environment }}"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "environment" in deploy["concurrency"]["group"]
    assert deploy["if"] == "needs.determine-environment-and-tag.outputs.deploy == 'true'"
    assert jobs["build-and-push"]["permissions"] == {"contents": "read", "packages": "write"}
    text = (WORKFLOWS / "ci-cd.yml").read_text()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "EKS_CLUSTER_NAME"):
        assert name in text, f"the deploy job must use {name}"
    assert "type=gha" in text, "Buildx layer caching"


# --------------------------------------------------------------------------- shell scripts


def shell_scripts() -> list[Path]:
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert scripts, f"no shell script in {SCRIPTS}"
    return scripts


def test_shell_scripts_are_shellcheck_clean() -> None:
    result = run(tool("shellcheck"), "--external-sources", *shell_scripts())
    assert result.returncode == 0, f"shellcheck found problems:\n{output_of(result)}"


def test_shell_scripts_are_strict_and_executable() -> None:
    for script in shell_scripts():
        if script.name == "lib.sh":  # sourced, not run
            continue
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), f"{script.name}: bash shebang expected"
        assert "set -euo pipefail" in text or script.name == "kind-diagnostics.sh", (
            f"{script.name}: not strict"
        )
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_shellcheck_fails_on_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\ndir=$1\nrm -rf $dir/*\nif [ $dir == "" ]; then echo empty; fi\n')
    result = run(tool("shellcheck"), bad)
    assert result.returncode != 0, f"shellcheck accepted an unquoted variable:\n{output_of(result)}"
    assert "SC2086" in result.stdout, output_of(result)


def test_yaml_files_are_yamllint_clean() -> None:
    config = (
        "{extends: default, rules: {line-length: {max: 140}, truthy: {check-keys: false},"
        " document-start: disable}}"
    )
    targets = [*workflow_files(), *VALUES_FILES.values(), CHART / "Chart.yaml", ROOT / "deploy/kind"]
    result = run(tool("yamllint"), "--strict", "-d", config, *targets)
    assert result.returncode == 0, f"yamllint found problems:\n{output_of(result)}"


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


def test_role_allows_only_get_update_patch_on_the_one_store_object() -> None:
    documents = manifests(CHART, {})
    configmap = one(documents, "ConfigMap")
    assert one(documents, "Role")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [configmap["metadata"]["name"]],
            "verbs": ["get", "update", "patch"],
        }
    ]
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
    assert re.fullmatch(r"python:[\d.]+-slim-(bookworm|trixie)", final_base), final_base


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


# --------------------------------------------------------------------------- Helm release lifecycle
#
# The real helm client against the Kubernetes API emulator (ConfigMaps only, so the release is a
# copy of the chart with just the counter ConfigMap, and Helm keeps its records in ConfigMaps).
# It checks what the chart promises: no install, upgrade, rollback, uninstall or re-install loses
# a count written by the service.

STORE = "counter-store"


def find_helm() -> Path | None:
    """A Helm 3 client, the one the pipeline deploys with: $HELM, .tools/helm or helm on PATH."""
    for candidate in (os.environ.get("HELM"), ROOT / ".tools" / "helm", shutil.which("helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [str(candidate), "version", "--short"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            ).stdout
            if version.startswith("v3."):
                return Path(candidate)
    return None


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for a fresh Kubernetes API emulator on 127.0.0.1."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [tool("counter-kube-emulator"), "--port", "0", "--kubeconfig", kubeconfig, "--namespace", NAMESPACE],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"the emulator did not start: {url!r}"
        yield kubeconfig
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


class Release:
    def __init__(self, helm_bin: Path, kubeconfig: Path, home: Path) -> None:
        self.helm_bin = helm_bin
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_DRIVER": "configmap",
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def helm(self, *args: str | Path) -> None:
        self._run([self.helm_bin, *args, "--namespace", NAMESPACE])

    def kubectl(self, *args: str) -> str:
        return self._run(["kubectl", *args, "--namespace", NAMESPACE])

    def _run(self, command: list[str | Path]) -> str:
        result = subprocess.run(
            [str(part) for part in command],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{output_of(result)}"
        return result.stdout

    def store(self) -> dict[str, Any] | None:
        listed = json.loads(self.kubectl("get", "configmaps", "--output", "json"))
        for item in listed["items"]:
            if item["metadata"]["name"] == STORE:
                found: dict[str, Any] = item
                return found
        return None

    def write_counts(self, counts: dict[str, str]) -> None:
        # What the service does: a JSON patch that adds its keys, creating `data` when absent.
        patch = [{"op": "add", "path": "/data", "value": counts}]
        self.kubectl("patch", "configmap", STORE, "--type", "json", "--patch", json.dumps(patch))


def store_only_chart(tmp_path: Path, name: str, configmap_suffix: str = "") -> Path:
    chart = tmp_path / name / "counter"
    shutil.copytree(CHART, chart)
    for template in (chart / "templates").rglob("*"):
        if template.is_file() and template.name not in {"_helpers.tpl", "configmap.yaml"}:
            template.unlink()
    if configmap_suffix:
        configmap = chart / "templates" / "configmap.yaml"
        text = configmap.read_text()
        configmap.write_text(text.replace("\n{{- end }}", f"\n{configmap_suffix}{{{{- end }}}}"))
    return chart


def lifecycle_losses(release: Release, first: Path, second: Path) -> list[str]:
    """Install `first`, let the service write, then upgrade to `second`, roll back, uninstall and
    install again; return every moment at which the counts were not the ones written."""
    counts = {"default": '{"count": 41}', "visits": '{"count": 7}'}
    losses = []

    def check(moment: str) -> None:
        store = release.store()
        if store is None:
            losses.append(f"after {moment}: the ConfigMap {STORE} is gone")
        elif store.get("data") != counts:
            losses.append(f"after {moment}: the counts are {store.get('data')}, expected {counts}")

    release.helm("install", "counter", first)
    release.write_counts(counts)
    release.helm("upgrade", "counter", second, "--set", "image.tag=2.0.0")
    check("helm upgrade")
    release.helm("rollback", "counter", "1")
    check("helm rollback")
    release.helm("uninstall", "counter")
    check("helm uninstall")
    release.helm("install", "counter", second)
    check("helm install over the kept ConfigMap")
    return losses


@pytest.fixture
def release(tmp_path: Path, kube_api: Path) -> Release:
    helm_bin = find_helm()
    if helm_bin is None:
        pytest.skip("no Helm 3 client: run deploy/scripts/install-helm.sh (or set HELM)")
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl on PATH")
    return Release(helm_bin, kube_api, tmp_path / "helm-home")


def test_helm_upgrade_rollback_uninstall_and_reinstall_keep_every_count(
    tmp_path: Path, release: Release
) -> None:
    chart = store_only_chart(tmp_path, "current")
    losses = lifecycle_losses(release, chart, chart)
    assert not losses, "\n".join(losses)
    store = release.store()
    assert store is not None
    assert store["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert store["metadata"]["annotations"]["meta.helm.sh/release-name"] == "counter", (
        "adopted by the release"
    )


def test_lifecycle_check_catches_a_chart_that_once_rendered_empty_data(
    tmp_path: Path, release: Release
) -> None:
    # The twin: a revision whose template said `data: {}`, followed by one without it. Helm's
    # 3-way merge then sees `data` removed from the chart and deletes it, with every count.
    with_empty_data = store_only_chart(tmp_path, "empty-data", configmap_suffix="data: {}\n")
    assert "data: {}" in render(with_empty_data, {})["counter/templates/configmap.yaml"]
    losses = lifecycle_losses(release, with_empty_data, store_only_chart(tmp_path, "current"))
    assert any("after helm upgrade" in loss for loss in losses), losses or "no count was lost"
