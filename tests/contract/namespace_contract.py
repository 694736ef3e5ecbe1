"""What every store must do with namespaces, stated once (part of RepositoryContract).

Every name the domain accepts must round-trip, in every namespace, without sharing stored data
with another (namespace, key) pair or with the store's own bookkeeping."""

from __future__ import annotations

import pytest

from domain.errors import IdempotencyKeyReusedError, InvalidCounterNameError
from domain.idempotency import Idempotency
from domain.model import DEFAULT_NAMESPACE, CounterId
from domain.ports import CounterRepository
from domain.services import CounterService

# Every form of name: CountAPI/Abacus names that may start with . _ - (3-64 characters), the
# lengths at the edges, the 1-2 character names of before, and names that look like the stores'
# own keys (Redis `names`, `idem`, `rate-limit`, `c`, `ns`; SQLite tables; ConfigMap `_idempotency`,
# `_writers` and the ConfigMap's own encoded form `-N-...`).
NAMES = [
    "a", "Z", "7", "ab", "a-", "abc", ".ab", "_ab", "-ab", "...", "___", "---", "x" * 63, "x" * 64,
    "-" + "y" * 63, "." + "z" * 63, "_idempotency", "_writers", "names", "idem", "rate-limit", "c",
    "ns", "counters", "store_probe", "idempotency_records", "-1-ab", "-7-defaultabc", "default",
]  # fmt: skip
NAMESPACES = [DEFAULT_NAMESPACE, "ns", "a", ".ns", "_idempotency", "-1-a", "x" * 64]

# Pairs that a store joining namespace and key naively would store under one name.
CONFUSABLE = [
    (CounterId("a.b", "c"), CounterId("a", "b.c")),
    (CounterId("ab", "c"), CounterId("a", "bc")),
    (CounterId("a-b", "c"), CounterId("a", "b-c")),
    (CounterId("a_b", "c"), CounterId("a", "b_c")),
    (CounterId("default", "-7-defaultabc"), CounterId("default", "abc")),
    (CounterId("a", "bcd"), CounterId("ab", "cd")),
    (CounterId("default", "-1-abcd"), CounterId("a", "bcd")),
    (CounterId("ns", "names"), CounterId("default", "names")),
]


