"""Fixtures of the integration tests, for tests/integration only (a unit run never imports them):
our own redis-server on a free port, the emulated Kubernetes API for ConfigMaps, and the ConfigMap
store opened on it (or on a real cluster)."""

import pytest

# Before the import: pytest rewrites the asserts only of modules it is told about before they load.
pytest.register_assert_rewrite("tests.integration.redis_fixtures")

from kube_emulator.testing import kube_api, kube_kubeconfig  # noqa: E402
from tests.integration.configmap_fixtures import admin, api_client, cm_name, inject, kube, open_repo  # noqa: E402
from tests.integration.redis_fixtures import (  # noqa: E402
    raw_redis,
    redis_prefix,
    redis_repository,
    redis_server,
    redis_url,
)

__all__ = [
    "admin",
    "api_client",
    "cm_name",
    "inject",
    "kube",
    "kube_api",
    "kube_kubeconfig",
    "open_repo",
    "raw_redis",
    "redis_prefix",
    "redis_repository",
    "redis_server",
    "redis_url",
]
