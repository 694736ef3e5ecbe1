"""What only Redis can get wrong about versions: the field next to the count, counters written
before versions, an unreadable version, and the change published by every write script."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from adapters.redis import RedisCounterRepository, changes_channel
from domain.errors import StoreCorruptedError, VersionMismatchError
from domain.model import CounterId
from domain.rules import Rules

pytestmark = pytest.mark.integration

COUNTER = CounterId("blog", "post")


@pytest.fixture
def raw(raw_redis: redis.asyncio.Redis) -> redis.asyncio.Redis:
    return raw_redis


def test_the_channel_names_the_prefix_namespace_and_key() -> None:
    assert changes_channel("counter:", COUNTER) == b"counter:changes:blog/post"
    assert changes_channel(b"p:", CounterId.default("visits")) == b"p:changes:default/visits"


async def test_a_counter_written_before_versions_is_at_1_and_grows_to_2(
    redis_repository: RedisCounterRepository, redis_prefix: str, raw: redis.asyncio.Redis
) -> None:
    key = f"{redis_prefix}ns:blog:c:post"
    await raw.hset(key, mapping={"count": "41", "created_at": "1", "updated_at": "1"})
    await raw.zadd(f"{redis_prefix}ns:blog:names", {"post": 0})
    assert (await redis_repository.get(COUNTER)).version == 1
    assert (await redis_repository.increment(COUNTER, 1)).counter.version == 2
    assert await raw.hget(key, "version") == b"2"


async def test_an_unreadable_version_is_reported_and_nothing_is_written(
    redis_repository: RedisCounterRepository, redis_prefix: str, raw: redis.asyncio.Redis
) -> None:
    await redis_repository.increment(COUNTER, 1)
    key = f"{redis_prefix}ns:blog:c:post"
    await raw.hset(key, "version", "two")
    with pytest.raises(StoreCorruptedError):
        await redis_repository.get(COUNTER)
    for write in (
        redis_repository.increment(COUNTER, 1),
        redis_repository.set(COUNTER, 5),
        redis_repository.delete(COUNTER),
    ):
        with pytest.raises(StoreCorruptedError):
            await write
    assert await raw.hmget(key, "count", "version") == [b"1", b"two"]


async def test_every_write_publishes_its_change_in_order(
    redis_repository: RedisCounterRepository, redis_prefix: str, raw: redis.asyncio.Redis
) -> None:
    pubsub = raw.pubsub()
    await pubsub.subscribe(changes_channel(redis_prefix, COUNTER))
    try:
        assert (await pubsub.get_message(timeout=2.0) or {}).get("type") == "subscribe"
        await redis_repository.create(COUNTER, 7, Rules(), None)
        await redis_repository.increment(COUNTER, 3)
        await redis_repository.set(COUNTER, -2)
        with pytest.raises(VersionMismatchError):
            await redis_repository.set(COUNTER, 9, expected_version=1)  # refused: publishes nothing
        await redis_repository.delete(COUNTER)
        await redis_repository.increment(COUNTER, 1)
        await redis_repository.increment(CounterId("blog", "other"), 1)  # another channel
        messages: list[bytes] = []
        for _ in range(5):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
            assert message is not None, messages
            messages.append(message["data"])
        assert messages == [b"1 7", b"2 10", b"3 -2", b"4 deleted", b"1 1"]
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_get_that_moves_the_expiry_keeps_the_version_and_publishes_nothing(
    redis_repository: RedisCounterRepository, redis_prefix: str, raw: redis.asyncio.Redis
) -> None:
    await redis_repository.create(COUNTER, 1, Rules(ttl_seconds=60), None)
    pubsub = raw.pubsub()
    await pubsub.subscribe(changes_channel(redis_prefix, COUNTER))
    try:
        await pubsub.get_message(timeout=2.0)
        assert (await redis_repository.get(COUNTER, touch=True)).version == 1
        await asyncio.sleep(0)
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
