"""The in-memory store: the contract, and its clean-up of expired Idempotency-Key records."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.idempotency import Idempotency
from domain.model import CounterId
from domain.rules import Rules
from tests.contract.repository_contract import Reopen, RepositoryContract


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def repository(self) -> InMemoryCounterRepository:
        return InMemoryCounterRepository()

    @pytest.fixture
    def reopen(self) -> Reopen:
        return None


async def test_expired_records_are_swept_and_live_ones_kept() -> None:
    repository = InMemoryCounterRepository()
    live = Idempotency.for_increment("live", CounterId.default("c"), 1, 3600)
    await repository.increment(CounterId.default("c"), 1, live)
    for i in range(1022):
        await repository.increment(
            CounterId.default("c"),
            1,
            Idempotency.for_increment(f"short-{i}", CounterId.default("c"), 1, 0.01),
        )
    await asyncio.sleep(0.05)
    assert len(repository._records) == 1023
    last = Idempotency.for_increment("the 1024th", CounterId.default("c"), 1, 3600)
    await repository.increment(CounterId.default("c"), 1, last)
    assert sorted(repository._records) == sorted([live.record_key, last.record_key])
    assert (await repository.increment(CounterId.default("c"), 1, live)).replayed


async def test_expired_counters_nobody_touches_are_pruned_by_later_writes() -> None:
    repository = InMemoryCounterRepository()
    await repository.create(CounterId("ns", "brief"), 1, Rules(ttl_seconds=1), None)
    await asyncio.sleep(1.1)
    for _ in range(1024):
        await repository.increment(CounterId("ns", "busy"), 1)
    assert CounterId("ns", "brief") not in repository._counters
