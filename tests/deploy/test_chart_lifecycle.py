"""The life of a release: the real helm client upgrades, rolls back, uninstalls and reinstalls
the chart's counter ConfigMap on the Kubernetes API emulator without losing a count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import (
    CHART,
    NAMESPACE,
    ROOT,
    output_of,
    render,
    tool,
)

pytestmark = pytest.mark.integration


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
