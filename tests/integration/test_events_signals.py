"""The stores' change signals on their own, against the real servers: what a stream relies on
when the signal is lost and comes back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from adapters.change_hub import HubSubscription
from adapters.redis import RedisCounterRepository
from adapters.redis.changes import open_redis_changes
from adapters.sqlite import SqliteCounterRepository
from adapters.sqlite_changes import open_sqlite_changes
from domain.model import Counter, CounterId
from tests.integration.redis_fixtures import RedisServer

pytestmark = pytest.mark.integration

LIVE = CounterId("signals", "live")


async def _until(subscription: HubSubscription, wanted: int) -> list[Counter]:
    """The states delivered until one has the count `wanted` (each within a bound)."""
    seen: list[Counter] = []
    while not seen or seen[-1].count != wanted:
        state = await subscription.next(10)
        assert state is not None, f"no change came; so far {seen}"
        seen.append(state)
    return seen


async def test_redis_changes_come_again_after_the_connection_is_lost(
    redis_server: RedisServer, redis_url: str, redis_prefix: str, redis_repository: RedisCounterRepository
) -> None:
    opened = contextlib.asynccontextmanager(open_redis_changes)(redis_url, redis_prefix, redis_repository)
    async with opened as changes:
        subscription = await changes.subscribe(LIVE, 16)
        await redis_repository.increment(LIVE, 1)
        assert await _until(subscription, 1) == [Counter(LIVE, 1, version=1)]

        redis_server.stop()  # every connection is lost, and what Redis held with it
        redis_server.start()
        async with asyncio.timeout(30):
            while changes.resyncs == 0:  # noqa: ASYNC110 - subscribed again: the counter is read again
                await asyncio.sleep(0.05)
        await redis_repository.increment(LIVE, 5)
        states = await _until(subscription, 5)
        assert states[-1].count == 5
        subscription.close()
    assert changes.hub.watched == []


async def test_sqlite_sees_a_commit_of_another_connection_and_polls_only_while_watched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "counters.db"
    async with SqliteCounterRepository(path) as reader, SqliteCounterRepository(path) as writer:
        opened = contextlib.asynccontextmanager(open_sqlite_changes)(str(path), 0.05, reader)
        async with opened as changes:
            subscription = await changes.subscribe(LIVE, 16)
            for n in range(1, 4):
                await writer.increment(LIVE, 1)
                assert (await _until(subscription, n))[-1].version == n
            subscription.close()
            async with asyncio.timeout(10):
                while changes._task is not None:  # noqa: ASYNC110 - the poll stops with the last subscriber
                    await asyncio.sleep(0.05)
            polls = changes.polls
            await asyncio.sleep(0.3)
            assert changes.polls == polls
