"""The emulated Kubernetes API as pytest fixtures: `kube_api` and `kube_kubeconfig`.

Not a pytest plugin that loads itself: a test suite imports the fixtures where it wants them, so
that only the tests that use the emulator load it. In a `conftest.py`:

    from kube_emulator.testing import kube_api, kube_kubeconfig

    __all__ = ["kube_api", "kube_kubeconfig"]

Needs pytest (the `testing` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_emulator.emulator import KubeApiEmulator

__all__ = ["kube_api", "kube_kubeconfig"]


@pytest.fixture
def kube_api() -> Iterator[KubeApiEmulator]:
    """A fresh emulated API server on a free port of 127.0.0.1, stopped after the test."""
    with KubeApiEmulator() as api:
        yield api


@pytest.fixture
def kube_kubeconfig(kube_api: KubeApiEmulator, tmp_path: Path) -> Path:
    """A kubeconfig for `kube_api`, for kubectl and `kubernetes.config.new_client_from_config`."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")
