"""RedisCounterRepository against a real Redis: the store contract, and what only Redis can do
wrong (key types, a server that stops, restarts or stalls)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
import redis.asyncio

from adapters.redis import RedisCounterRepository, open_redis_repository
from adapters.redis import repository as repository_module
from domain.errors import IdempotencyKeyReusedError, StoreCorruptedError, StoreUnavailableError
from domain.idempotency import REUSED_MESSAGE, Idempotency, IdempotencyRecord, decide
from domain.model import CounterId, Incremented
from domain.ports import CounterRepository
from domain.rules import Rules
from tests.contract.repository_contract import Reopen, RepositoryContract

if TYPE_CHECKING:  # imported by tests/integration/conftest.py, which must come first for assert rewriting
    from tests.integration.redis_fixtures import RedisServer

pytestmark = pytest.mark.integration

KEY = "any printable key: spaces, {braces}, *stars* and ~"
BUSY_LUA = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1])
return 1
"""

OpenRepository = Callable[..., Awaitable[RedisCounterRepository]]


@pytest.fixture
def raw(raw_redis: redis.asyncio.Redis) -> redis.asyncio.Redis:
    return raw_redis


@pytest.fixture
async def open_repository() -> AsyncIterator[OpenRepository]:
    """`await open_repository(url, prefix)`: more repositories, all closed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def opener(url: str, prefix: str, socket_timeout: float = 2.0) -> RedisCounterRepository:
            manager = contextlib.asynccontextmanager(open_redis_repository)(
                url, prefix, socket_timeout=socket_timeout
            )
            return await stack.enter_async_context(manager)

        yield opener


class TestRedisRepository(RepositoryContract):
    @pytest.fixture
    def repository(self, redis_repository: RedisCounterRepository) -> RedisCounterRepository:
        return redis_repository

    @pytest.fixture
    def reopen(self, redis_url: str, redis_prefix: str, open_repository: OpenRepository) -> Reopen:
        # A second service instance on the same server and prefix: Redis is the durable store here.
        async def second_instance() -> CounterRepository:
            return await open_repository(redis_url, redis_prefix)

        return second_instance


# --- layout and isolation --------------------------------------------------------------------


async def test_keys_are_laid_out_as_documented(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    idempotency = Idempotency.for_increment(KEY, CounterId.default("c"), 5, 60)
    await redis_repository.increment(CounterId.default("c"), 5, idempotency)
    fields = await raw.hgetall(f"{redis_prefix}c:c")
    assert fields[b"count"] == b"5"
    assert fields[b"created_at"].isdigit()
    assert fields[b"updated_at"] == fields[b"created_at"]
    assert fields[b"version"] == b"1"
    assert await raw.zrange(f"{redis_prefix}names", 0, -1, withscores=True) == [(b"c", 0.0)]
    assert idempotency.record_key == hashlib.sha256(KEY.encode()).hexdigest()
    record = f"{redis_prefix}idem:{idempotency.record_key}"
    assert await raw.hgetall(record) == {
        b"fingerprint": idempotency.fingerprint.encode(),
        b"count": b"5",
        b"created_at": fields[b"created_at"],
        b"updated_at": fields[b"updated_at"],
        b"version": b"1",
    }
    assert 0 < await raw.pttl(record) <= 60_000


# --- Idempotency-Key records: the script hands them back, the domain decides ------------------


def record_of(redis_prefix: str, idempotency: Idempotency) -> str:
    return f"{redis_prefix}idem:{idempotency.record_key}"


async def test_a_replay_and_a_refusal_write_nothing(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    idempotency = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    record = record_of(redis_prefix, idempotency)
    await raw.pexpire(record, 30_000)  # a replay that re-armed the TTL would show here
    before = (await raw.hgetall(record), await raw.hgetall(f"{redis_prefix}c:c"))
    assert (await redis_repository.increment(CounterId.default("c"), 1, idempotency)).replayed
    with pytest.raises(IdempotencyKeyReusedError, match=REUSED_MESSAGE):
        await redis_repository.increment(
            CounterId.default("c"), 2, Idempotency.for_increment("k", CounterId.default("c"), 2, 60)
        )
    assert (await raw.hgetall(record), await raw.hgetall(f"{redis_prefix}c:c")) == before
    assert 0 < await raw.pttl(record) <= 30_000


async def test_a_record_without_a_ttl_is_kept_and_replayed(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    idempotency = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    await raw.persist(record_of(redis_prefix, idempotency))
    again = await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    assert again.replayed
    assert (await redis_repository.get(CounterId.default("c"))).count == 1


async def test_a_record_the_domain_calls_expired_is_replaced_atomically(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis deletes a record when its TTL ends, so only a clock that disagrees with Redis can
    call a stored record expired; the repository then applies over exactly that record."""
    idempotency = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    seen: list[IdempotencyRecord | None] = []

    def far_future_decide(
        key: Idempotency, record: IdempotencyRecord | None, now: float
    ) -> Incremented | None:
        seen.append(record)
        return decide(key, record, now + 3600)

    monkeypatch.setattr(repository_module, "decide", far_future_decide)
    again = await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    assert not again.replayed
    assert again.counter.count == 2
    assert len(seen) == 1  # the script applied over the disregarded record without asking again
    assert seen[0] is not None
    assert seen[0].fingerprint == idempotency.fingerprint
    assert seen[0].counter.count == 1
    assert (await raw.hgetall(record_of(redis_prefix, idempotency)))[b"count"] == b"2"


