"""What every store must do with the rules of counters created explicitly (part of
RepositoryContract): kept with the counter, checked atomically with each write, gone with it.

Expiry uses a ttl of 1 s and waits a bounded 1.5 s; everything else compares stored values."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import CounterExistsError, StepOutOfRangeError
from domain.idempotency import Idempotency
from domain.model import CounterId
from domain.ports import CounterRepository
from domain.rules import Rules, hash_admin_key

RULES = Rules(min_step=-1, max_step=2, resettable=True, ttl_seconds=3600)
KEY_HASH = hash_admin_key("the-admin-key")
EXPIRY_WAIT_SECONDS = 1.5


class RulesContract:
    async def test_create_keeps_the_rules_the_expiry_and_the_key_hash(
        self, repository: CounterRepository
    ) -> None:
        counter = CounterId("ns", "made")
        before = datetime.now(UTC)
        created = await repository.create(counter, 7, RULES, KEY_HASH)
        assert (created.id, created.count, created.rules, created.admin_key_hash) == (
            counter,
            7,
            RULES,
            KEY_HASH,
        )
        assert created.created_at is not None
        assert created.expires_at is not None
        assert before + timedelta(seconds=3590) < created.expires_at < before + timedelta(seconds=3610)
        read = await repository.get(counter)
        assert (read.count, read.rules, read.admin_key_hash) == (7, RULES, KEY_HASH)
        assert read.expires_at is not None
        assert abs((read.expires_at - created.expires_at).total_seconds()) < 0.01
        listed = (await repository.list("ns", None, 10)).counters
        assert [(c.key, c.rules, c.admin_key_hash) for c in listed] == [("made", RULES, KEY_HASH)]

    async def test_default_rules_and_no_key_round_trip(self, repository: CounterRepository) -> None:
        created = await repository.create(CounterId("ns", "plain"), 0, Rules(), None)
        read = await repository.get(CounterId("ns", "plain"))
        assert (created.rules, read.rules, read.admin_key_hash, read.expires_at) == (
            Rules(),
            Rules(),
            None,
            None,
        )

    async def test_a_hit_makes_a_counter_without_rules(self, repository: CounterRepository) -> None:
        hit = (await repository.increment(CounterId("ns", "hit"), 1)).counter
        assert (hit.rules, hit.expires_at, hit.admin_key_hash) == (None, None, None)
        assert (await repository.get(CounterId("ns", "hit"))).rules is None

    async def test_create_on_an_existing_counter_is_refused_and_changes_nothing(
        self, repository: CounterRepository
    ) -> None:
        counter = CounterId("ns", "twice")
        await repository.create(counter, 3, RULES, KEY_HASH)
        with pytest.raises(CounterExistsError):
            await repository.create(counter, 9, Rules(), None)
        read = await repository.get(counter)
        assert (read.count, read.rules, read.admin_key_hash) == (3, RULES, KEY_HASH)
        await repository.increment(CounterId("ns", "hit-first"), 1)
        with pytest.raises(CounterExistsError):
            await repository.create(CounterId("ns", "hit-first"), 5, RULES, None)
        assert (await repository.get(CounterId("ns", "hit-first"))).count == 1

    async def test_a_step_outside_the_range_is_refused_and_changes_nothing(
        self, repository: CounterRepository
    ) -> None:
        counter = CounterId("ns", "steps")
        await repository.create(counter, 10, RULES, None)
        for by in (3, -2, 1000):
            with pytest.raises(StepOutOfRangeError):
                await repository.increment(counter, by)
        keyed = Idempotency.for_increment("step-key", counter, 5, 3600.0)
        with pytest.raises(StepOutOfRangeError):
            await repository.increment(counter, 5, keyed)
        assert (await repository.get(counter)).count == 10
        assert (await repository.increment(counter, 2)).counter.count == 12
        assert (await repository.increment(counter, -1)).counter.count == 11
        incremented = await repository.increment(
            counter, 1, Idempotency.for_increment("k2", counter, 1, 3600.0)
        )
        assert (incremented.counter.count, incremented.counter.rules) == (12, RULES)

    async def test_one_sided_ranges(self, repository: CounterRepository) -> None:
        up_only = CounterId("ns", "up")
        await repository.create(up_only, 0, Rules(min_step=0), None)
        with pytest.raises(StepOutOfRangeError):
            await repository.increment(up_only, -1)
        assert (await repository.increment(up_only, 2**40)).counter.count == 2**40

    async def test_set_and_increment_keep_the_rules_delete_forgets_them(
        self, repository: CounterRepository
    ) -> None:
        counter = CounterId("ns", "kept")
        await repository.create(counter, 0, RULES, KEY_HASH)
        replaced = await repository.set(counter, 40)
        assert (replaced.previous, replaced.counter.rules, replaced.counter.admin_key_hash) == (
            0,
            RULES,
            KEY_HASH,
        )
        assert (await repository.get(counter)).rules == RULES
        deleted = await repository.delete(counter)
        assert deleted is not None
        assert (deleted.count, deleted.rules) == (40, RULES)
        assert (await repository.get(counter)).rules is None
        again = await repository.create(counter, 1, Rules(max_step=5), None)
        assert (again.count, again.rules, again.admin_key_hash) == (1, Rules(max_step=5), None)

    async def test_writes_and_touching_reads_push_the_expiry_forward(
        self, repository: CounterRepository
    ) -> None:
        counter = CounterId("ns", "pushed")
        created = await repository.create(counter, 0, Rules(ttl_seconds=3600), None)
        await asyncio.sleep(0.05)
        incremented = (await repository.increment(counter, 1)).counter
        await asyncio.sleep(0.05)
        replaced = (await repository.set(counter, 5)).counter
        await asyncio.sleep(0.05)
        untouched = await repository.get(counter)
        await asyncio.sleep(0.05)
        touched = await repository.get(counter, touch=True)
        stamps = [c.expires_at for c in (created, incremented, replaced, untouched, touched)]
        first, after_hit, after_set, read, after_touch = (s for s in stamps if s is not None)
        assert len([s for s in stamps if s is not None]) == len(stamps)
        assert first < after_hit < after_set
        assert abs((read - after_set).total_seconds()) < 0.01
        assert after_touch > after_set
        assert (await repository.get(counter)).expires_at == after_touch

    async def test_an_expired_counter_is_gone_and_can_be_made_again(
        self, repository: CounterRepository
    ) -> None:
        short, hit_after, set_after = (
            CounterId("ns", "short"),
            CounterId("ns", "hit-after"),
            CounterId("ns", "set-after"),
        )
        for counter in (short, hit_after, set_after):
            await repository.create(counter, 5, Rules(max_step=1, ttl_seconds=1), KEY_HASH)
        await repository.increment(CounterId("ns", "stays"), 1)
        await asyncio.sleep(EXPIRY_WAIT_SECONDS)
        gone = await repository.get(short)
        assert (gone.count, gone.rules, gone.created_at, gone.admin_key_hash) == (0, None, None, None)
        assert [c.key for c in (await repository.list("ns", None, 10)).counters] == ["stays"]
        # An increment re-creates it implicitly, without rules: the old max_step is gone too.
        again = (await repository.increment(hit_after, 3)).counter
        assert (again.count, again.rules, again.expires_at, again.admin_key_hash) == (3, None, None, None)
        replaced = await repository.set(set_after, 9)
        assert (replaced.previous, replaced.counter.rules, replaced.counter.expires_at) == (0, None, None)
        assert await repository.delete(short) is None
        made = await repository.create(short, 2, RULES, None)
        assert (made.count, made.rules) == (2, RULES)
        assert (await repository.get(short)).count == 2
