"""A full ConfigMap: new names and keys refused before any write, existing counters counting on,
nothing sent over 1 MiB, the API's 422 Too long permanent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from adapters.configmap import (
    ConfigMapCounterRepository,
    IdempotencyTableFullError,
    StoreFullError,
    room,
)
from domain.errors import (
    OutcomeUnknownError,
    StoreUnavailableError,
)
from domain.model import CounterId
from tests.integration.configmap_fixtures import (
    KubeTarget,
    OpenRepo,
    emulator_stats,
    keyed,
    seed,
    stored_data,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# --- a full ConfigMap ------------------------------------------------------------------------


async def test_a_full_configmap_refuses_new_counters_and_keeps_counting_old_ones(
    open_repo: OpenRepo, cm_name: str
) -> None:
    repository = await open_repo(cm_name)
    names = [f"{i:06d}" + "x" * 57 for i in range(7000)]  # 63 characters each
    results = await asyncio.gather(
        *(repository.set(CounterId.default(n), 1) for n in names), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert refused, "7000 counters of this size do not fit in 1 MiB"
    assert all(isinstance(r, StoreUnavailableError) and "is full" in str(r) for r in refused)
    assert (await repository.increment(CounterId.default(names[0]), 1)).counter.count == 2
    page = await repository.list("default", None, 1000)
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
    await asyncio.gather(*(repository.increment(CounterId.default("c"), 1, key) for key in first_keys))

    # Short names: many counters, so that the values alone come close to the API's limit.
    names = [f"n{i:05d}" for i in range(12000)]
    results = await asyncio.gather(
        *(repository.set(CounterId.default(n), 1) for n in names), return_exceptions=True
    )
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
        await repository.increment(CounterId.default("a-new-name"), 1)
    more_keys = [keyed(f"more-{i}") for i in range(1000)]
    keyed_results = await asyncio.gather(
        *(repository.increment(CounterId.default("c"), 1, key) for key in more_keys), return_exceptions=True
    )
    assert all(isinstance(r, IdempotencyTableFullError) for r in keyed_results)
    assert all("is full until records expire" in str(r) for r in keyed_results)
    assert repository.api_writes == writes, "refused before writing"

    # Existing counters are never blocked: increments, sets (to the widest value), deletes.
    assert (await repository.increment(CounterId.default(kept[0]), 1)).counter.count == 2
    widest = await asyncio.gather(*(repository.set(CounterId.default(n), -(2**63)) for n in kept))
    assert all(r.counter.count == -(2**63) for r in widest)
    assert (await repository.increment(CounterId.default(kept[1]), 9)).counter.count == -(2**63) + 9
    assert (await repository.increment(CounterId.default("c"), 1, first_keys[0])).replayed
    assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 201
    assert await repository.delete(CounterId.default(kept[2])) is not None
    assert (
        await repository.set(CounterId.default("n-new"), 1)
    ).counter.count == 1  # the room of the deleted one

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
        await repository.increment(CounterId.default("new-name"), 1)
    assert (await repository.increment(CounterId.default("c0"), 1)).counter.count == 2
    assert (await repository.set(CounterId.default("c1"), -(2**63))).counter.count == -(2**63)
    assert await repository.delete(CounterId.default("c2")) is not None
    # Past the hard limit: what does not grow the data still goes, what grows it is refused.
    patch = {"data": {"filler": "x" * (room.MAX_BYTES + 4 * 1024)}}
    admin.patch_namespaced_config_map(cm_name, kube.namespace, patch)
    assert (await repository.increment(CounterId.default("c0"), 1)).counter.count == 3
    with pytest.raises(StoreFullError, match="is full"):
        await repository.set(CounterId.default("c3"), 10**18)
    assert await repository.delete(CounterId.default("c4")) is not None
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
        await repository.set(CounterId.default("c"), 1)  # created with a POST
        api.grow = True
        writes = repository.api_writes
        with pytest.raises(StoreFullError, match="too large") as refused:
            await asyncio.wait_for(repository.increment(CounterId.default("c"), 1), timeout=30)
        assert "nothing was counted" in str(refused.value)
        assert refused.value.retry_after >= 600
        assert repository.api_writes == writes + 1, "no retries of a permanent refusal"
        assert repository.conflicts == 0
        if kube.emulator is not None:
            assert too_long_answers(kube) == too_long_before + 1
        api.grow = False
        assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 2
    finally:
        await repository.aclose()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 2
