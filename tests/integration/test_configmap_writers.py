"""Several writer processes on one ConfigMap, as replicas share it: with no fault at all, every
request is answered 2xx and counted exactly once; and a full ConfigMap still lets every writer
count its existing counters.

The writers are `counter serve` processes, each with its own repository (so its own group commit
and its own write budget, the service's default), on one ConfigMap of the emulated API (or of the
cluster COUNTER_TEST_KUBECONFIG names). The load is bounded in count; nothing here asserts a speed
(`python -m bench.configmap_writers` measures that).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.configmap import StoreFullError
from domain.model import CounterId
from tests.integration.configmap_fixtures import WRITE_VERBS, KubeTarget, OpenRepo
from tests.integration.server_process import running_server

pytestmark = pytest.mark.integration

WRITERS = 3
REQUESTS = 3000
IN_FLIGHT = 48  # 16 per writer: batches of that size, so many writes and many chances to collide


def api_counts(kube: KubeTarget) -> tuple[int, int] | None:
    """(write requests received, writes applied) by the emulated API; None on a real cluster."""
    if kube.emulator is None:
        return None
    stats: dict[str, Any] = kube.emulator.stats()
    return sum(stats["requests"].get(verb, 0) for verb in WRITE_VERBS), int(stats["writes"])


async def post_counter(urls: list[str], requests: int, in_flight: int) -> Tally[int]:
    """`requests` POST /counter, `in_flight` at a time, each client on its own server in turn."""
    statuses: Tally[int] = Tally()
    left = iter(range(requests))

    async def client(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            for _ in left:
                try:
                    statuses[(await http.post("/counter")).status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1  # no answer: neither a 2xx nor a 503

    await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(in_flight)))
    return statuses


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["default", "0"], ids=["write-budget", "no-write-budget"])
async def test_three_writer_processes_answer_every_request_and_count_it_once(
    kube: KubeTarget, cm_name: str, tmp_path: Path, budget: str
) -> None:
    """With the budget (the default) writers pace themselves; without it they write as fast as the
    API answers, where a writer that builds on its own last answer would starve the others."""
    env = {
        **({} if budget == "default" else {"COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND": budget}),
        "COUNTER_BACKEND": "configmap",
        "COUNTER_KUBECONFIG": kube.kubeconfig,
        "COUNTER_CONFIGMAP_NAME": cm_name,
        "COUNTER_CONFIGMAP_NAMESPACE": kube.namespace,
    }
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(env, tmp_path / f"writer-{i}.log")) for i in range(WRITERS)
        ]
        before = api_counts(kube)
        statuses = await post_counter([s.url for s in servers], REQUESTS, IN_FLIGHT)
        after = api_counts(kube)
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=10.0) as http:
            stored = (await http.get("/counter")).json()["count"]
        logs = "\n".join(s.log()[-2000:] for s in servers)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    unavailable = statuses[503]
    summary = f"sent={REQUESTS} 2xx={ok} 503={unavailable} stored={stored}"
    if before is not None and after is not None:
        writes, applied = after[0] - before[0], after[1] - before[1]
        summary += f" api_writes={writes} applied={applied} conflicts={writes - applied}"
    where = f"configmap {WRITERS} writer processes, {IN_FLIGHT} in flight, budget {budget}"
    print(f"{where}: {summary} statuses={dict(statuses)}")
    assert unavailable == 0, f"{summary}\n{logs}"
    assert ok == REQUESTS, f"{summary} statuses={dict(statuses)}\n{logs}"
    assert stored == ok, summary  # every 2xx counted, exactly once


async def test_a_full_configmap_lets_every_writer_count_its_existing_counters(
    open_repo: OpenRepo, cm_name: str
) -> None:
    """Room is kept for the counts to grow and for `_writers` at its largest: a writer that joins a
    full ConfigMap adds its entry and counts on, and only new names are refused, for everyone."""
    first = await open_repo(cm_name)
    names = [f"{i:06d}" + "x" * 57 for i in range(7000)]  # 63 characters each: more than fits
    results = await asyncio.gather(
        *(first.set(CounterId.default(n), 1) for n in names), return_exceptions=True
    )
    kept = [n for n, r in zip(names, results, strict=True) if not isinstance(r, BaseException)]
    assert len(kept) < len(names), "the ConfigMap is full"
    writers = [first, await open_repo(cm_name), await open_repo(cm_name)]
    rounds = 5
    counted = await asyncio.gather(
        *(
            writer.increment(CounterId.default(name), 1)
            for writer in writers
            for name in kept[:50]
            for _ in range(rounds)
        )
    )
    assert len(counted) == len(writers) * 50 * rounds
    for name in kept[:50]:
        assert (await writers[1].get(CounterId.default(name))).count == 1 + len(writers) * rounds
    for writer in writers:
        with pytest.raises(StoreFullError, match="is full"):
            await writer.increment(CounterId.default(f"new-{id(writer)}"), 1)
