"""The ConfigMap store against a Kubernetes API: the emulated one, or a real cluster.

By default every test runs against `kube_emulator` (real HTTP on 127.0.0.1, driven by the official
client through a kubeconfig). When COUNTER_TEST_KUBECONFIG names a kubeconfig, the same tests run
against that cluster (namespace COUNTER_TEST_NAMESPACE, default "default"); the tests that need
injected faults are skipped there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException, ForbiddenException

from adapters.configmap import (
    IDEMPOTENCY_KEY,
    ConfigMapCounterRepository,
    IdempotencyTableFullError,
    StoreFullError,
    new_api_client,
    open_configmap_repository,
    resolve_namespace,
    room,
)
from adapters.configmap import api as configmap_api
from domain.errors import (
    CounterOverflowError,
    OutcomeUnknownError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import INT64_MAX
from tests.contract.repository_contract import Reopen, RepositoryContract
from tests.integration.server_process import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REAL_KUBECONFIG = os.environ.get("COUNTER_TEST_KUBECONFIG")
NO_FAULTS_ON_A_REAL_CLUSTER = (
    "fault injection needs the emulated API; COUNTER_TEST_KUBECONFIG points at a real cluster"
)


# --- where the API is -------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeTarget:
    kubeconfig: str
    namespace: str
    emulator: Any | None  # kube_emulator.KubeApiEmulator, None on a real cluster


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
    assert (await repository.get("c")).count == 0
    assert (await repository.list(None, 10)).counters == []
    with pytest.raises(ApiException) as missing:
        admin.read_namespaced_config_map(cm_name, kube.namespace)
    assert missing.value.status == 404

    assert (await repository.increment("c", 2)).counter.count == 2
    data = stored_data(admin, kube.namespace, cm_name)
    assert json.loads(data["c"])["count"] == 2


async def test_each_counter_is_one_readable_data_key(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    repository = await open_repo(cm_name)
    await repository.increment("pageviews", 41)
    await repository.increment("pageviews", 1)
    await repository.set("downloads", 7)
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
    assert set(pageviews) == {"count", "created_at", "updated_at"}
    assert json.loads(data["downloads"])["count"] == 7
    # Reserved bookkeeping keys start with "_", which no counter name can.
    assert {k for k in data if not k[0].isalnum()} <= {"_writers", IDEMPOTENCY_KEY}


async def test_unknown_fields_are_kept(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 5, "owner": "team-a"}'})
    repository = await open_repo(cm_name)
    counter = await repository.get("c")
    assert (counter.count, counter.created_at) == (5, None)
    assert (await repository.increment("c", 1)).counter.count == 6
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
        await repository.get("bad")
    # In one batch: the op on the unreadable key fails, the other is applied.
    bad, good = await asyncio.gather(
        repository.increment("bad", 1), repository.increment("good", 1), return_exceptions=True
    )
    assert isinstance(bad, StoreCorruptedError)
    assert not isinstance(good, BaseException)
    assert good.counter.count == 2
    for refused in (repository.set("bad", 0), repository.delete("bad"), repository.list(None, 10)):
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
        await repository.increment("c", 1, Idempotency.for_increment("k", "c", 1, 60.0))
    assert (await repository.increment("c", 1)).counter.count == 1
    assert stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY] == "{broken"


def keyed(key: str, name: str = "c", by: int = 1, ttl: float = 3600.0) -> Idempotency:
    return Idempotency.for_increment(key, name, by, ttl)


def stored_records(admin: Any, namespace: str, name: str) -> dict[str, Any]:
    records: dict[str, Any] = json.loads(stored_data(admin, namespace, name).get(IDEMPOTENCY_KEY, "{}"))
    return records


def old_record(fingerprint: str, expires_at: str) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "count": 1,
        "updated_at": "2025-01-01T00:00:00.000Z",
        "expires_at": expires_at,
    }


async def test_a_key_is_kept_for_its_ttl_whatever_other_clients_send(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    k0 = keyed("K0")
    assert not (await repository.increment("c", 1, k0)).replayed
    others = [keyed(f"other-{i}", "d") for i in range(1200)]
    results = await asyncio.gather(*(repository.increment("d", 1, key) for key in others))
    assert not any(r.replayed for r in results)
    again = await repository.increment("c", 1, k0)
    assert (again.replayed, again.counter.count) == (True, 1)  # replayed, not counted again
    assert (await repository.get("c")).count == 1
    records = stored_records(admin, kube.namespace, cm_name)
    assert len(records) == 1201
    assert k0.record_key in records


async def test_expired_records_are_dropped_and_live_ones_kept(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    live, gone = keyed("live"), keyed("gone")
    table = {
        live.record_key: old_record(live.fingerprint, "2999-01-01T00:00:00.000Z"),
        gone.record_key: old_record(gone.fingerprint, "2000-01-01T00:00:00.000Z"),
    }
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(table)})
    repository = await open_repo(cm_name)
    fresh = keyed("fresh")
    assert not (await repository.increment("c", 1, fresh)).replayed
    assert set(stored_records(admin, kube.namespace, cm_name)) == {live.record_key, fresh.record_key}
    assert (await repository.increment("c", 1, live)).replayed
    expired = await repository.increment("c", 1, gone)  # expired: the domain says apply it again
    assert (expired.replayed, expired.counter.count) == (False, 3)


async def test_a_full_idempotency_table_refuses_new_keys_and_forgets_none(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    await repository.set("c", 0)
    await repository.set("d", 0)
    k0 = keyed("K0")
    await repository.increment("c", 1, k0)
    keys = [keyed(f"key-{i}") for i in range(5000)]  # more than 1 MiB of records
    results = await asyncio.gather(
        *(repository.increment("c", 1, key) for key in keys), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(accepted) > 2000, "most of 1 MiB holds records"
    assert refused, "5000 records do not fit in 1 MiB"
    for error in refused:
        assert isinstance(error, IdempotencyTableFullError)
        assert "Idempotency-Key table" in str(error)
        assert "is full until records expire" in str(error)
        # The oldest record expires in about an hour (TTL 3600 s): come back then, not in 1 s.
        assert 60 < error.retry_after <= 3600
    count = 1 + len(accepted)
    assert (await repository.get("c")).count == count  # the refused ones changed nothing
    writes = repository.api_writes
    with pytest.raises(StoreUnavailableError, match="is full until records expire"):
        await repository.increment("d", 1, keyed("one more", "d"))
    assert repository.api_writes == writes, "refused before writing"
    # Nothing was forgotten: the first key and every accepted one are replayed.
    assert (await repository.increment("c", 1, k0)).replayed
    assert all([(await repository.increment("c", 1, key)).replayed for key in keys[:50]])
    # Unkeyed increments and existing counters go on.
    assert (await repository.increment("c", 1)).counter.count == count + 1
    assert (await repository.increment("d", 5)).counter.count == 5
    assert len(stored_records(admin, kube.namespace, cm_name)) == 1 + len(accepted)


async def test_expired_records_make_room_in_a_full_table(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    keys = [keyed(f"old-{i}") for i in range(3500)]
    table = {k.record_key: old_record(k.fingerprint, "2000-01-01T00:00:00.000Z") for k in keys}
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(table)})
    repository = await open_repo(cm_name)
    fresh = keyed("fresh")
    assert not (await repository.increment("c", 1, fresh)).replayed
    assert list(stored_records(admin, kube.namespace, cm_name)) == [fresh.record_key]


async def test_a_record_holds_the_whole_fingerprint_and_is_named_by_the_record_key(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    repository = await open_repo(cm_name)
    idempotency = Idempotency.for_increment("order 42", "c", 3, 3600.0)
    await repository.increment("c", 3, idempotency)
    records = json.loads(stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY])
    # The domain's name for the record, never the key itself.
    assert list(records) == [idempotency.record_key]
    assert "order 42" not in json.dumps(records)
    assert records[idempotency.record_key]["fingerprint"] == idempotency.fingerprint
    assert len(idempotency.fingerprint) == 64
    assert records[idempotency.record_key]["count"] == 3


@pytest.mark.parametrize("name_length", [32, 64])
async def test_a_record_of_the_previous_format_is_dropped_on_read(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any, name_length: int
) -> None:
    """The previous version kept 32 characters of the key's hash and of the fingerprint. Such a
    record is ignored, not taken for another request: its key counts once more, then is
    recorded in the current format."""
    idempotency = Idempotency.for_increment("k", "c", 1, 3600.0)
    old = {
        hashlib.sha256(b"k").hexdigest()[:name_length]: {
            "fingerprint": idempotency.fingerprint[:32],
            "count": 1,
            "updated_at": "2025-01-01T00:00:00.000Z",
            "expires_at": "2999-01-01T00:00:00.000Z",
        }
    }
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 1}', IDEMPOTENCY_KEY: json.dumps(old)})
    repository = await open_repo(cm_name)
    first = await repository.increment("c", 1, idempotency)
    assert (first.replayed, first.counter.count) == (False, 2)
    again = await repository.increment("c", 1, idempotency)
    assert (again.replayed, again.counter.count) == (True, 2)
    records = json.loads(stored_data(admin, kube.namespace, cm_name)[IDEMPOTENCY_KEY])
    assert list(records) == [idempotency.record_key]


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
        assert (await repository.increment("c", 1)).counter.count == 11
        assert api.raced
        assert repository.conflicts == 1  # AlreadyExists, then a read and a patch
    finally:
        await repository.aclose()
        api_client.close()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 11


async def test_concurrent_creators_all_count(open_repo: OpenRepo, cm_name: str) -> None:
    repositories = [await open_repo(cm_name) for _ in range(5)]
    results = await asyncio.gather(*(r.increment("c", 1) for r in repositories for _ in range(20)))
    values = [r.counter.count for r in results]
    assert sorted(values) == list(range(1, 101))
    assert (await repositories[0].get("c")).count == 100


# --- coalescing -------------------------------------------------------------------------------


async def test_coalescing_turns_many_increments_into_few_writes(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name)
    await repository.increment("warm-up", 1)
    writes_before = repository.api_writes
    results = await asyncio.gather(*(repository.increment("hot", 1) for _ in range(200)))
    writes = repository.api_writes - writes_before
    assert sorted(r.counter.count for r in results) == list(range(1, 201))
    assert writes <= 200 / 4, f"{writes} API writes for 200 increments"


async def test_without_coalescing_every_increment_writes(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name, coalesce=False, max_attempts=100, max_retry_seconds=30.0)
    results = await asyncio.gather(*(repository.increment("hot", 1) for _ in range(20)))
    assert sorted(r.counter.count for r in results) == list(range(1, 21))
    assert repository.api_writes >= 20


async def test_overflow_in_a_batch_fails_only_that_increment(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(cm_name)
    await repository.set("big", INT64_MAX - 2)
    results = await asyncio.gather(
        *(repository.increment("big", 1) for _ in range(4)), return_exceptions=True
    )
    assert [r.counter.count for r in results if not isinstance(r, BaseException)] == [
        INT64_MAX - 1,
        INT64_MAX,
    ]
    assert sum(isinstance(r, CounterOverflowError) for r in results) == 2
    assert (await repository.get("big")).count == INT64_MAX


# --- several processes ------------------------------------------------------------------------


async def run_workers(
    kube: KubeTarget,
    name: str,
    *,
    processes: int = 3,
    increments: int = 200,
    concurrency: int = 32,
    options: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Start the worker processes, let them go at once, return their reports."""
    command = [sys.executable, "-m", "tests.integration.configmap_worker"]
    command += ["--kubeconfig", kube.kubeconfig, "--namespace", kube.namespace, "--name", name]
    command += ["--increments", str(increments), "--concurrency", str(concurrency), *options]
    workers = [
        await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert line.strip() == b"ready", line
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        reports = []
        for worker in workers:
            out, err = await asyncio.wait_for(worker.communicate(), timeout=120)
            assert worker.returncode == 0, err.decode()[-3000:]
            reports.append(json.loads(out.decode().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    return reports


def summarise(reports: list[dict[str, Any]], final: int) -> dict[str, int]:
    values = [v for report in reports for v in report["values"]]
    return {
        "final": final,
        "successes": len(values),
        "distinct": len(set(values)),
        "not_counted": sum(len(r["not_counted"]) for r in reports),
        "unknown": sum(len(r["unknown"]) for r in reports),
        "api_writes": sum(r["stats"]["api_writes"] for r in reports),
        "conflicts": sum(r["stats"]["conflicts"] for r in reports),
        "timeouts_resolved": sum(r["stats"]["timeouts_resolved"] for r in reports),
    }


async def test_processes_each_with_a_coalescer_lose_nothing(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget
) -> None:
    reports = await run_workers(kube, cm_name)
    final = (await (await open_repo(cm_name)).get("hot")).count
    summary = summarise(reports, final)
    print("configmap 3 processes x 200 increments:", summary)
    assert summary["distinct"] == summary["successes"]  # nobody got another's value
    assert final == summary["successes"] == 600, summary
    assert summary["api_writes"] <= 600 / 4, summary


async def test_processes_under_injected_faults_lose_nothing_and_count_nothing_twice(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, inject: Callable[..., None]
) -> None:
    inject(
        conflict=0.1,
        too_many_requests=0.05,
        retry_after=1,
        server_error=0.05,
        timeout_before=0.03,
        timeout_after=0.05,
        timeout_seconds=1.0,
        server_error_late=0.05,  # committed before the next write, whichever process sends it
        late_status=503,
        writes_only=True,
        seed=1,
    )
    assert kube.emulator is not None
    faults_before = kube.emulator.stats()["faults"]
    # 8 in flight per process: smaller batches, so more writes and every kind of fault.
    options = ("--request-timeout", "0.5", "--max-retry-seconds", "20", "--max-attempts", "30")
    reports = await run_workers(kube, cm_name, concurrency=8, options=options)
    faults = {k: n - faults_before.get(k, 0) for k, n in kube.emulator.stats()["faults"].items()}
    kube.emulator.clear_faults()
    final = (await (await open_repo(cm_name)).get("hot")).count
    summary = summarise(reports, final)
    print("configmap 3 processes x 200 increments under faults:", summary, faults)
    assert summary["distinct"] == summary["successes"]
    # Exact: a write whose answer was lost is recognised by re-reading, so every success was
    # counted once and every failure not at all; only an "outcome unknown" failure may have counted.
    assert summary["successes"] <= final <= summary["successes"] + summary["unknown"], summary
    assert summary["successes"] + summary["not_counted"] + summary["unknown"] == 600
    assert summary["timeouts_resolved"] >= 1, summary
    kinds = (
        "conflict",
        "too_many_requests",
        "server_error",
        "timeout_before",
        "timeout_after",
        "server_error_late",
    )
    assert all(faults.get(kind, 0) >= 1 for kind in kinds), faults


# --- faults, one process ----------------------------------------------------------------------


async def test_a_write_applied_before_its_timeout_is_recognised(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    repository = await open_repo(cm_name, request_timeout=0.3, max_retry_seconds=20.0, max_attempts=30)
    await repository.increment("t", 1)
    inject(timeout_after=0.5, timeout_seconds=0.6, seed=3)
    values = [(await repository.increment("t", 1)).counter.count for _ in range(10)]
    assert values == list(range(2, 12))
    assert (await repository.get("t")).count == 11
    assert repository.stats.timeouts_resolved >= 1


async def test_a_write_that_timed_out_unapplied_is_retried_once(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    repository = await open_repo(cm_name, request_timeout=0.3, max_retry_seconds=20.0, max_attempts=30)
    await repository.increment("t", 1)
    inject(timeout_before=0.5, timeout_seconds=0.6, seed=4)
    values = [(await repository.increment("t", 1)).counter.count for _ in range(6)]
    assert values == list(range(2, 8))
    assert (await repository.get("t")).count == 7


def emulator_stats(kube: KubeTarget) -> dict[str, Any]:
    assert kube.emulator is not None
    stats: dict[str, Any] = kube.emulator.stats()
    return stats


@pytest.mark.parametrize("status", [500, 503, 504])
@pytest.mark.parametrize("late_apply", ["next_write", "next_request"])
async def test_a_5xx_whose_write_lands_later_is_counted_once(
    open_repo: OpenRepo,
    cm_name: str,
    kube: KubeTarget,
    admin: Any,
    inject: Callable[..., None],
    *,
    status: int,
    late_apply: str,
) -> None:
    """etcd may commit a write after the apiserver answered 500, 503 or 504 for it: here the
    first PATCH is answered with the error and committed just before the next write (or the next
    request). Only the writers' sequence tells that it landed; it must not be applied again."""
    seed(admin, kube.namespace, cm_name, {"other": '{"count": 1}'})
    repository = await open_repo(cm_name)
    applied_before = emulator_stats(kube)["late_writes_applied"]
    inject(server_error_late=1.0, late_status=status, late_apply=late_apply, max_faults=1)
    result = await repository.increment("c", 1)
    assert emulator_stats(kube)["late_writes_applied"] == applied_before + 1
    assert (result.counter.count, result.replayed) == (1, False)
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 1
    assert (await repository.get("c")).count == 1
    assert repository.stats.timeouts_resolved == 1


@pytest.mark.parametrize(
    ("status", "late_apply", "coalesce"),
    [
        (500, "next_write", True),
        (503, "next_write", True),
        (504, "next_write", True),
        (500, "delay", True),
        (500, "next_write", False),
        (503, "delay", False),
    ],
)
async def test_concurrent_increments_through_late_5xx_are_each_counted_once(
    open_repo: OpenRepo,
    cm_name: str,
    kube: KubeTarget,
    inject: Callable[..., None],
    *,
    status: int,
    late_apply: str,
    coalesce: bool,
) -> None:
    """A share of the writes answered 5xx and committed later (before the next write, or after a
    short delay): every increment is answered once, with its own value, and counted once."""
    increments = 200 if coalesce else 40
    # Small batches, so that many writes go through the fault.
    repository = await open_repo(
        cm_name, coalesce=coalesce, max_batch=8, max_attempts=200, max_retry_seconds=60.0
    )
    await repository.set("hot", 0)
    applied_before = emulator_stats(kube)["late_writes_applied"]
    inject(server_error_late=0.3, late_status=status, late_apply=late_apply, late_delay=0.01, seed=11)
    results = await asyncio.wait_for(
        asyncio.gather(*(repository.increment("hot", 1) for _ in range(increments))), timeout=120
    )
    inject()
    assert sorted(r.counter.count for r in results) == list(range(1, increments + 1))
    assert (await repository.get("hot")).count == increments
    assert emulator_stats(kube)["faults"].get("server_error_late", 0) >= 1
    if late_apply == "next_write":  # some of them landed after their answer
        assert emulator_stats(kube)["late_writes_applied"] > applied_before


async def test_429_is_honoured_with_retry_after(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    repository = await open_repo(cm_name)
    await repository.increment("t", 1)
    inject(too_many_requests=1.0, retry_after=1)
    task = asyncio.create_task(repository.increment("t", 1))
    await asyncio.sleep(1.5)
    assert not task.done()  # still waiting, as asked
    assert repository.stats.throttled >= 1
    inject()
    # A generous guard against hanging, not a speed check (these machines are shared and noisy).
    assert (await asyncio.wait_for(task, timeout=30)).counter.count == 2


async def test_at_the_retry_bounds_the_answer_is_503_and_nothing_counted(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    """Conflicts and 429s prove that a write was refused: at the bounds, nothing was counted."""
    repository = await open_repo(cm_name, max_attempts=4, max_retry_seconds=2.0)
    await repository.increment("t", 1)
    inject(conflict=0.5, too_many_requests=0.5, retry_after=0, seed=5)
    with pytest.raises(StoreUnavailableError, match="nothing was counted") as refused:
        # The bounds end the retries; the timeout only guards against a hang.
        await asyncio.wait_for(repository.increment("t", 1), timeout=30)
    assert not isinstance(refused.value, OutcomeUnknownError)
    assert refused.value.retry_after >= 1
    stats = repository.stats
    assert stats.throttled >= 1
    assert stats.throttled + stats.transient_errors + repository.conflicts <= 4
    inject()
    assert (await repository.get("t")).count == 1


async def test_5xx_up_to_the_bounds_is_an_unknown_outcome_settled_by_a_retry_with_the_key(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    """A 500 does not prove that a write was refused (etcd may commit it later): when every write
    up to the bounds, the fence included, gets one, the outcome is unknown, never "not counted";
    a retry with the same Idempotency-Key then applies it exactly once."""
    repository = await open_repo(cm_name, max_attempts=4, max_retry_seconds=2.0)
    await repository.increment("t", 1)
    key = keyed("retry me", "t")
    inject(server_error=1.0)
    with pytest.raises(OutcomeUnknownError, match="outcome is unknown") as unknown:
        await asyncio.wait_for(repository.increment("t", 1, key), timeout=30)
    assert "retry with the same Idempotency-Key" in str(unknown.value)
    assert unknown.value.retry_after >= 1
    assert repository.stats.outcomes_unknown == 1
    inject()
    retried = await repository.increment("t", 1, key)
    assert (retried.replayed, retried.counter.count) == (False, 2)  # this fault never applies
    assert (await repository.increment("t", 1, key)).replayed
    assert (await repository.get("t")).count == 2


class PatchesTimeOut:
    """A CoreV1Api whose patches time out before they reach the server (the first `count` ones, or
    all): the client cannot tell them from patches that were applied and whose answer was lost."""

    def __init__(self, api: Any, count: int | None = None) -> None:
        self._api = api
        self.left = count
        self.timed_out = 0
        self._pool = urllib3.HTTPConnectionPool("127.0.0.1")  # named by the error; never connects

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._api, attribute)

    def patch_namespaced_config_map(self, *args: Any, **options: Any) -> Any:
        if self.left is None or self.left > 0:
            if self.left is not None:
                self.left -= 1
            self.timed_out += 1
            raise urllib3.exceptions.ReadTimeoutError(self._pool, "/api/v1", "Read timed out.")
        return self._api.patch_namespaced_config_map(*args, **options)


@pytest.fixture
async def api_client(kube: KubeTarget) -> AsyncIterator[Any]:
    client = new_api_client(kube.kubeconfig)
    yield client
    client.close()


async def test_unconfirmed_writes_are_fenced_before_answering_not_counted(
    api_client: Any, cm_name: str, kube: KubeTarget
) -> None:
    api = PatchesTimeOut(k8s_client.CoreV1Api(api_client), count=3)
    repository = ConfigMapCounterRepository(
        api, cm_name, kube.namespace, max_attempts=3, max_retry_seconds=2.0
    )
    try:
        await repository.set("c", 5)  # created with a POST, which is not faulted
        api.left = 3
        api.timed_out = 0
        with pytest.raises(StoreUnavailableError, match="nothing was counted"):
            await repository.increment("c", 1)
        # Three tries left their outcome unknown; a fourth write (a fence, with no increment)
        # made sure that none of them can still apply, so the answer is a clean "not counted".
        assert api.timed_out == 3
        assert repository.stats.outcomes_unknown == 0
        assert (await repository.get("c")).count == 5
    finally:
        await repository.aclose()


async def test_writes_that_stay_unconfirmed_are_reported_as_unknown(
    api_client: Any, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    seed(admin, kube.namespace, cm_name, {"c": '{"count": 5}'})
    api = PatchesTimeOut(k8s_client.CoreV1Api(api_client))
    repository = ConfigMapCounterRepository(
        api, cm_name, kube.namespace, max_attempts=3, max_retry_seconds=1.0
    )
    try:
        with pytest.raises(StoreUnavailableError, match="outcome is unknown"):
            await repository.increment("c", 1)
        assert repository.stats.outcomes_unknown == 1
    finally:
        await repository.aclose()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 5


async def test_a_full_configmap_refuses_new_counters_and_keeps_counting_old_ones(
    open_repo: OpenRepo, cm_name: str
) -> None:
    repository = await open_repo(cm_name)
    names = [f"{i:06d}" + "x" * 57 for i in range(7000)]  # 63 characters each
    results = await asyncio.gather(*(repository.set(n, 1) for n in names), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert refused, "7000 counters of this size do not fit in 1 MiB"
    assert all(isinstance(r, StoreUnavailableError) and "is full" in str(r) for r in refused)
    assert (await repository.increment(names[0], 1)).counter.count == 2
    page = await repository.list(None, 1000)
    assert len(page.counters) == 1000


MIB = 1024 * 1024


def too_long_answers(kube: KubeTarget) -> int:
    """422 `Too long` answers of the emulated API so far (0 on a real cluster: not ours to count)."""
    return 0 if kube.emulator is None else int(emulator_stats(kube)["too_long"])


async def test_a_full_configmap_refuses_new_names_and_keys_and_never_passes_1_mib(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    if kube.emulator is not None:
        kube.emulator.reset_stats()  # so that `largest_*` are this test's
    repository = await open_repo(cm_name)
    too_long_before = too_long_answers(kube)
    first_keys = [keyed(f"first-{i}") for i in range(200)]
    await asyncio.gather(*(repository.increment("c", 1, key) for key in first_keys))

    # Short names: many counters, so that the values alone come close to the API's limit.
    names = [f"n{i:05d}" for i in range(12000)]
    results = await asyncio.gather(*(repository.set(n, 1) for n in names), return_exceptions=True)
    kept = [n for n, r in zip(names, results, strict=True) if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(kept) > 5000
    assert refused, "12000 counters do not fit in 1 MiB"
    for error in refused:
        assert isinstance(error, StoreFullError)
        assert not isinstance(error, OutcomeUnknownError)
        assert "is full" in str(error)
        assert "new counters" in str(error)
        assert error.retry_after >= 600  # permanent until counters are deleted: no retry in 1 s

    writes = repository.api_writes
    with pytest.raises(StoreUnavailableError, match="is full"):
        await repository.increment("a-new-name", 1)
    more_keys = [keyed(f"more-{i}") for i in range(1000)]
    keyed_results = await asyncio.gather(
        *(repository.increment("c", 1, key) for key in more_keys), return_exceptions=True
    )
    assert all(isinstance(r, IdempotencyTableFullError) for r in keyed_results)
    assert all("is full until records expire" in str(r) for r in keyed_results)
    assert repository.api_writes == writes, "refused before writing"

    # Existing counters are never blocked: increments, sets (to the widest value), deletes.
    assert (await repository.increment(kept[0], 1)).counter.count == 2
    widest = await asyncio.gather(*(repository.set(n, -(2**63)) for n in kept))
    assert all(r.counter.count == -(2**63) for r in widest)
    assert (await repository.increment(kept[1], 9)).counter.count == -(2**63) + 9
    assert (await repository.increment("c", 1, first_keys[0])).replayed
    assert (await repository.increment("c", 1)).counter.count == 201
    assert await repository.delete(kept[2]) is not None
    assert (await repository.set("n-new", 1)).counter.count == 1  # the room of the deleted one

    assert too_long_answers(kube) == too_long_before, "no write was refused as too long"
    data = stored_data(admin, kube.namespace, cm_name)
    assert sum(len(v.encode()) for v in data.values()) < MIB
    if kube.emulator is not None:
        stats = emulator_stats(kube)
        assert stats["largest_data_bytes"] < MIB
        assert stats["largest_object_bytes"] < MIB


async def test_a_configmap_filled_past_the_limits_by_an_older_version_keeps_its_counters(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    """An older version filled ConfigMaps up to the API's limit: its counters go on counting."""
    stamp = "2025-01-01T00:00:00.000Z"
    value = json.dumps({"count": 1, "created_at": stamp, "updated_at": stamp})
    counters = {f"c{i}": value for i in range(5)}
    seed(admin, kube.namespace, cm_name, {**counters, "filler": "x" * (room.FULL_BYTES + 20 * 1024)})
    repository = await open_repo(cm_name)
    too_long_before = too_long_answers(kube)
    with pytest.raises(StoreFullError):
        await repository.increment("new-name", 1)
    assert (await repository.increment("c0", 1)).counter.count == 2
    assert (await repository.set("c1", -(2**63))).counter.count == -(2**63)
    assert await repository.delete("c2") is not None
    # Past the hard limit: what does not grow the data still goes, what grows it is refused.
    patch = {"data": {"filler": "x" * (room.MAX_BYTES + 4 * 1024)}}
    admin.patch_namespaced_config_map(cm_name, kube.namespace, patch)
    assert (await repository.increment("c0", 1)).counter.count == 3
    with pytest.raises(StoreFullError, match="is full"):
        await repository.set("c3", 10**18)
    assert await repository.delete("c4") is not None
    assert too_long_answers(kube) == too_long_before
    data = stored_data(admin, kube.namespace, cm_name)
    assert {k for k in data if k.startswith("c")} == {"c0", "c1", "c3"}
    assert json.loads(data["c3"])["count"] == 1


class PatchesGrowTooLong:
    """A CoreV1Api whose patches also add a value that takes the ConfigMap past 1 MiB, so that the
    API answers with its own 422 `Too long`, as it would to a store that miscounted."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.grow = False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._api, attribute)

    def patch_namespaced_config_map(self, name: str, namespace: str, body: Any, **options: Any) -> Any:
        if self.grow:
            body = [*body, {"op": "add", "path": "/data/padding", "value": "x" * (MIB + 1)}]
        return self._api.patch_namespaced_config_map(name, namespace, body, **options)


async def test_a_422_too_long_is_permanent_not_a_conflict(
    api_client: Any, cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    api = PatchesGrowTooLong(k8s_client.CoreV1Api(api_client))
    repository = ConfigMapCounterRepository(api, cm_name, kube.namespace)
    too_long_before = too_long_answers(kube)
    try:
        await repository.set("c", 1)  # created with a POST
        api.grow = True
        writes = repository.api_writes
        with pytest.raises(StoreFullError, match="too large") as refused:
            await asyncio.wait_for(repository.increment("c", 1), timeout=30)
        assert "nothing was counted" in str(refused.value)
        assert refused.value.retry_after >= 600
        assert repository.api_writes == writes + 1, "no retries of a permanent refusal"
        assert repository.conflicts == 0
        if kube.emulator is not None:
            assert too_long_answers(kube) == too_long_before + 1
        api.grow = False
        assert (await repository.increment("c", 1)).counter.count == 2
    finally:
        await repository.aclose()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 2


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
            await repository.increment("c", 1)
        with pytest.raises(StoreUnavailableError):
            await repository.get("c")


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
            await repository.increment("c", 1)


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
            await repository.increment("c", 1)
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
