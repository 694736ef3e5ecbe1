"""The emulated Kubernetes API with the real kubectl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kube_helpers import CONFLICT_TEXT, Kubectl, configmap, needs_kubectl

pytestmark = pytest.mark.integration


@needs_kubectl
def test_kubectl_creates_gets_and_lists_across_namespaces(kubectl: Kubectl) -> None:
    # `create configmap` sends a protobuf body, like every typed client-go client
    assert (
        kubectl("create", "configmap", "counter", "--from-literal=a=b").stdout.strip()
        == "configmap/counter created"
    )
    document = yaml.safe_load(kubectl("get", "configmap", "counter", "-o", "yaml").stdout)
    assert document["data"] == {"a": "b"}
    assert document["metadata"]["resourceVersion"]
    kubectl("-n", "team-a", "create", "configmap", "other", "--from-literal=x=y", "--from-literal=z=w")
    lines = [line.split() for line in kubectl("get", "configmaps", "-A").stdout.splitlines()]
    assert lines[0] == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [line[:3] for line in lines[1:]] == [["default", "counter", "1"], ["team-a", "other", "2"]]


@needs_kubectl
def test_kubectl_create_from_file_then_a_stale_replace_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "counter.yaml"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "0"})), encoding="utf-8")
    kubectl("create", "-f", str(manifest))
    stale = tmp_path / "stale.yaml"
    stale.write_text(kubectl("get", "configmap", "counter", "-o", "yaml").stdout, encoding="utf-8")
    kubectl("patch", "configmap", "counter", "--type", "merge", "-p", '{"data":{"default":"1"}}')
    refused = kubectl("replace", "-f", str(stale), ok=False)
    assert "Error from server (Conflict)" in refused.stderr
    assert CONFLICT_TEXT in refused.stderr
    kubectl("replace", "-f", str(manifest))  # no resourceVersion: unconditional
    assert kubectl("get", "configmap", "counter", "-o", "jsonpath={.data.default}").stdout == "0"


@needs_kubectl
def test_kubectl_patches_merge_and_json_with_test(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "counter", "--from-literal=default=1")
    kubectl("patch", "configmap", "counter", "--type", "merge", "-p", '{"data":{"default":"2","b":"x"}}')
    failing = json.dumps(
        [
            {"op": "test", "path": "/data/default", "value": "1"},
            {"op": "replace", "path": "/data/default", "value": "3"},
        ]
    )
    refused = kubectl("patch", "configmap", "counter", "--type", "json", "-p", failing, ok=False)
    assert "testing value /data/default failed: test failed" in refused.stderr
    passing = failing.replace('"value": "1"', '"value": "2"')
    kubectl("patch", "configmap", "counter", "--type", "json", "-p", passing)
    data = json.loads(kubectl("get", "configmap", "counter", "-o", "jsonpath={.data}").stdout)
    assert data == {"default": "3", "b": "x"}


@needs_kubectl
def test_kubectl_deletes(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "counter", "--from-literal=a=b")
    assert kubectl("delete", "configmap", "counter").stdout.strip() == 'configmap "counter" deleted'
    missing = kubectl("get", "configmap", "counter", ok=False)
    assert 'Error from server (NotFound): configmaps "counter" not found' in missing.stderr


@needs_kubectl
def test_kubectl_apply_works_and_server_side_apply_is_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "counter.yaml"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "0"})), encoding="utf-8")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/counter created"
    manifest.write_text(yaml.safe_dump(configmap("counter", {"default": "1"})), encoding="utf-8")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/counter configured"
    refused = kubectl("apply", "--server-side", "-f", str(manifest), ok=False)
    assert "Server-side apply not available" in refused.stderr
