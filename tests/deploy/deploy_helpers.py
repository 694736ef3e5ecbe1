"""What the deployment checks share: the files they check, the tools they run, the chart's
rendering and its manifests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

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
    "network-policy": {"networkPolicy": {"enabled": True}},
    "rate-limits-and-cors": {
        "rateLimit": {"perClient": "600/minute", "perCounterWrites": "50/second", "trustedProxyHops": 1},
        "cors": {
            "allowOrigins": ["https://example.org", "https://docs.example.org"],
            "allowMethods": ["GET", "POST"],
        },
    },
    "network-policy-peers-and-api-cidrs": {
        "networkPolicy": {
            "enabled": True,
            "ingress": {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/16"}},
                ]
            },
            "egress": {"kubernetesApi": {"cidrs": ["172.20.0.1/32", "10.0.12.0/24"], "ports": [443]}},
        }
    },
    "network-policy-redis": {
        "store": {"backend": "redis", "redis": {"existingSecret": "counter-redis"}},
        "networkPolicy": {
            "enabled": True,
            "egress": {
                "redis": {
                    "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}],
                    "port": 6380,
                },
                "extra": [
                    {
                        "to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}],
                        "ports": [{"port": 53, "protocol": "UDP"}],
                    }
                ],
            },
        },
    },
    "metrics-service-monitor": {
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "labels": {"release": "kube-prometheus-stack"},
                "interval": "15s",
            }
        }
    },
    "metrics-pod-annotations": {"metrics": {"podAnnotations": True}, "podAnnotations": {"team": "counters"}},
}

# Custom resources: kubernetes-validate has no schema for them; tests check their shape themselves.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}


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
        if (document.get("apiVersion"), document.get("kind")) in CUSTOM_RESOURCES:
            continue
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


def requirement_lines(text: str) -> list[tuple[str, list[str]]]:
    """(requirement, its --hash options) per entry of a pip requirements file, continuations joined."""
    entries = []
    for logical in text.replace("\\\n", " ").splitlines():
        line = logical.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = re.split(r"\s--", line, maxsplit=1)[0].strip()
        entries.append((requirement, re.findall(r"--\S+", line.removeprefix(requirement))))
    return entries
