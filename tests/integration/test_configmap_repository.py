"""The ConfigMap store against a Kubernetes API: the emulated one, or a real cluster.

By default every test runs against `kube_emulator` (real HTTP on 127.0.0.1, driven by the official
client through a kubeconfig). When COUNTER_TEST_KUBECONFIG names a kubeconfig, the same tests run
against that cluster (namespace COUNTER_TEST_NAMESPACE, default "default"); the tests that need
injected faults are skipped there.

The contract, the stored format, creation races, coalescing, readiness; the Idempotency-Key
table, faults and a full ConfigMap have modules of their own (test_configmap_*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException, ForbiddenException

from adapters.configmap import (
    IDEMPOTENCY_KEY,
    ConfigMapCounterRepository,
    new_api_client,
    open_configmap_repository,
    resolve_namespace,
)
from adapters.configmap import api as configmap_api
from domain.errors import (
    CounterOverflowError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import INT64_MAX, CounterId
from tests.contract.repository_contract import Reopen, RepositoryContract
from tests.integration.configmap_fixtures import (
    KubeTarget,
    OpenRepo,
    seed,
    stored_data,
)
from tests.integration.server_process import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# --- the contract -----------------------------------------------------------------------------


class TestConfigMapContract(RepositoryContract):
    @pytest.fixture
    async def repository(self, open_repo: OpenRepo, cm_name: str) -> ConfigMapCounterRepository:
        return await open_repo(cm_name)

    @pytest.fixture
    def reopen(self, open_repo: OpenRepo, cm_name: str) -> Reopen:
        async def second_instance() -> ConfigMapCounterRepository:
            return await open_repo(cm_name)

        return second_instance


# One read and one write per operation loses most races when 200 run at once: the same promises,
# kept with bounds wide enough to win them all.
UNCOALESCED: dict[str, Any] = {"coalesce": False, "max_attempts": 200, "max_retry_seconds": 60.0}


class TestConfigMapContractWithoutCoalescing(RepositoryContract):
    """COUNTER_CONFIGMAP_COALESCE=false is a user-facing setting: it keeps every promise too."""

    @pytest.fixture
    async def repository(self, open_repo: OpenRepo, cm_name: str) -> ConfigMapCounterRepository:
        repository = await open_repo(cm_name, **UNCOALESCED)
        assert not repository.coalesce
        return repository

    @pytest.fixture
    def reopen(self, open_repo: OpenRepo, cm_name: str) -> Reopen:
        async def second_instance() -> ConfigMapCounterRepository:
            return await open_repo(cm_name, **UNCOALESCED)

        return second_instance


# --- format -----------------------------------------------------------------------------------


async def test_missing_configmap_is_ready_and_created_on_the_first_write(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    await repository.ping()
    assert (await repository.get(CounterId.default("c"))).count == 0
    assert (await repository.list("default", None, 10)).counters == []
    with pytest.raises(ApiException) as missing:
        admin.read_namespaced_config_map(cm_name, kube.namespace)
    assert missing.value.status == 404

    assert (await repository.increment(CounterId.default("c"), 2)).counter.count == 2
    data = stored_data(admin, kube.namespace, cm_name)
    assert json.loads(data["c"])["count"] == 2


async def test_each_counter_is_one_readable_data_key(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    repository = await open_repo(cm_name)
    await repository.increment(CounterId.default("pageviews"), 41)
    await repository.increment(CounterId.default("pageviews"), 1)
    await repository.set(CounterId.default("downloads"), 7)
    process = await asyncio.create_subprocess_exec(
        kubectl,
        "--kubeconfig",
        kube.kubeconfig,
        "--namespace",
        kube.namespace,
        "get",
        "configmap",
        cm_name,
        "-o",
        "yaml",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    data = yaml.safe_load(out)["data"]
    pageviews = json.loads(data["pageviews"])
    assert pageviews["count"] == 42
    assert set(pageviews) == {"count", "created_at", "updated_at", "version"}
    assert pageviews["version"] == 2  # one per change: two increments
    assert json.loads(data["downloads"])["count"] == 7
    # Reserved bookkeeping keys start with "_", which no counter name can.
    assert {k for k in data if not k[0].isalnum()} <= {"_writers", IDEMPOTENCY_KEY}


async def test_unknown_fields_are_kept(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 5, "owner": "team-a"}'})
    repository = await open_repo(cm_name)
    counter = await repository.get(CounterId.default("c"))
    assert (counter.count, counter.created_at) == (5, None)
    assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 6
    stored = json.loads(stored_data(admin, kube.namespace, cm_name)["c"])
    assert stored["count"] == 6
    assert stored["owner"] == "team-a"


@pytest.mark.parametrize(
    "raw",
    [
        '{"count": "x"}',
        "not json",
        '{"count": 1.5}',
        "1.5",
        f'{{"count": {INT64_MAX + 1}}}',
        '{"count": true}',
        '{"count": NaN}',
        '{"total": 3}',
        '{"count": 1, "created_at": "yesterday"}',
        "[]",
    ],
)
async def test_unreadable_data_is_reported_and_never_overwritten(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any, raw: str
) -> None:
    seed(admin, kube.namespace, cm_name, {"bad": raw, "good": '{"count": 1}'})
    repository = await open_repo(cm_name)
    with pytest.raises(StoreCorruptedError, match="'bad'"):
        await repository.get(CounterId.default("bad"))
    # In one batch: the op on the unreadable key fails, the other is applied.
    bad, good = await asyncio.gather(
        repository.increment(CounterId.default("bad"), 1),
        repository.increment(CounterId.default("good"), 1),
        return_exceptions=True,
    )
    assert isinstance(bad, StoreCorruptedError)
    assert not isinstance(good, BaseException)
    assert good.counter.count == 2
    for refused in (
        repository.set(CounterId.default("bad"), 0),
        repository.delete(CounterId.default("bad")),
        repository.list("default", None, 10),
    ):
        with pytest.raises(StoreCorruptedError):
            await refused
    data = stored_data(admin, kube.namespace, cm_name)
    assert data["bad"] == raw
    assert json.loads(data["good"])["count"] == 2


async def test_unreadable_idempotency_records_are_left_alone(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    seed(admin, kube.namespace, cm_name, {IDEMPOTENCY_KEY: "{broken"})
    repository = await open_repo(cm_name)
    with pytest.raises(StoreCorruptedError, match=IDEMPOTENCY_KEY):
        await repository.increment(
            CounterId.default("c"), 1, Idempotency.for_increment("k", CounterId.default("c"), 1, 60.0)
        )
    assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 1
    assert stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY] == "{broken"


# --- creation races ---------------------------------------------------------------------------


class CreateLosesTheRace:
    """A CoreV1Api whose first create finds that another writer has just created the ConfigMap."""

    def __init__(self, api: Any, admin: Any, namespace: str) -> None:
        self._api = api
        self._admin = admin
        self._namespace = namespace
        self.raced = False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._api, attribute)

    def create_namespaced_config_map(self, namespace: str, body: Any, **options: Any) -> Any:
        if not self.raced:
            self.raced = True
            seed(self._admin, namespace, body["metadata"]["name"], {"c": '{"count": 10}'})
        return self._api.create_namespaced_config_map(namespace, body, **options)


async def test_a_create_that_loses_the_race_retries_as_an_update(
    cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    api_client = new_api_client(kube.kubeconfig)
    api = CreateLosesTheRace(k8s_client.CoreV1Api(api_client), admin, kube.namespace)
    repository = ConfigMapCounterRepository(api, cm_name, kube.namespace)
    try:
        assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 11
        assert api.raced
        assert repository.conflicts == 1  # AlreadyExists, then a read and a patch
    finally:
        await repository.aclose()
        api_client.close()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 11


async def test_concurrent_creators_all_count(open_repo: OpenRepo, cm_name: str) -> None:
    repositories = [await open_repo(cm_name) for _ in range(5)]
    results = await asyncio.gather(
        *(r.increment(CounterId.default("c"), 1) for r in repositories for _ in range(20))
    )
    values = [r.counter.count for r in results]
    assert sorted(values) == list(range(1, 101))
    assert (await repositories[0].get(CounterId.default("c"))).count == 100


# --- coalescing -------------------------------------------------------------------------------


async def test_coalescing_turns_many_increments_into_few_writes(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name)
    await repository.increment(CounterId.default("warm-up"), 1)
    writes_before = repository.api_writes
    results = await asyncio.gather(*(repository.increment(CounterId.default("hot"), 1) for _ in range(200)))
    writes = repository.api_writes - writes_before
    assert sorted(r.counter.count for r in results) == list(range(1, 201))
    assert writes <= 200 / 4, f"{writes} API writes for 200 increments"


async def test_without_coalescing_every_increment_writes(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name, coalesce=False, max_attempts=100, max_retry_seconds=30.0)
    results = await asyncio.gather(*(repository.increment(CounterId.default("hot"), 1) for _ in range(20)))
    assert sorted(r.counter.count for r in results) == list(range(1, 21))
    assert repository.api_writes >= 20


async def test_overflow_in_a_batch_fails_only_that_increment(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name)
    await repository.set(CounterId.default("big"), INT64_MAX - 2)
    results = await asyncio.gather(
        *(repository.increment(CounterId.default("big"), 1) for _ in range(4)), return_exceptions=True
    )
    assert [r.counter.count for r in results if not isinstance(r, BaseException)] == [
        INT64_MAX - 1,
        INT64_MAX,
    ]
    assert sum(isinstance(r, CounterOverflowError) for r in results) == 2
    assert (await repository.get(CounterId.default("big"))).count == INT64_MAX


# --- readiness and errors ---------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "nowhere", "cluster": {"server": server}}],
        "users": [{"name": "nobody", "user": {"token": "x"}}],
        "contexts": [
            {"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody", "namespace": "team-a"}}
        ],
        "current-context": "nowhere",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


async def test_an_api_that_is_down_is_not_ready_and_counts_nothing(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    resource = contextlib.asynccontextmanager(open_configmap_repository)
    async with resource("c", "default", kubeconfig, request_timeout=1.0, max_retry_seconds=0.5) as repository:
        with pytest.raises(StoreUnavailableError, match="cannot be reached"):
            await repository.ping()
        with pytest.raises(StoreUnavailableError, match="nothing was counted"):
            await repository.increment(CounterId.default("c"), 1)
        with pytest.raises(StoreUnavailableError):
            await repository.get(CounterId.default("c"))


@pytest.fixture
def wrong_token_kubeconfig(kube: KubeTarget, tmp_path: Path) -> str:
    if kube.emulator is None:
        pytest.skip("needs the emulated API, whose token is known")
    config = kube.emulator.kubeconfig(kube.namespace)
    config["users"][0]["user"] = {"token": "wrong"}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


async def test_rejected_credentials_are_not_ready(kube: KubeTarget, wrong_token_kubeconfig: str) -> None:
    resource = contextlib.asynccontextmanager(open_configmap_repository)
    async with resource("c", kube.namespace, wrong_token_kubeconfig) as repository:
        with pytest.raises(StoreUnavailableError, match="refused the credentials"):
            await repository.ping()
        with pytest.raises(StoreUnavailableError, match="refused the credentials"):
            await repository.increment(CounterId.default("c"), 1)


class ForbiddenApi:
    """A CoreV1Api for a service account without the RBAC permissions."""

    def _refuse(self, *args: Any, **options: Any) -> Any:
        raise ForbiddenException(status=403, reason="Forbidden")

    read_namespaced_config_map = _refuse
    create_namespaced_config_map = _refuse
    patch_namespaced_config_map = _refuse


async def test_forbidden_is_not_ready_and_names_the_permission() -> None:
    repository = ConfigMapCounterRepository(ForbiddenApi(), "counters", "team-a")
    try:
        with pytest.raises(StoreUnavailableError, match="may not get configmaps in namespace team-a"):
            await repository.ping()
        with pytest.raises(StoreUnavailableError, match="RBAC"):
            await repository.increment(CounterId.default("c"), 1)
    finally:
        await repository.aclose()


def test_namespace_comes_from_the_argument_the_pod_then_the_kubeconfig_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    service_account = tmp_path / "namespace"
    monkeypatch.setattr(configmap_api, "SERVICE_ACCOUNT_NAMESPACE", service_account)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    assert resolve_namespace("explicit", kubeconfig) == "explicit"
    assert resolve_namespace(None, kubeconfig) == "team-a"
    assert resolve_namespace(None, str(tmp_path / "missing")) == "default"
    service_account.write_text("pods-own\n", encoding="utf-8")
    assert resolve_namespace(None, kubeconfig) == "pods-own"