@pytest.mark.parametrize("tamper", ["wrong type", "bad count"])
async def test_an_unreadable_record_is_reported_and_left_alone(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
    tamper: str,
) -> None:
    idempotency = Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
    record = record_of(redis_prefix, idempotency)
    if tamper == "wrong type":
        await raw.set(record, "not a hash")
    else:
        await raw.hset(record, mapping={"fingerprint": idempotency.fingerprint, "count": "x"})
    before = await raw.dump(record)
    with pytest.raises(StoreCorruptedError):
        await redis_repository.increment(CounterId.default("c"), 1, idempotency)
    assert await raw.dump(record) == before
    assert (await redis_repository.get(CounterId.default("c"))).count == 0


async def test_two_prefixes_do_not_see_each_other(
    redis_url: str,
    redis_prefix: str,
    open_repository: OpenRepository,
) -> None:
    a = await open_repository(redis_url, f"{redis_prefix}a:")
    b = await open_repository(redis_url, f"{redis_prefix}b:")
    await a.increment(CounterId.default("shared-name"), 7)
    await a.increment(CounterId.default("only-a"), 1)
    assert (await b.get(CounterId.default("shared-name"))).count == 0
    assert (await b.list("default", None, 10)).counters == []
    await b.increment(CounterId.default("shared-name"), 1)
    assert (await a.get(CounterId.default("shared-name"))).count == 7
    assert [c.key for c in (await a.list("default", None, 10)).counters] == ["only-a", "shared-name"]
    assert (await b.delete(CounterId.default("shared-name"))) is not None
    assert (await a.get(CounterId.default("shared-name"))).count == 7


# --- unreadable data is reported and never overwritten ---------------------------------------


