from __future__ import annotations

import pytest

from adapters.memory import InMemoryCounterRepository
from domain.errors import (
    CounterOverflowError,
    InvalidAmountError,
    InvalidCounterNameError,
    InvalidIdempotencyKeyError,
    InvalidInputError,
    OutcomeUnknownError,
    StoreCorruptedError,
    StoreUnavailableError,
)
from domain.idempotency import Idempotency
from domain.model import INT64_MAX, INT64_MIN, CounterId, add_checked, check_amount, check_name
from domain.services import CounterService


@pytest.mark.parametrize(
    "name",
    ["a", "A1", "0", "default", "a.b-c_d", "x" * 63, "9lives", "x" * 64, "-ab", "_ab", "...", "_idempotency"],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 65, "-a", "_a", ".a", "-" * 65, "a b", "a/b", "é", "a:b", "a\n", "ab\n", "x" * 64 + "\n"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidCounterNameError):
        check_name(name)


@pytest.mark.parametrize("by", [0, INT64_MAX + 1, INT64_MIN - 1, True])
def test_invalid_amounts(by: int) -> None:
    with pytest.raises(InvalidAmountError):
        check_amount(by)


def test_add_checked_refuses_to_leave_int64() -> None:
    assert add_checked("c", INT64_MAX - 1, 1) == INT64_MAX
    with pytest.raises(CounterOverflowError):
        add_checked("c", INT64_MAX, 1)
    with pytest.raises(CounterOverflowError):
        add_checked("c", INT64_MIN, -1)


def test_fingerprint_depends_on_name_and_amount() -> None:
    a = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    assert a == Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    assert a.fingerprint != Idempotency.for_increment("k", CounterId.default("c"), 2, 60).fingerprint
    assert a.fingerprint != Idempotency.for_increment("k", CounterId.default("d"), 1, 60).fingerprint
    with pytest.raises(InvalidIdempotencyKeyError):
        Idempotency.for_increment("", CounterId.default("c"), 1, 60)


@pytest.mark.parametrize("spaced", ["k ", " k", "\tk", "k \t ", " \t k\t"])
def test_spaces_and_tabs_around_an_idempotency_key_are_not_part_of_it(spaced: str) -> None:
    plain = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    assert Idempotency.for_increment(spaced, CounterId.default("c"), 1, 60) == plain
    assert Idempotency.for_increment(spaced, CounterId.default("c"), 1, 60).record_key == plain.record_key


@pytest.mark.parametrize("key", [" ", "\t", " \t ", "a\tb", "a\nb", " " + "x" * 256])
def test_what_is_left_of_an_idempotency_key_must_be_printable_ascii(key: str) -> None:
    with pytest.raises(InvalidIdempotencyKeyError):
        Idempotency.for_increment(key, CounterId.default("c"), 1, 60)


def test_inner_spaces_are_part_of_an_idempotency_key() -> None:
    assert Idempotency.for_increment("a b", CounterId.default("c"), 1, 60).key == "a b"
    assert Idempotency.for_increment(" " + "x" * 255 + " ", CounterId.default("c"), 1, 60).key == "x" * 255


def test_store_errors_keep_the_operator_message_and_what_a_client_may_see() -> None:
    unreadable = StoreCorruptedError("counter:c:x holds b'abc'", counter="x")
    assert (str(unreadable), unreadable.counter) == ("counter:c:x holds b'abc'", "x")
    assert StoreCorruptedError("no name").counter is None
    unknown = OutcomeUnknownError("timed out", retry_after=3)
    assert isinstance(unknown, StoreUnavailableError)
    assert (str(unknown), unknown.retry_after) == ("timed out", 3)


async def test_service_validates_before_touching_the_store() -> None:
    store = InMemoryCounterRepository()
    service = CounterService(store)
    with pytest.raises(InvalidCounterNameError):
        await service.increment(CounterId.default("bad name"))
    with pytest.raises(InvalidAmountError):
        await service.increment(CounterId.default("c"), 0)
    with pytest.raises(InvalidAmountError):
        await service.set(CounterId.default("c"), INT64_MAX + 1)
    with pytest.raises(InvalidInputError):
        await service.list("default", limit=0)
    assert (await store.list("default", None, 10)).counters == []
    assert (await service.increment(CounterId.default("c"), 2, "key")).counter.count == 2
    assert (await service.increment(CounterId.default("c"), 2, "key")).replayed
    assert (await service.increment(CounterId.default("c"), 2, " key\t")).replayed  # the same key
