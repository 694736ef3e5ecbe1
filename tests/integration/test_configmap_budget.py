"""The ConfigMap store's write budget against a Kubernetes API: the emulated one, or a real cluster.

The budget is a correctness property, not a speed: over any interval of t seconds a process makes
at most `budget * t + burst` API writes, and still answers and counts every increment exactly
once. The writes are counted twice, by the store (`stats.api_writes`) and, on the emulator, by the
API server itself (every create and patch it received, applied or not). No test asserts how fast
anything is; time limits only guard against a hang.

COUNTER_TEST_KUBECONFIG selects a real cluster, as for tests/integration/test_configmap_repository.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s_client

from adapters.configmap import ConfigMapCounterRepository, new_api_client
from domain.errors import StoreUnavailableError
from domain.model import CounterId
from tests.contract.repository_contract import Reopen, RepositoryContract
from tests.integration.configmap_fixtures import KubeTarget, OpenRepo

pytestmark = pytest.mark.integration

BUDGET = 20.0  # API writes per second in these tests; the burst is one second's worth


def assert_within_budget(writes: int, repository: ConfigMapCounterRepository, seconds: float) -> None:
    limit = repository.max_writes_per_second * seconds + repository.budget.burst
    assert writes <= limit, f"{writes} API writes in {seconds:.2f} s, budget {limit:.1f}"


# --- the contract, with a budget --------------------------------------------------------------


class TestConfigMapContractWithAWriteBudget(RepositoryContract):
    """Every promise of a store holds with the budget on (the service's default is 10 per second)."""

    @pytest.fixture
    async def repository(self, open_repo: OpenRepo, cm_name: str) -> ConfigMapCounterRepository:
        repository = await open_repo(cm_name, max_writes_per_second=BUDGET)
        assert repository.max_writes_per_second == BUDGET
        return repository

    @pytest.fixture
    def reopen(self, open_repo: OpenRepo, cm_name: str) -> Reopen:
        async def second_instance() -> ConfigMapCounterRepository:
            return await open_repo(cm_name, max_writes_per_second=BUDGET)

        return second_instance


# --- pacing -----------------------------------------------------------------------------------


async def test_under_load_writes_stay_within_the_budget_and_every_increment_counts_once(
    open_repo: OpenRepo, cm_name: str, kube: KubeTarget
) -> None:
    repository = await open_repo(cm_name, max_writes_per_second=BUDGET)
    received_before = kube.write_requests()

    async def arrive_and_increment(i: int) -> int:
        await asyncio.sleep(i * 0.005)  # 400 increments arriving over 2 s: 200 per second
        return (await repository.increment(CounterId.default("hot"), 1)).counter.count

    started = time.monotonic()
    values = await asyncio.wait_for(
        asyncio.gather(*(arrive_and_increment(i) for i in range(400))), timeout=60
    )
    elapsed = time.monotonic() - started
    stats = repository.stats
    print(f"budget {BUDGET:g}/s: 400 increments in {elapsed:.2f} s, {stats}")

    assert sorted(values) == list(range(1, 401))  # all answered, each its own value
    assert (await repository.get(CounterId.default("hot"))).count == 400
    assert_within_budget(stats.api_writes, repository, elapsed)
    received_after = kube.write_requests()
    if received_before is not None and received_after is not None:  # the API server's own count
        assert_within_budget(received_after - received_before, repository, elapsed)
        assert received_after - received_before == stats.api_writes
    assert stats.budget_refused == stats.expired_in_queue == 0


async def test_what_queues_while_the_writer_waits_for_its_token_goes_into_that_write(
    open_repo: OpenRepo, cm_name: str
) -> None:
    repository = await open_repo(cm_name, max_writes_per_second=1.0)  # a burst of 1
    await repository.increment(CounterId.default("c"), 1)  # takes the only token
    results = await asyncio.wait_for(
        asyncio.gather(*(repository.increment(CounterId.default("c"), 1) for _ in range(50))), timeout=30
    )
    assert sorted(r.counter.count for r in results) == list(range(2, 52))
    assert repository.api_writes == 2  # the 50 waited for the next token, together
    assert repository.stats.budget_waits >= 1


async def test_without_coalescing_each_request_waits_its_turn(open_repo: OpenRepo, cm_name: str) -> None:
    repository = await open_repo(
        cm_name, coalesce=False, max_writes_per_second=BUDGET, max_attempts=100, max_retry_seconds=30.0
    )
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(repository.increment(CounterId.default("hot"), 1) for _ in range(30))), timeout=60
    )
    elapsed = time.monotonic() - started
    assert sorted(r.counter.count for r in results) == list(range(1, 31))
    assert repository.api_writes >= 30
    assert_within_budget(repository.api_writes, repository, elapsed)
    # All 30 reserve their turns at once, before any API call: those beyond the burst wait.
    assert repository.stats.budget_waits >= 30 - repository.budget.burst