async def test_a_key_of_the_wrong_type_is_reported_and_left_alone(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    key = f"{redis_prefix}c:odd"
    await raw.set(key, "not a hash")
    with pytest.raises(StoreCorruptedError):
        await redis_repository.increment(CounterId.default("odd"), 1)
    with pytest.raises(StoreCorruptedError):
        await redis_repository.get(CounterId.default("odd"))
    with pytest.raises(StoreCorruptedError):
        await redis_repository.set(CounterId.default("odd"), 3)
    with pytest.raises(StoreCorruptedError):
        await redis_repository.delete(CounterId.default("odd"))
    assert await raw.get(key) == b"not a hash"
    assert await raw.zscore(f"{redis_prefix}names", "odd") is None


@pytest.mark.parametrize("stored", [b"12abc", b"", b"1.5", b"99999999999999999999"])
async def test_a_count_that_is_not_a_64_bit_integer_is_reported_and_left_alone(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
    stored: bytes,
) -> None:
    key = f"{redis_prefix}c:bad"
    await raw.hset(key, "count", stored)
    for attempt in (
        lambda: redis_repository.get(CounterId.default("bad")),
        lambda: redis_repository.increment(CounterId.default("bad"), 1),
        lambda: redis_repository.increment(
            CounterId.default("bad"), 1, Idempotency.for_increment("k", CounterId.default("bad"), 1, 60)
        ),
        lambda: redis_repository.set(CounterId.default("bad"), 0),
        lambda: redis_repository.delete(CounterId.default("bad")),
    ):
        with pytest.raises(StoreCorruptedError):
            await attempt()
    assert await raw.hgetall(key) == {b"count": stored}
    # A refused increment recorded no Idempotency-Key.
    assert await raw.keys(f"{redis_prefix}idem:*") == []


async def test_a_names_index_of_the_wrong_type_stops_writes_before_they_start(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    await raw.set(f"{redis_prefix}names", "oops")
    with pytest.raises(StoreCorruptedError):
        await redis_repository.increment(CounterId.default("c"), 1)
    with pytest.raises(StoreCorruptedError):
        await redis_repository.set(CounterId.default("c"), 1)
    with pytest.raises(StoreCorruptedError):
        await redis_repository.list("default", None, 10)
    assert await raw.exists(f"{redis_prefix}c:c") == 0
    assert await raw.get(f"{redis_prefix}names") == b"oops"


async def test_one_bad_key_fails_only_its_own_caller_in_a_pipeline(
    redis_repository: RedisCounterRepository,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
) -> None:
    await raw.set(f"{redis_prefix}c:odd", "not a hash")
    before = redis_repository.round_trips
    results = await asyncio.gather(
        *(redis_repository.increment(CounterId.default("good"), 1) for _ in range(10)),
        redis_repository.increment(CounterId.default("odd"), 1),
        redis_repository.get(CounterId.default("odd")),
        return_exceptions=True,
    )
    assert redis_repository.round_trips - before == 1
    counts = sorted(r.counter.count for r in results[:10] if isinstance(r, Incremented))
    assert counts == list(range(1, 11))
    assert isinstance(results[10], StoreCorruptedError)
    assert isinstance(results[11], StoreCorruptedError)


# --- batching ----------------------------------------------------------------------------------


async def test_concurrent_calls_share_round_trips(redis_repository: RedisCounterRepository) -> None:
    await redis_repository.increment(
        CounterId.default("warm"), 1
    )  # connected, script loaded: measure the steady state
    trips, commands = redis_repository.round_trips, redis_repository.commands
    results = await asyncio.gather(
        *(redis_repository.increment(CounterId.default("hot"), 1) for _ in range(200))
    )
    assert sorted(r.counter.count for r in results) == list(range(1, 201))
    assert redis_repository.commands - commands == 200
    assert redis_repository.round_trips - trips <= 3
    trips = redis_repository.round_trips
    counters = await asyncio.gather(*(redis_repository.get(CounterId.default("hot")) for _ in range(50)))
    assert {c.count for c in counters} == {200}
    assert redis_repository.round_trips - trips == 1


async def test_a_call_on_its_own_goes_out_at_once(redis_repository: RedisCounterRepository) -> None:
    await redis_repository.increment(CounterId.default("solo"), 1)  # connected, scripts loaded
    trips = redis_repository.round_trips
    for expected in range(2, 7):
        assert (await redis_repository.increment(CounterId.default("solo"), 1)).counter.count == expected
    assert redis_repository.round_trips - trips == 5


async def test_scripts_flushed_from_the_server_are_loaded_again(
    redis_repository: RedisCounterRepository,
    raw: redis.asyncio.Redis,
) -> None:
    await redis_repository.increment(CounterId.default("c"), 1)
    await raw.script_flush()
    results = await asyncio.gather(
        *(redis_repository.increment(CounterId.default("c"), 1) for _ in range(20))
    )
    assert sorted(r.counter.count for r in results) == list(range(2, 22))
    assert (await redis_repository.set(CounterId.default("c"), 0)).previous == 21


# --- a store that is down, restarted or stalled ------------------------------------------------


async def test_a_stopped_server_makes_every_operation_unavailable_then_a_restart_heals(
    redis_server: RedisServer,
    redis_repository: RedisCounterRepository,
) -> None:
    assert (await redis_repository.increment(CounterId.default("c"), 1)).counter.count == 1
    redis_server.stop()
    try:
        for attempt in (
            lambda: redis_repository.increment(CounterId.default("c"), 1),
            lambda: redis_repository.increment(
                CounterId.default("c"), 1, Idempotency.for_increment("k", CounterId.default("c"), 1, 60)
            ),
            lambda: redis_repository.get(CounterId.default("c")),
            lambda: redis_repository.set(CounterId.default("c"), 5),
            lambda: redis_repository.delete(CounterId.default("c")),
            lambda: redis_repository.list("default", None, 10),
            redis_repository.ping,
        ):
            with pytest.raises(StoreUnavailableError) as raised:
                await attempt()
            assert raised.value.retry_after == 1
        many = await asyncio.gather(
            *(redis_repository.increment(CounterId.default("c"), 1) for _ in range(50)),
            return_exceptions=True,
        )
        assert all(isinstance(result, StoreUnavailableError) for result in many)
    finally:
        redis_server.start()
    # The restarted server lost its data and its scripts (--save ""): both come back on demand.
    await redis_repository.ping()
    assert (await redis_repository.increment(CounterId.default("c"), 1)).counter.count == 1
    assert (await redis_repository.get(CounterId.default("c"))).count == 1


async def test_a_server_refusing_writes_changes_nothing(
    redis_repository: RedisCounterRepository,
    raw: redis.asyncio.Redis,
) -> None:
    await redis_repository.increment(CounterId.default("c"), 1)
    await raw.config_set("maxmemory", "1")  # every write is now refused with OOM
    try:
        for attempt in (
            lambda: redis_repository.increment(CounterId.default("c"), 1),
            lambda: redis_repository.increment(CounterId.default("new"), 1),
            lambda: redis_repository.set(CounterId.default("c"), 5),
        ):
            with pytest.raises(StoreUnavailableError, match="refused"):
                await attempt()
    finally:
        await raw.config_set("maxmemory", "0")
    assert (await redis_repository.get(CounterId.default("c"))).count == 1
    assert (await redis_repository.get(CounterId.default("new"))).count == 0


async def test_opening_does_not_need_a_running_server(open_repository: OpenRepository) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        repository = await open_repository(f"redis://127.0.0.1:{sock.getsockname()[1]}/0", "x:")
        with pytest.raises(StoreUnavailableError, match="cannot connect"):
            await repository.ping()
        with pytest.raises(StoreUnavailableError, match="nothing was changed"):
            await repository.increment(CounterId.default("c"), 1)


async def test_a_write_held_back_past_the_timeout_is_reported_as_unknown(
    redis_url: str,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
    open_repository: OpenRepository,
) -> None:
    key = Idempotency.for_increment("retry-me", CounterId.default("c"), 1, 60)
    repository = await open_repository(redis_url, redis_prefix, socket_timeout=0.3)
    await repository.ping()
    await raw.client_pause(1500, all=False)  # holds back writes (scripts), not PING
    try:
        with pytest.raises(StoreUnavailableError, match=r"no reply within 0.3 s.*outcome is unknown"):
            await repository.increment(CounterId.default("c"), 1, key)
    finally:
        await raw.client_unpause()
    # Whatever became of it (a paused client that hangs up is dropped unexecuted), the keyed retry
    # leaves the counter incremented exactly once.
    again = await repository.increment(CounterId.default("c"), 1, key)
    assert again.counter.count == 1
    assert (await repository.get(CounterId.default("c"))).count == 1


async def test_a_timed_out_increment_that_was_applied_is_replayed_by_a_keyed_retry(
    redis_url: str,
    redis_prefix: str,
    raw: redis.asyncio.Redis,
    open_repository: OpenRepository,
) -> None:
    key = Idempotency.for_increment("retry-me", CounterId.default("c"), 1, 60)
    repository = await open_repository(redis_url, redis_prefix, socket_timeout=0.3)
    await repository.ping()

    async def hog_the_server() -> None:
        await raw.eval(BUSY_LUA, 0, 800_000)  # 0.8 s of Lua: Redis serves nobody else meanwhile

    busy = asyncio.create_task(hog_the_server())
    await asyncio.sleep(0.05)
    with pytest.raises(StoreUnavailableError, match="outcome is unknown"):
        await repository.increment(CounterId.default("c"), 1, key)
    await busy
    # Redis read the script before the client hung up and ran it when it was free again.
    assert (await repository.get(CounterId.default("c"))).count == 1
    again = await repository.increment(CounterId.default("c"), 1, key)
    assert again.replayed
    assert again.counter.count == 1
    assert (await repository.get(CounterId.default("c"))).count == 1


async def test_a_closed_repository_refuses_work(redis_repository: RedisCounterRepository) -> None:
    await redis_repository.increment(CounterId.default("c"), 1)
    await redis_repository.aclose()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await redis_repository.get(CounterId.default("c"))


# --- counters written before namespaces ---------------------------------------------------------


async def test_keys_written_before_namespaces_are_the_namespace_default(
    raw: redis.asyncio.Redis, redis_url: str, redis_prefix: str, open_repository: OpenRepository
) -> None:
    """The layout before namespaces (`{prefix}c:{name}`, `{prefix}names`) is the namespace
    `default` as it is: nothing to migrate, and the other namespaces have keys of their own."""
    micros = b"1767225600000000"
    await raw.hset(
        f"{redis_prefix}c:visits", mapping={"count": 7, "created_at": micros, "updated_at": micros}
    )
    await raw.zadd(f"{redis_prefix}names", {"visits": 0})
    repository = await open_repository(redis_url, redis_prefix)
    visits = CounterId.default("visits")
    assert (await repository.get(visits)).count == 7
    assert [c.key for c in (await repository.list("default", None, 10)).counters] == ["visits"]
    assert (await repository.increment(visits, 1)).counter.count == 8
    await repository.increment(CounterId("blog", "visits"), 5)
    assert await raw.hget(f"{redis_prefix}c:visits", "count") == b"8"
    assert await raw.hget(f"{redis_prefix}ns:blog:c:visits", "count") == b"5"
    assert await raw.zrange(f"{redis_prefix}ns:blog:names", 0, -1) == [b"visits"]
    assert await raw.zrange(f"{redis_prefix}names", 0, -1) == [b"visits"]


async def test_a_listing_drops_the_names_of_expired_counters(
    redis_repository: RedisCounterRepository, redis_prefix: str, raw: redis.asyncio.Redis
) -> None:
    await redis_repository.create(CounterId("ns", "brief"), 1, Rules(ttl_seconds=1), None)
    await redis_repository.increment(CounterId("ns", "stays"), 1)
    names_key = f"{redis_prefix}ns:ns:names"
    assert await raw.zcard(names_key) == 2
    await asyncio.sleep(1.2)
    assert [c.key for c in (await redis_repository.list("ns", None, 10)).counters] == ["stays"]
    assert await raw.zrange(names_key, 0, -1) == [b"stays"]
