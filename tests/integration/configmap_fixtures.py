"""Where the Kubernetes API of the ConfigMap tests is, and the fixtures that open the store on it.

By default the emulated API (`kube_emulator`: real HTTP on 127.0.0.1, driven by the official
client through a kubeconfig), one per test module. When COUNTER_TEST_KUBECONFIG names a
kubeconfig, the same tests run against that cluster (namespace COUNTER_TEST_NAMESPACE, default
"default").
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from adapters.configmap import ConfigMapCounterRepository, new_api_client, open_configmap_repository
from domain.idempotency import Idempotency
from domain.model import CounterId

REAL_KUBECONFIG = os.environ.get("COUNTER_TEST_KUBECONFIG")
NO_FAULTS_ON_A_REAL_CLUSTER = (
    "fault injection needs the emulated API; COUNTER_TEST_KUBECONFIG points at a real cluster"
)
WRITE_VERBS = ("create", "patch", "update")


@dataclass(frozen=True)
class KubeTarget:
    kubeconfig: str
    namespace: str
    emulator: Any | None  # kube_emulator.KubeApiEmulator, None on a real cluster

    def write_requests(self) -> int | None:
        """Writes the API server received so far (None on a real cluster: not ours to count)."""
        if self.emulator is None:
            return None
        requests: dict[str, int] = self.emulator.stats()["requests"]
        return sum(requests.get(verb, 0) for verb in WRITE_VERBS)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeTarget]:
    if REAL_KUBECONFIG:
        yield KubeTarget(REAL_KUBECONFIG, os.environ.get("COUNTER_TEST_NAMESPACE", "default"), None)
        return
    from kube_emulator import KubeApiEmulator

    with KubeApiEmulator(write_delay=0.0) as api:
        path = api.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        yield KubeTarget(str(path), "default", api)


@pytest.fixture(scope="module")
def admin(kube: KubeTarget) -> Iterator[Any]:
    """A plain synchronous client, to seed and inspect ConfigMaps behind the store's back."""
    api_client = new_api_client(kube.kubeconfig)
    yield k8s_client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def cm_name(kube: KubeTarget, admin: Any) -> Iterator[str]:
    name = f"counter-test-{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(ApiException):
        admin.delete_namespaced_config_map(name, kube.namespace)


OpenRepo = Callable[..., Awaitable[ConfigMapCounterRepository]]


@pytest.fixture
async def open_repo(kube: KubeTarget) -> AsyncIterator[OpenRepo]:
    """Open repositories through the Resource generator; all are closed at the end of the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def opener(name: str, **settings: Any) -> ConfigMapCounterRepository:
            resource = contextlib.asynccontextmanager(open_configmap_repository)
            return await stack.enter_async_context(
                resource(name, kube.namespace, kube.kubeconfig, **settings)
            )

        yield opener


@pytest.fixture
def inject(kube: KubeTarget) -> Iterator[Callable[..., None]]:
    """Set the emulator's faults for this test (skipped on a real cluster)."""
    if kube.emulator is None:
        pytest.skip(NO_FAULTS_ON_A_REAL_CLUSTER)
    from kube_emulator import Faults

    emulator = kube.emulator
    yield lambda **faults: emulator.set_faults(Faults(**faults))
    emulator.clear_faults()


def seed(admin: Any, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    admin.create_namespaced_config_map(namespace, body)


def stored_data(admin: Any, namespace: str, name: str) -> dict[str, str]:
    data: dict[str, str] = admin.read_namespaced_config_map(name, namespace).data or {}
    return data


def emulator_stats(kube: KubeTarget) -> dict[str, Any]:
    assert kube.emulator is not None
    stats: dict[str, Any] = kube.emulator.stats()
    return stats


@pytest.fixture
async def api_client(kube: KubeTarget) -> AsyncIterator[Any]:
    """The official client's ApiClient on the target, for stores built on a wrapped API."""
    client = new_api_client(kube.kubeconfig)
    yield client
    client.close()


def keyed(key: str, name: str = "c", by: int = 1, ttl: float = 3600.0) -> Idempotency:
    return Idempotency.for_increment(key, CounterId.default(name), by, ttl)