# --- the time bound ---------------------------------------------------------------------------


@pytest.mark.parametrize("coalesce", [True, False])
async def test_a_turn_after_the_time_bound_is_503_at_once_and_nothing_counted(
    open_repo: OpenRepo, cm_name: str, *, coalesce: bool
) -> None:
    # One token every 10 s, a bound of 0.5 s: the second write's turn comes far too late.
    repository = await open_repo(cm_name, coalesce=coalesce, max_writes_per_second=0.1, max_retry_seconds=0.5)
    await repository.increment(CounterId.default("c"), 1)
    with pytest.raises(StoreUnavailableError, match="nothing was counted") as refused:
        # Far sooner than the token: the timeout only guards against waiting for it.
        await asyncio.wait_for(repository.increment(CounterId.default("c"), 1), timeout=5)
    assert refused.value.retry_after >= 1
    assert repository.api_writes == 1
    assert repository.stats.budget_refused + repository.stats.expired_in_queue == 1
    assert (await repository.get(CounterId.default("c"))).count == 1


class PatchesTimeOut:
    """A CoreV1Api whose first `left` patches time out before reaching the server, and that notes
    when each create and patch was sent."""

    def __init__(self, api: Any, left: int) -> None:
        self._api = api
        self.left = left
        self.sent: list[float] = []
        self._pool = urllib3.HTTPConnectionPool("127.0.0.1")  # named by the error; never connects

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._api, attribute)

    def create_namespaced_config_map(self, *args: Any, **options: Any) -> Any:
        self.sent.append(time.monotonic())
        return self._api.create_namespaced_config_map(*args, **options)

    def patch_namespaced_config_map(self, *args: Any, **options: Any) -> Any:
        self.sent.append(time.monotonic())
        if self.left > 0:
            self.left -= 1
            raise urllib3.exceptions.ReadTimeoutError(self._pool, "/api/v1", "Read timed out.")
        return self._api.patch_namespaced_config_map(*args, **options)


async def test_retries_and_the_fence_after_lost_answers_wait_for_their_tokens(
    cm_name: str, kube: KubeTarget, admin: Any
) -> None:
    api_client = new_api_client(kube.kubeconfig)
    api = PatchesTimeOut(k8s_client.CoreV1Api(api_client), left=0)
    repository = ConfigMapCounterRepository(
        api, cm_name, kube.namespace, max_attempts=3, max_retry_seconds=5.0, max_writes_per_second=2.0
    )
    try:
        started = time.monotonic()
        await repository.set(CounterId.default("c"), 5)  # created with a POST
        api.left = 3
        with pytest.raises(StoreUnavailableError, match="nothing was counted"):
            await asyncio.wait_for(repository.increment(CounterId.default("c"), 1), timeout=60)
        elapsed = time.monotonic() - started
        # The create, three patches whose answers were lost, and the fence that settled them.
        assert len(api.sent) == repository.api_writes == 5
        assert_within_budget(len(api.sent), repository, elapsed)
        assert repository.stats.budget_waits >= 1  # 5 writes, a burst of 2, a token every 0.5 s
    finally:
        await repository.aclose()
        api_client.close()
    stored = admin.read_namespaced_config_map(cm_name, kube.namespace).data
    assert json.loads(stored["c"])["count"] == 5
