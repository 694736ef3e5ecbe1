"""What every store must do to restore counters (part of RepositoryContract): a counter written
with exactly the given state where it is absent, left alone (unchanged, or a conflict) where it
is not, overwritten only when asked; and the listing of namespaces that export walks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import StepOutOfRangeError
from domain.model import Counter, CounterId
from domain.ports import CounterRepository
from domain.restore import TIME_RESOLUTION, RestoreOutcome
from domain.rules import Rules, hash_admin_key

CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
UPDATED = datetime(2024, 5, 6, 7, 8, 9, 456000, tzinfo=UTC)
RULES = Rules(min_step=0, max_step=1, ttl_seconds=30 * 24 * 3600)
KEY_HASH = hash_admin_key("restored-key")


def near(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs(a - b) < TIME_RESOLUTION


def full(name: str = "full", count: int = 1234, version: int = 7) -> Counter:
    return Counter(
        CounterId("moved", name),
        count,
        created_at=CREATED,
        updated_at=UPDATED,
        rules=RULES,
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=10),
        admin_key_hash=KEY_HASH,
        version=version,
    )


class RestoreContract:
    async def test_restore_writes_the_given_state_exactly(self, repository: CounterRepository) -> None:
        wanted = full()
        restored = await repository.restore(wanted)
        assert restored.outcome is RestoreOutcome.WRITTEN
        for read in (await repository.get(wanted.id), (await repository.list("moved", None, 10)).counters[0]):
            assert (read.id, read.count, read.rules, read.admin_key_hash) == (
                wanted.id,
                1234,
                RULES,
                KEY_HASH,
            )
            assert near(read.created_at, CREATED)
            assert near(read.updated_at, UPDATED)
            assert near(read.expires_at, wanted.expires_at)
            assert read.version == 7

    async def test_a_second_restore_changes_nothing(self, repository: CounterRepository) -> None:
        await repository.restore(full())
        before = await repository.get(full().id)
        again = await repository.restore(full())
        assert again.outcome is RestoreOutcome.UNCHANGED
        after = await repository.get(full().id)
        assert (after.count, after.updated_at, after.version) == (
            before.count,
            before.updated_at,
            before.version,
        )

    async def test_a_different_counter_is_a_conflict_left_alone(self, repository: CounterRepository) -> None:
        await repository.increment(CounterId("moved", "full"), 5)
        conflict = await repository.restore(full())
        assert conflict.outcome is RestoreOutcome.CONFLICT
        assert conflict.counter.count == 5
        read = await repository.get(CounterId("moved", "full"))
        assert (read.count, read.rules, read.admin_key_hash) == (5, None, None)

    async def test_replace_overwrites_and_the_version_never_goes_back(
        self, repository: CounterRepository
    ) -> None:
        for _ in range(3):
            last = (await repository.increment(CounterId("moved", "full"), 1)).counter
        replaced = await repository.restore(full(version=1), replace=True)
        assert replaced.outcome is RestoreOutcome.REPLACED
        read = await repository.get(CounterId("moved", "full"))
        assert (read.count, read.rules, read.admin_key_hash) == (1234, RULES, KEY_HASH)
        assert near(read.updated_at, UPDATED)
        assert read.version == last.version + 1
        assert (await repository.restore(full(version=1), replace=True)).outcome is RestoreOutcome.UNCHANGED

    async def test_rules_of_a_restored_counter_are_enforced(self, repository: CounterRepository) -> None:
        await repository.restore(full())
        with pytest.raises(StepOutOfRangeError):
            await repository.increment(CounterId("moved", "full"), 2)
        assert (await repository.increment(CounterId("moved", "full"), 1)).counter.count == 1235

    async def test_times_left_out_are_the_stores_now_and_not_compared(
        self, repository: CounterRepository
    ) -> None:
        bare = Counter(CounterId.default("noted"), 42)
        before = datetime.now(UTC) - timedelta(seconds=1)
        assert (await repository.restore(bare)).outcome is RestoreOutcome.WRITTEN
        read = await repository.get(bare.id)
        assert (read.count, read.rules, read.admin_key_hash) == (42, None, None)
        assert read.created_at is not None
        assert read.updated_at is not None
        assert before <= read.created_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert (await repository.restore(bare)).outcome is RestoreOutcome.UNCHANGED
        dated = Counter(CounterId.default("dated"), 7, updated_at=UPDATED)
        await repository.restore(dated)
        read = await repository.get(dated.id)
        assert near(read.created_at, UPDATED)
        assert near(read.updated_at, UPDATED)

    async def test_an_expired_counter_is_not_written(self, repository: CounterRepository) -> None:
        gone = Counter(
            CounterId("moved", "gone"),
            3,
            rules=Rules(ttl_seconds=60),
            expires_at=datetime.now(UTC) - timedelta(1),
        )
        assert (await repository.restore(gone)).outcome is RestoreOutcome.EXPIRED
        assert (await repository.get(gone.id)).created_at is None
        assert (await repository.list("moved", None, 10)).counters == []

    async def test_a_ttl_without_an_expiry_expires_from_now(self, repository: CounterRepository) -> None:
        wanted = Counter(CounterId("moved", "ttl"), 1, rules=Rules(ttl_seconds=3600))
        await repository.restore(wanted)
        read = await repository.get(wanted.id)
        assert read.expires_at is not None
        assert abs((read.expires_at - datetime.now(UTC)).total_seconds() - 3600) < 60

    async def test_namespaces_are_listed_sorted_and_paged(self, repository: CounterRepository) -> None:
        for namespace in ("zeta", "alpha", "default", "mid.dle", "b-2"):
            await repository.increment(CounterId(namespace, "one"), 1)
            await repository.increment(CounterId(namespace, "two"), 1)
        everything = await repository.namespaces(None, 100)
        assert everything == ["alpha", "b-2", "default", "mid.dle", "zeta"]
        assert await repository.namespaces(None, 2) == ["alpha", "b-2"]
        assert await repository.namespaces("b-2", 2) == ["default", "mid.dle"]
        assert await repository.namespaces("mid.dle", 2) == ["zeta"]
        await repository.delete(CounterId("alpha", "one"))
        await repository.delete(CounterId("alpha", "two"))
        assert await repository.namespaces(None, 100) == ["b-2", "default", "mid.dle", "zeta"]
