"""The emulator's own tests: its fixtures, as any suite that uses it would load them, and the
clients the tests drive it with."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_helpers import KUBECTL, Kubectl, Raw
from kubernetes import client, config

from kube_emulator import KubeApiEmulator
from kube_emulator.testing import kube_api, kube_kubeconfig

__all__ = ["kube_api", "kube_kubeconfig"]


@pytest.fixture
def raw(kube_api: KubeApiEmulator) -> Iterator[Raw]:
    connection = Raw(kube_api.port)
    yield connection
    connection.close()


@pytest.fixture
def core(kube_kubeconfig: Path) -> Iterator[Any]:
    """`CoreV1Api` built the way the adapter builds it: from the kubeconfig file."""
    api_client = config.new_client_from_config(config_file=str(kube_kubeconfig))  # type: ignore[no-untyped-call]
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def kubectl(kube_kubeconfig: Path, tmp_path: Path) -> Kubectl:
    assert KUBECTL is not None

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            KUBECTL,
            "--kubeconfig",
            str(kube_kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert (result.returncode == 0) == ok, (
            f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    return run
