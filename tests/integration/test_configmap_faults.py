"""The ConfigMap store under the faults of a real Kubernetes API, in one process and in several:
lost answers, late 5xx, 429, timeouts; nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s_client

from adapters.configmap import (
    ConfigMapCounterRepository,
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
    final = (await (await open_repo(cm_name)).get(CounterId.default("hot"))).count
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
    final = (await (await open_repo(cm_name)).get(CounterId.default("hot"))).count
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
    await repository.increment(CounterId.default("t"), 1)
    inject(timeout_after=0.5, timeout_seconds=0.6, seed=3)
    values = [(await repository.increment(CounterId.default("t"), 1)).counter.count for _ in range(10)]
    assert values == list(range(2, 12))
    assert (await repository.get(CounterId.default("t"))).count == 11
    assert repository.stats.timeouts_resolved >= 1


async def test_a_write_that_timed_out_unapplied_is_retried_once(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    repository = await open_repo(cm_name, request_timeout=0.3, max_retry_seconds=20.0, max_attempts=30)
    await repository.increment(CounterId.default("t"), 1)
    inject(timeout_before=0.5, timeout_seconds=0.6, seed=4)
    values = [(await repository.increment(CounterId.default("t"), 1)).counter.count for _ in range(6)]
    assert values == list(range(2, 8))
    assert (await repository.get(CounterId.default("t"))).count == 7


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
    result = await repository.increment(CounterId.default("c"), 1)
    assert emulator_stats(kube)["late_writes_applied"] == applied_before + 1
    assert (result.counter.count, result.replayed) == (1, False)
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 1
    assert (await repository.get(CounterId.default("c"))).count == 1
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
    await repository.set(CounterId.default("hot"), 0)
    applied_before = emulator_stats(kube)["late_writes_applied"]
    inject(server_error_late=0.3, late_status=status, late_apply=late_apply, late_delay=0.01, seed=11)
    results = await asyncio.wait_for(
        asyncio.gather(*(repository.increment(CounterId.default("hot"), 1) for _ in range(increments))),
        timeout=120,
    )
    inject()
    assert sorted(r.counter.count for r in results) == list(range(1, increments + 1))
    assert (await repository.get(CounterId.default("hot"))).count == increments
    assert emulator_stats(kube)["faults"].get("server_error_late", 0) >= 1
    if late_apply == "next_write":  # some of them landed after their answer
        assert emulator_stats(kube)["late_writes_applied"] > applied_before


async def test_429_is_honoured_with_retry_after(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    repository = await open_repo(cm_name)
    await repository.increment(CounterId.default("t"), 1)
    inject(too_many_requests=1.0, retry_after=1)
    task = asyncio.create_task(repository.increment(CounterId.default("t"), 1))
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
    await repository.increment(CounterId.default("t"), 1)
    inject(conflict=0.5, too_many_requests=0.5, retry_after=0, seed=5)
    with pytest.raises(StoreUnavailableError, match="nothing was counted") as refused:
        # The bounds end the retries; the timeout only guards against a hang.
        await asyncio.wait_for(repository.increment(CounterId.default("t"), 1), timeout=30)
    assert not isinstance(refused.value, OutcomeUnknownError)
    assert refused.value.retry_after >= 1
    stats = repository.stats
    assert stats.throttled >= 1
    assert stats.throttled + stats.transient_errors + repository.conflicts <= 4
    inject()
    assert (await repository.get(CounterId.default("t"))).count == 1


async def test_5xx_up_to_the_bounds_is_an_unknown_outcome_settled_by_a_retry_with_the_key(
    open_repo: OpenRepo, cm_name: str, inject: Callable[..., None]
) -> None:
    """A 500 does not prove that a write was refused (etcd may commit it later): when every write
    up to the bounds, the fence included, gets one, the outcome is unknown, never "not counted";
    a retry with the same Idempotency-Key then applies it exactly once."""
    repository = await open_repo(cm_name, max_attempts=4, max_retry_seconds=2.0)
    await repository.increment(CounterId.default("t"), 1)
    key = keyed("retry me", "t")
    inject(server_error=1.0)
    with pytest.raises(OutcomeUnknownError, match="outcome is unknown") as unknown:
        await asyncio.wait_for(repository.increment(CounterId.default("t"), 1, key), timeout=30)
    assert "retry with the same Idempotency-Key" in str(unknown.value)
    assert unknown.value.retry_after >= 1
    assert repository.stats.outcomes_unknown == 1
    inject()
    retried = await repository.increment(CounterId.default("t"), 1, key)
    assert (retried.replayed, retried.counter.count) == (False, 2)  # this fault never applies
    assert (await repository.increment(CounterId.default("t"), 1, key)).replayed
    assert (await repository.get(CounterId.default("t"))).count == 2


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


async def test_unconfirmed_writes_are_fenced_before_answering_not_counted(
    api_client: Any, cm_name: str, kube: KubeTarget
) -> None:
    api = PatchesTimeOut(k8s_client.CoreV1Api(api_client), count=3)
    repository = ConfigMapCounterRepository(
        api, cm_name, kube.namespace, max_attempts=3, max_retry_seconds=2.0
    )
    try:
        await repository.set(CounterId.default("c"), 5)  # created with a POST, which is not faulted
        api.left = 3
        api.timed_out = 0
        with pytest.raises(StoreUnavailableError, match="nothing was counted"):
            await repository.increment(CounterId.default("c"), 1)
        # Three tries left their outcome unknown; a fourth write (a fence, with no increment)
        # made sure that none of them can still apply, so the answer is a clean "not counted".
        assert api.timed_out == 3
        assert repository.stats.outcomes_unknown == 0
        assert (await repository.get(CounterId.default("c"))).count == 5
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
            await repository.increment(CounterId.default("c"), 1)
        assert repository.stats.outcomes_unknown == 1
    finally:
        await repository.aclose()
    assert json.loads(stored_data(admin, kube.namespace, cm_name)["c"])["count"] == 5
