"""What every store must do, stated once.

A test module for a store subclasses `RepositoryContract` and provides two fixtures:
`repository` (an open store on fresh, empty storage) and `reopen` (a callable that opens a second
instance on the same storage, as a restarted service would, or None for a store that keeps
nothing across a restart). The in-memory fake runs it in tests/unit, the real stores in
tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from domain.errors import CounterOverflowError, IdempotencyKeyReusedError
from domain.idempotency import REUSED_MESSAGE, Idempotency
from domain.model import INT64_MAX, INT64_MIN, CounterId
from domain.ports import CounterRepository
from tests.contract.namespace_contract import NamespaceContract
from tests.contract.rules_contract import RulesContract
from tests.contract.version_contract import VersionContract

Reopen = Callable[[], Awaitable[CounterRepository]] | None


def key(value: str, name: str = "c", by: int = 1, ttl: float = 3600.0) -> Idempotency:
    return Idempotency.for_increment(value, CounterId.default(name), by, ttl)


class RepositoryContract(NamespaceContract, RulesContract, VersionContract):
    """Subclass in a test module; provide the `repository` and `reopen` fixtures."""

    # --- basic counting -------------------------------------------------------------------

    async def test_missing_counter_reads_zero(self, repository: CounterRepository) -> None:
        counter = await repository.get(CounterId.default("never-touched"))
        assert (counter.key, counter.count) == ("never-touched", 0)

    async def test_increment_returns_new_value_and_get_reads_it(self, repository: CounterRepository) -> None:
        assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 1
        assert (await repository.increment(CounterId.default("c"), 1)).counter.count == 2
        assert (await repository.get(CounterId.default("c"))).count == 2

    async def test_increment_by_amount_and_decrement(self, repository: CounterRepository) -> None:
        assert (await repository.increment(CounterId.default("c"), 5)).counter.count == 5
        assert (await repository.increment(CounterId.default("c"), -7)).counter.count == -2
        assert (await repository.get(CounterId.default("c"))).count == -2

    async def test_counters_are_independent(self, repository: CounterRepository) -> None:
        await repository.increment(CounterId.default("a"), 3)
        await repository.increment(CounterId.default("b"), 1)
        assert (await repository.get(CounterId.default("a"))).count == 3
        assert (await repository.get(CounterId.default("b"))).count == 1

    async def test_names_are_case_sensitive_and_take_all_allowed_characters(
        self, repository: CounterRepository
    ) -> None:
        long_name = "Z" + "a.b-c_9" * 8 + "xxxxxx"
        assert len(long_name) == 63
        await repository.increment(CounterId.default("Abc"), 1)
        await repository.increment(CounterId.default(long_name), 2)
        assert (await repository.get(CounterId.default("abc"))).count == 0
        assert (await repository.get(CounterId.default("Abc"))).count == 1
        assert (await repository.get(CounterId.default(long_name))).count == 2

    async def test_concurrent_increments_are_all_counted_once(self, repository: CounterRepository) -> None:
        results = await asyncio.gather(
            *(repository.increment(CounterId.default("hot"), 1) for _ in range(200))
        )
        assert sorted(r.counter.count for r in results) == list(range(1, 201))
        assert (await repository.get(CounterId.default("hot"))).count == 200

    async def test_timestamps_when_kept(self, repository: CounterRepository) -> None:
        """Every store keeps both timestamps, in UTC: an increment keeps created_at and moves
        updated_at, and so does a set; a counter that does not exist has none."""
        assert (await repository.get(CounterId.default("t"))).created_at is None
        first = (await repository.increment(CounterId.default("t"), 1)).counter
        second = (await repository.increment(CounterId.default("t"), 1)).counter
        assert first.created_at is not None
        assert first.updated_at is not None
        assert first.created_at.utcoffset() == timedelta(0)
        assert first.updated_at.utcoffset() == timedelta(0)
        assert first.updated_at >= first.created_at
        assert second.created_at == first.created_at
        assert second.updated_at is not None
        assert second.updated_at >= first.updated_at
        read = await repository.get(CounterId.default("t"))
        assert (read.created_at, read.updated_at) == (first.created_at, second.updated_at)
        replaced = (await repository.set(CounterId.default("t"), 10)).counter
        assert replaced.created_at == first.created_at
        assert replaced.updated_at is not None
        assert replaced.updated_at >= second.updated_at

    # --- the signed 64-bit range ----------------------------------------------------------

    async def test_overflow_is_refused_and_changes_nothing(self, repository: CounterRepository) -> None:
        await repository.set(CounterId.default("big"), INT64_MAX - 1)
        assert (await repository.increment(CounterId.default("big"), 1)).counter.count == INT64_MAX
        with pytest.raises(CounterOverflowError):
            await repository.increment(CounterId.default("big"), 1)
        assert (await repository.get(CounterId.default("big"))).count == INT64_MAX

    async def test_underflow_is_refused_and_changes_nothing(self, repository: CounterRepository) -> None:
        await repository.set(CounterId.default("small"), INT64_MIN)
        with pytest.raises(CounterOverflowError):
            await repository.increment(CounterId.default("small"), -1)
        assert (await repository.get(CounterId.default("small"))).count == INT64_MIN

    async def test_overflow_on_a_new_counter_creates_nothing(self, repository: CounterRepository) -> None:
        await repository.increment(CounterId.default("fresh"), INT64_MIN)
        with pytest.raises(CounterOverflowError):
            await repository.increment(CounterId.default("fresh"), -1)
        assert (await repository.get(CounterId.default("fresh"))).count == INT64_MIN

    # --- set, delete, list ----------------------------------------------------------------

    async def test_set_returns_new_and_previous(self, repository: CounterRepository) -> None:
        first = await repository.set(CounterId.default("s"), 41)
        assert (first.counter.count, first.previous) == (41, 0)
        second = await repository.set(CounterId.default("s"), -5)
        assert (second.counter.count, second.previous) == (-5, 41)
        assert (await repository.get(CounterId.default("s"))).count == -5

    async def test_delete_returns_last_value_and_counter_reads_zero(
        self, repository: CounterRepository
    ) -> None:
        await repository.increment(CounterId.default("d"), 9)
        deleted = await repository.delete(CounterId.default("d"))
        assert deleted is not None
        assert deleted.count == 9
        assert (await repository.get(CounterId.default("d"))).count == 0
        assert await repository.delete(CounterId.default("d")) is None
        assert (await repository.increment(CounterId.default("d"), 1)).counter.count == 1

    async def test_list_is_sorted_and_paginated(self, repository: CounterRepository) -> None:
        names = [f"n{i:03d}" for i in range(25)]
        for i, name in enumerate(reversed(names)):
            await repository.increment(CounterId.default(name), i + 1)
        seen: list[tuple[str, int]] = []
        after: str | None = None
        pages = 0
        while True:
            page = await repository.list("default", after, 10)
            pages += 1
            seen.extend((c.key, c.count) for c in page.counters)
            if page.next_after is None:
                break
            after = page.next_after
        assert [n for n, _ in seen] == names
        assert dict(seen)["n024"] == 1
        assert pages == 3

    async def test_list_skips_deleted_and_starts_after_cursor(self, repository: CounterRepository) -> None:
        for name in ("a", "b", "c"):
            await repository.increment(CounterId.default(name), 1)
        await repository.delete(CounterId.default("b"))
        page = await repository.list("default", None, 10)
        assert [c.key for c in page.counters] == ["a", "c"]
        assert page.next_after is None
        assert [c.key for c in (await repository.list("default", "a", 10)).counters] == ["c"]
        assert (await repository.list("default", None, 1)).next_after == "a"

    # --- idempotency ----------------------------------------------------------------------

    async def test_same_key_same_request_is_applied_once(self, repository: CounterRepository) -> None:
        first = await repository.increment(CounterId.default("c"), 1, key("k1"))
        again = await repository.increment(CounterId.default("c"), 1, key("k1"))
        assert not first.replayed
        assert again.replayed
        assert again.counter.count == first.counter.count == 1
        assert (await repository.get(CounterId.default("c"))).count == 1

    async def test_same_key_other_request_is_refused_and_changes_nothing(
        self, repository: CounterRepository
    ) -> None:
        await repository.increment(CounterId.default("c"), 1, key("k2"))
        with pytest.raises(IdempotencyKeyReusedError, match=REUSED_MESSAGE):
            await repository.increment(CounterId.default("c"), 2, key("k2", by=2))
        with pytest.raises(IdempotencyKeyReusedError, match=REUSED_MESSAGE):
            await repository.increment(CounterId.default("other"), 1, key("k2", name="other"))
        assert (await repository.get(CounterId.default("c"))).count == 1
        assert (await repository.get(CounterId.default("other"))).count == 0

    async def test_a_replay_returns_the_recorded_state_after_the_counter_moved_on(
        self, repository: CounterRepository
    ) -> None:
        first = await repository.increment(CounterId.default("c"), 1, key("k-moved"))
        await repository.increment(CounterId.default("c"), 5)
        await repository.set(CounterId.default("c"), 100)
        again = await repository.increment(CounterId.default("c"), 1, key("k-moved"))
        assert again.replayed
        assert again.counter == first.counter  # the count and the timestamps it answered with
        assert (await repository.get(CounterId.default("c"))).count == 100

    async def test_keys_a_naive_encoding_would_confuse_stay_separate(
        self, repository: CounterRepository
    ) -> None:
        # Pairs that a store would merge if it escaped, truncated, case-folded or joined keys
        # with its own separators instead of naming records by Idempotency.record_key. (Spaces
        # around a key are not part of it: Idempotency.for_increment strips them, RFC 9110.)
        keys = [
            "a:b",
            "a_b",
            "a:b:",
            ":a:b",
            "a b",
            "a  b",
            "a b b",
            "A B",
            "x" * 255,
            "x" * 254 + "y",
            "x" * 254,
            "idem:a",
            "{a}",
            "a%3Ab",
            "a\\b",
            '"a"',
            "~",
        ]
        assert len(set(keys)) == len(keys)
        results = [await repository.increment(CounterId.default("c"), 1, key(value)) for value in keys]
        assert [r.replayed for r in results] == [False] * len(keys)
        assert [r.counter.count for r in results] == list(range(1, len(keys) + 1))
        for value, result in zip(keys, results, strict=True):
            again = await repository.increment(CounterId.default("c"), 1, key(value))
            assert again.replayed, value
            assert again.counter.count == result.counter.count, value
        assert (await repository.get(CounterId.default("c"))).count == len(keys)

    async def test_fifty_concurrent_requests_with_one_key_count_once(
        self, repository: CounterRepository
    ) -> None:
        results = await asyncio.gather(
            *(repository.increment(CounterId.default("c"), 1, key("k3")) for _ in range(50))
        )
        assert (await repository.get(CounterId.default("c"))).count == 1
        assert {r.counter.count for r in results} == {1}
        assert sum(not r.replayed for r in results) == 1

    async def test_expired_key_counts_again(self, repository: CounterRepository) -> None:
        await repository.increment(CounterId.default("c"), 1, key("k4", ttl=0.3))
        await asyncio.sleep(1.2)
        again = await repository.increment(CounterId.default("c"), 1, key("k4", ttl=0.3))
        assert not again.replayed
        assert (await repository.get(CounterId.default("c"))).count == 2

    async def test_refused_increment_records_no_key(self, repository: CounterRepository) -> None:
        await repository.set(CounterId.default("c"), INT64_MAX)
        with pytest.raises(CounterOverflowError):
            await repository.increment(CounterId.default("c"), 1, key("k5"))
        await repository.set(CounterId.default("c"), 0)
        result = await repository.increment(CounterId.default("c"), 1, key("k5"))
        assert not result.replayed
        assert result.counter.count == 1

    async def test_keys_survive_a_restart_on_durable_stores(
        self, repository: CounterRepository, reopen: Reopen
    ) -> None:
        first = await repository.increment(CounterId.default("c"), 1, key("k6"))
        if reopen is None:
            pytest.skip("this store keeps nothing across a restart")
        second_instance = await reopen()
        again = await second_instance.increment(CounterId.default("c"), 1, key("k6"))
        assert again.replayed
        assert again.counter.count == first.counter.count
        assert (await second_instance.get(CounterId.default("c"))).count == 1

    async def test_counts_survive_a_restart_on_durable_stores(
        self, repository: CounterRepository, reopen: Reopen
    ) -> None:
        await repository.increment(CounterId.default("c"), 3)
        if reopen is None:
            pytest.skip("this store keeps nothing across a restart")
        assert (await (await reopen()).get(CounterId.default("c"))).count == 3

    # --- health ---------------------------------------------------------------------------

    async def test_ping_answers_when_the_store_is_up(self, repository: CounterRepository) -> None:
        await repository.ping()
        assert isinstance(repository, CounterRepository)
