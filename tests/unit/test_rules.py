"""The rules value object, the admin key, and the service's authorization of set, reset, delete."""

from __future__ import annotations

import hashlib

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.errors import (
    ForbiddenError,
    InvalidInputError,
    NoAdminKeyError,
    StepOutOfRangeError,
    WrongAdminKeyError,
)
from domain.model import CounterId
from domain.rules import STEP_LIMIT, Rules, admin_key_matches, hash_admin_key
from domain.services import CounterService

COUNTER = CounterId("ns", "c")


@pytest.mark.parametrize(
    "fields",
    [{"min_step": 1}, {"max_step": -1}, {"min_step": -STEP_LIMIT - 1}, {"max_step": STEP_LIMIT + 1},
     {"ttl_seconds": 0}, {"ttl_seconds": 1.5}, {"min_step": True}, {"resettable": 1}],
)  # fmt: skip
def test_invalid_rules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        Rules(**fields)  # type: ignore[arg-type]


def test_the_step_range_is_inclusive_and_open_where_unset() -> None:
    rules = Rules(min_step=-2, max_step=3)
    assert [rules.allows(by) for by in (-3, -2, 3, 4)] == [False, True, True, False]
    assert Rules().allows(2**63 - 1)
    assert Rules(min_step=0).allows(10**18)
    with pytest.raises(StepOutOfRangeError, match="from -2 to 3, not 4"):
        rules.check_step(COUNTER, 4)


def test_rules_round_trip_their_stored_form() -> None:
    for rules in (Rules(), Rules(min_step=-1, max_step=1, resettable=True, ttl_seconds=60)):
        assert Rules.load(rules.dump()) == rules
    assert Rules().dump() == "{}"
    for bad in ('{"min_step": 1}', '{"other": 1}', "[]"):
        with pytest.raises(ValueError, match=r"rules|min_step"):
            Rules.load(bad)


def test_the_admin_key_is_kept_as_its_sha256_only() -> None:
    assert hash_admin_key("k") == hashlib.sha256(b"k").hexdigest()
    assert admin_key_matches("k", hash_admin_key("k"))
    assert not admin_key_matches("K", hash_admin_key("k"))
    assert not admin_key_matches(None, hash_admin_key("k"))
    assert not admin_key_matches("k", None)


async def test_create_mints_a_key_once_and_the_key_authorizes_that_counter() -> None:
    repository = InMemoryCounterRepository()
    service = CounterService(repository)
    counter, key = await service.create(COUNTER, 3, Rules(max_step=1))
    assert key is not None
    assert counter.admin_key_hash == hash_admin_key(key)
    assert (await service.get(COUNTER)).admin_key_hash == hash_admin_key(key)
    _, other_key = await service.create(CounterId("ns", "other"))
    assert await service.authorize(COUNTER, key)
    assert not await service.authorize(COUNTER, other_key)
    with pytest.raises(ForbiddenError):
        await service.set(COUNTER, 0, admin=False, admin_key=other_key)
    assert (await service.set(COUNTER, 9, admin=False, admin_key=key)).counter.count == 9
    with pytest.raises(ForbiddenError):
        await service.delete(COUNTER, admin=False)
    assert await service.delete(COUNTER, admin=False, admin_key=key) is not None
    _, none = await service.create(COUNTER, admin_key=False)
    assert none is None
    assert (await service.get(COUNTER)).admin_key_hash is None


async def test_a_resettable_counter_is_set_by_anyone_but_not_deleted() -> None:
    service = CounterService(InMemoryCounterRepository())
    await service.create(COUNTER, 5, Rules(resettable=True), admin_key=False)
    assert (await service.set(COUNTER, 0, admin=False)).previous == 5
    with pytest.raises(ForbiddenError):
        await service.delete(COUNTER, admin=False)
    await service.increment(CounterId("ns", "hit"))
    with pytest.raises(ForbiddenError):
        await service.set(CounterId("ns", "hit"), 0, admin=False)
    assert (await service.set(CounterId("ns", "hit"), 0)).previous == 1


async def test_check_owner_tells_a_counter_without_a_key_from_a_wrong_key() -> None:
    service = CounterService(InMemoryCounterRepository())
    owned, hit, missing = CounterId("ns", "owned"), CounterId("ns", "hit"), CounterId("ns", "missing")
    _, key = await service.create(owned, 5)
    await service.increment(hit)
    assert key is not None
    assert (await service.check_owner(owned, key)).count == 5
    with pytest.raises(WrongAdminKeyError):
        await service.check_owner(owned, key + "x")
    with pytest.raises(WrongAdminKeyError):
        await service.check_owner(owned, "")
    for counter in (hit, missing):
        with pytest.raises(NoAdminKeyError):
            await service.check_owner(counter, key)
    assert issubclass(NoAdminKeyError, ForbiddenError)  # the native API answers both 403
    assert issubclass(WrongAdminKeyError, ForbiddenError)


async def test_ensure_makes_a_missing_counter_once_with_its_rules() -> None:
    service = CounterService(InMemoryCounterRepository())
    counter = CounterId("ns", "first")
    rules = Rules(ttl_seconds=60)
    assert await service.ensure(counter, rules) is True
    assert await service.ensure(counter, Rules(max_step=1)) is False
    made = await service.get(counter)
    assert (made.exists, made.count, made.rules, made.admin_key_hash) == (True, 0, rules, None)
    assert not (await service.get(CounterId("ns", "other"))).exists