class NamespaceContract:
    async def test_every_valid_name_round_trips_in_every_namespace(
        self, repository: CounterRepository
    ) -> None:
        expected: dict[CounterId, int] = {}
        for i, namespace in enumerate(NAMESPACES):
            for j, key in enumerate(NAMES):
                counter = CounterId(namespace, key)
                by = 1 + i * len(NAMES) + j
                assert (await repository.increment(counter, by)).counter.id == counter
                expected[counter] = by
        for counter, count in expected.items():
            read = await repository.get(counter)
            assert (read.namespace, read.key, read.count) == (counter.namespace, counter.key, count)
        for namespace in NAMESPACES:
            page = await repository.list(namespace, None, 1000)
            assert [(c.key, c.count) for c in page.counters] == sorted(
                (c.key, n) for c, n in expected.items() if c.namespace == namespace
            )
            assert {c.namespace for c in page.counters} == {namespace}

    async def test_set_and_delete_take_every_form_of_name(self, repository: CounterRepository) -> None:
        for key in NAMES:
            counter = CounterId(".ns", key)
            assert (await repository.set(counter, 5)).previous == 0
            deleted = await repository.delete(counter)
            assert deleted is not None
            assert (deleted.id, deleted.count) == (counter, 5)
            assert (await repository.get(counter)).count == 0
        assert (await repository.list(".ns", None, 10)).counters == []

    async def test_the_same_key_in_two_namespaces_is_two_counters(
        self, repository: CounterRepository
    ) -> None:
        one, two = CounterId("one", "visits"), CounterId("two", "visits")
        await repository.increment(one, 3)
        await repository.increment(two, 5)
        await repository.set(CounterId.default("visits"), 7)
        assert [(await repository.get(c)).count for c in (one, two, CounterId.default("visits"))] == [3, 5, 7]
        assert await repository.delete(one) is not None
        assert ((await repository.get(one)).count, (await repository.get(two)).count) == (0, 5)

    @pytest.mark.parametrize(("first", "second"), CONFUSABLE, ids=str)
    async def test_pairs_a_naive_encoding_would_confuse_stay_separate(
        self, repository: CounterRepository, first: CounterId, second: CounterId
    ) -> None:
        await repository.increment(first, 2)
        await repository.increment(second, 40)
        assert ((await repository.get(first)).count, (await repository.get(second)).count) == (2, 40)
        for counter in (first, second):
            listed = (await repository.list(counter.namespace, None, 100)).counters
            assert counter in [c.id for c in listed]

    async def test_listing_is_per_namespace_sorted_by_key_and_paged(
        self, repository: CounterRepository
    ) -> None:
        for key in ("b", "_cc", "a", "-dd", ".ee"):
            await repository.increment(CounterId("blog", key), 1)
        await repository.increment(CounterId("shop", "a"), 1)
        await repository.increment(CounterId.default("z"), 1)
        keys = ["-dd", ".ee", "_cc", "a", "b"]  # byte order, as every store sorts
        assert [c.key for c in (await repository.list("blog", None, 10)).counters] == keys
        first = await repository.list("blog", None, 2)
        assert ([c.key for c in first.counters], first.next_after) == (keys[:2], keys[1])
        rest = await repository.list("blog", first.next_after, 10)
        assert ([c.key for c in rest.counters], rest.next_after) == (keys[2:], None)
        assert [c.key for c in (await repository.list("shop", None, 10)).counters] == ["a"]
        assert [c.key for c in (await repository.list(DEFAULT_NAMESPACE, None, 10)).counters] == ["z"]
        assert (await repository.list("nothing-here", None, 10)).counters == []

    async def test_an_idempotency_key_binds_the_namespace(self, repository: CounterRepository) -> None:
        """Idempotency-Keys are global: the key reused for the same key in another namespace is
        another request, refused, and changes nothing; in its own namespace it is replayed."""
        in_a, in_b = CounterId("a", "c"), CounterId("b", "c")
        first = Idempotency.for_increment("order-1", in_a, 1, 3600.0)
        elsewhere = Idempotency.for_increment("order-1", in_b, 1, 3600.0)
        assert first.fingerprint != elsewhere.fingerprint
        assert not (await repository.increment(in_a, 1, first)).replayed
        with pytest.raises(IdempotencyKeyReusedError):
            await repository.increment(in_b, 1, elsewhere)
        assert (await repository.get(in_b)).count == 0
        replay = await repository.increment(in_a, 1, first)
        assert (replay.replayed, replay.counter.id, replay.counter.count) == (True, in_a, 1)
        assert (await repository.get(in_a)).count == 1

    async def test_distinct_idempotency_keys_count_in_each_namespace(
        self, repository: CounterRepository
    ) -> None:
        for namespace in ("a", "b"):
            counter = CounterId(namespace, "c")
            key = Idempotency.for_increment(f"order-{namespace}", counter, 2, 3600.0)
            assert (await repository.increment(counter, 2, key)).counter.count == 2
            assert (await repository.increment(counter, 2, key)).replayed

    @pytest.mark.parametrize(
        ("namespace", "key", "wrong"),
        [("a b", "k", "namespace"), ("ns", "a/b", "key"), ("", "k", "namespace"), ("ns", "-a", "key"),
         ("x" * 65, "k", "namespace"), ("ns", "é", "key")],
    )  # fmt: skip
    async def test_invalid_names_are_refused_naming_the_part(
        self, repository: CounterRepository, namespace: str, key: str, wrong: str
    ) -> None:
        service = CounterService(repository)
        with pytest.raises(InvalidCounterNameError, match=f"counter {wrong} "):
            await service.increment(CounterId(namespace, key))
        if wrong == "namespace":
            with pytest.raises(InvalidCounterNameError, match="counter namespace "):
                await service.list(namespace)
        assert (await repository.list("ns", None, 10)).counters == []
