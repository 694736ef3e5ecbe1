"""What every store must do with a counter's version (part of RepositoryContract): 0 while the
counter does not exist, 1 once it is made, strictly growing with every change, kept across a
restart and replayed with an Idempotency-Key's recorded result; a set or delete made on an
expected version is refused, changing nothing, when the counter is not at it.

A deleted counter made again starts again at 1: the version orders the states of one life of a
counter, and a counter that does not exist is at 0, so the first version of the new life differs
from what the deleted counter reads as. (An `If-Match` taken before the delete may match the
new counter's version: the delete's answer said the counter was gone.)"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import pytest

from domain.errors import VersionMismatchError
from domain.idempotency import Idempotency
from domain.model import CounterId
from domain.ports import CounterRepository
from domain.rules import Rules

Reopen = Callable[[], Awaitable[CounterRepository]] | None

COUNTER = CounterId("versions", "v")


def _key(value: str, by: int = 1) -> Idempotency:
    return Idempotency.for_increment(value, COUNTER, by, 3600.0)


class VersionContract:
    async def test_a_missing_counter_is_at_version_0(self, repository: CounterRepository) -> None:
        assert (await repository.get(COUNTER)).version == 0

    async def test_the_first_increment_makes_version_1(self, repository: CounterRepository) -> None:
        assert (await repository.increment(COUNTER, 5)).counter.version == 1
        assert (await repository.get(COUNTER)).version == 1

    async def test_create_makes_version_1(self, repository: CounterRepository) -> None:
        assert (await repository.create(COUNTER, 7, Rules(), None)).version == 1
        assert (await repository.get(COUNTER)).version == 1

    async def test_a_first_set_makes_version_1(self, repository: CounterRepository) -> None:
        assert (await repository.set(COUNTER, 9)).counter.version == 1
        assert (await repository.get(COUNTER)).version == 1

    async def test_every_increment_and_set_grows_the_version(self, repository: CounterRepository) -> None:
        versions = [(await repository.increment(COUNTER, 1)).counter.version]
        versions.append((await repository.increment(COUNTER, -3)).counter.version)
        versions.append((await repository.set(COUNTER, 40)).counter.version)
        versions.append((await repository.set(COUNTER, 40)).counter.version)  # the same value: a write
        versions.append((await repository.increment(COUNTER, 2)).counter.version)
        assert versions[0] == 1
        assert all(a < b for a, b in itertools.pairwise(versions)), versions
        read = await repository.get(COUNTER)
        assert (read.count, read.version) == (42, versions[-1])

    async def test_reads_and_listings_carry_the_version(self, repository: CounterRepository) -> None:
        await repository.increment(COUNTER, 1)
        written = (await repository.increment(COUNTER, 1)).counter.version
        assert (await repository.get(COUNTER)).version == written
        assert (await repository.get(COUNTER, touch=True)).version == written
        listed = (await repository.list(COUNTER.namespace, None, 10)).counters
        assert [(c.key, c.version) for c in listed] == [(COUNTER.key, written)]

    async def test_concurrent_increments_each_answer_their_own_version(
        self, repository: CounterRepository
    ) -> None:
        """Each answer is one state of the counter: no two share a version, even where a store
        writes many increments at once, and the last state read is the highest."""
        results = await asyncio.gather(*(repository.increment(COUNTER, 1) for _ in range(50)))
        by_count = sorted((r.counter.count, r.counter.version) for r in results)
        versions = [version for _, version in by_count]
        assert versions == sorted(set(versions)), by_count
        assert (await repository.get(COUNTER)).version == versions[-1]

    async def test_a_replay_returns_the_version_recorded_with_it(self, repository: CounterRepository) -> None:
        first = (await repository.increment(COUNTER, 1, _key("v-once"))).counter
        later = (await repository.increment(COUNTER, 1)).counter
        assert later.version > first.version
        replayed = await repository.increment(COUNTER, 1, _key("v-once"))
        assert replayed.replayed
        assert (replayed.counter.count, replayed.counter.version) == (first.count, first.version)
        assert (await repository.get(COUNTER)).version == later.version

    async def test_delete_returns_the_last_version_and_a_new_counter_starts_at_1(
        self, repository: CounterRepository
    ) -> None:
        await repository.increment(COUNTER, 1)
        last = (await repository.increment(COUNTER, 1)).counter.version
        deleted = await repository.delete(COUNTER)
        assert deleted is not None
        assert deleted.version == last
        assert (await repository.get(COUNTER)).version == 0
        assert (await repository.increment(COUNTER, 1)).counter.version == 1

    async def test_the_version_survives_a_restart(
        self, repository: CounterRepository, reopen: Reopen
    ) -> None:
        await repository.increment(COUNTER, 1)
        written = (await repository.set(COUNTER, 5)).counter.version
        if reopen is None:
            pytest.skip("this store keeps nothing across a restart")
        again = await reopen()
        assert (await again.get(COUNTER)).version == written
        assert (await again.increment(COUNTER, 1)).counter.version > written

    # --- compare-and-set: the expected version is checked in the write's own atomic step ------

    async def test_a_set_at_a_stale_version_is_refused_and_changes_nothing(
        self, repository: CounterRepository
    ) -> None:
        await repository.increment(COUNTER, 3)
        stale = (await repository.get(COUNTER)).version
        now = (await repository.increment(COUNTER, 1)).counter
        with pytest.raises(VersionMismatchError) as refused:
            await repository.set(COUNTER, 100, expected_version=stale)
        assert refused.value.current == now.version
        read = await repository.get(COUNTER)
        assert (read.count, read.version) == (now.count, now.version)

    async def test_a_set_at_the_current_version_is_applied(self, repository: CounterRepository) -> None:
        current = (await repository.increment(COUNTER, 3)).counter
        replaced = await repository.set(COUNTER, 100, expected_version=current.version)
        assert (replaced.previous, replaced.counter.count) == (3, 100)
        assert replaced.counter.version > current.version
        assert (await repository.get(COUNTER)).count == 100

    async def test_version_0_expects_no_counter(self, repository: CounterRepository) -> None:
        made = await repository.set(COUNTER, 5, expected_version=0)
        assert (made.counter.count, made.counter.version) == (5, 1)
        with pytest.raises(VersionMismatchError):
            await repository.set(COUNTER, 6, expected_version=0)
        assert (await repository.get(COUNTER)).count == 5

    async def test_a_delete_at_a_stale_version_is_refused_and_keeps_the_counter(
        self, repository: CounterRepository
    ) -> None:
        first = (await repository.increment(COUNTER, 1)).counter
        now = (await repository.increment(COUNTER, 1)).counter
        with pytest.raises(VersionMismatchError):
            await repository.delete(COUNTER, expected_version=first.version)
        read = await repository.get(COUNTER)
        assert (read.count, read.version) == (now.count, now.version)
        deleted = await repository.delete(COUNTER, expected_version=now.version)
        assert deleted is not None
        assert deleted.count == now.count
        assert (await repository.get(COUNTER)).version == 0

    async def test_a_conditional_change_of_a_missing_counter_is_refused(
        self, repository: CounterRepository
    ) -> None:
        with pytest.raises(VersionMismatchError) as refused:
            await repository.delete(COUNTER, expected_version=1)
        assert refused.value.current == 0
        with pytest.raises(VersionMismatchError):
            await repository.set(COUNTER, 1, expected_version=2)
        assert (await repository.get(COUNTER)).version == 0
        assert (await repository.list(COUNTER.namespace, None, 10)).counters == []

    # --- the life of a counter: a set or delete on `expected_created_at` --------------------

    async def test_a_change_on_the_counters_own_created_at_is_applied(
        self, repository: CounterRepository
    ) -> None:
        made = await repository.create(COUNTER, 3, Rules(), None)
        await repository.increment(COUNTER, 1)  # a change within the same life
        replaced = await repository.set(COUNTER, 10, expected_created_at=made.created_at)
        assert (replaced.previous, replaced.counter.count) == (4, 10)
        read = await repository.get(COUNTER)
        assert read.created_at == made.created_at
        deleted = await repository.delete(COUNTER, read.version, expected_created_at=read.created_at)
        assert deleted is not None
        assert deleted.count == 10
        assert (await repository.get(COUNTER)).version == 0

    async def test_a_counter_made_again_at_the_same_version_is_not_the_one_expected(
        self, repository: CounterRepository
    ) -> None:
        """Versions start again at 1, so only the creation time tells the two lives apart."""
        first = await repository.create(COUNTER, 3, Rules(), "first-owner")
        await repository.delete(COUNTER)
        await asyncio.sleep(0.002)  # the coarsest store (ConfigMap) stamps to the millisecond
        again = await repository.create(COUNTER, 7, Rules(), "second-owner")
        assert again.version == first.version
        assert again.created_at != first.created_at
        for write in (
            repository.set(COUNTER, 0, first.version, expected_created_at=first.created_at),
            repository.set(COUNTER, 0, expected_created_at=first.created_at),
            repository.delete(COUNTER, first.version, expected_created_at=first.created_at),
            repository.delete(COUNTER, expected_created_at=first.created_at),
        ):
            with pytest.raises(VersionMismatchError) as refused:
                await write
            assert refused.value.current == again.version
        read = await repository.get(COUNTER)
        assert (read.count, read.version, read.admin_key_hash) == (7, again.version, "second-owner")
        assert read.created_at == again.created_at

    async def test_a_counter_gone_is_not_the_one_expected(self, repository: CounterRepository) -> None:
        made = await repository.create(COUNTER, 3, Rules(), None)
        await repository.delete(COUNTER)
        with pytest.raises(VersionMismatchError):
            await repository.set(COUNTER, 5, expected_created_at=made.created_at)
        with pytest.raises(VersionMismatchError):
            await repository.delete(COUNTER, expected_created_at=made.created_at)
        assert (await repository.get(COUNTER)).version == 0
        assert (await repository.list(COUNTER.namespace, None, 10)).counters == []
