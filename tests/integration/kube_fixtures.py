"""The emulated Kubernetes API as pytest fixtures.

Use them from a test module:

    pytest_plugins = ["tests.integration.kube_fixtures"]  # kube_api, kube_kubeconfig
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_emulator import KubeApiEmulator


@pytest.fixture
def kube_api() -> Iterator[KubeApiEmulator]:
    """A fresh emulated API server on a free port of 127.0.0.1, stopped after the test."""
    with KubeApiEmulator() as api:
        yield api


@pytest.fixture
def kube_kubeconfig(kube_api: KubeApiEmulator, tmp_path: Path) -> Path:
    """A kubeconfig for `kube_api`, for kubectl and `kubernetes.config.new_client_from_config`."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")
