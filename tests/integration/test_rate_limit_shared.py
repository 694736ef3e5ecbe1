"""Rate limits shared by replicas: two `counter serve` processes on one Redis (our own
redis-server) count against the same windows, exactly, under concurrent requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from entrypoints.http.rate_limit_redis import RedisWindowStore
from tests.integration.server_process import Server, free_port, running_server

pytestmark = pytest.mark.integration

PER_CLIENT = 200
PER_COUNTER = 20
IN_FLIGHT = 16


@contextlib.contextmanager
def two_servers(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[tuple[Server, Server]]:
    env = {
        "COUNTER_BACKEND": "redis",
        "COUNTER_REDIS_URL": redis_url,
        "COUNTER_REDIS_PREFIX": prefix,
        # An hour: no window can end while the test runs.
        "COUNTER_RATE_LIMIT_PER_CLIENT": f"{PER_CLIENT}/hour",
        "COUNTER_RATE_LIMIT_PER_COUNTER_WRITES": f"{PER_COUNTER}/hour",
        "COUNTER_REDIS_ULR": "redis://typo",  # a typo: ignored, and named at start-up
    }
    with (
        running_server(env, tmp_path / "first.log") as first,
        running_server(env, tmp_path / "second.log") as second,
    ):
        yield first, second


async def post_all(servers: tuple[Server, Server], paths: list[str]) -> list[httpx.Response]:
    """POST every path, alternating between the servers, IN_FLIGHT at once on each."""
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with (
        httpx.AsyncClient(base_url=servers[0].url, limits=limits, timeout=30) as first,
        httpx.AsyncClient(base_url=servers[1].url, limits=limits, timeout=30) as second,
    ):
        clients = (first, second)
        gate = asyncio.Semaphore(2 * IN_FLIGHT)

        async def post(i: int, path: str) -> httpx.Response:
            async with gate:
                return await clients[i % 2].post(path)

        return list(await asyncio.gather(*(post(i, path) for i, path in enumerate(paths))))


@pytest.mark.slow
async def test_two_servers_on_one_redis_share_each_limit_exactly(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with two_servers(tmp_path, redis_url, redis_prefix) as servers:
        # 60 writes to one counter over both servers: its window takes exactly 20.
        hot = await post_all(servers, ["/counters/hot"] * 60)
        # 150 more, each to a counter of its own: the client's window (200) has 140 left.
        cold = await post_all(servers, [f"/counters/cold-{i}" for i in range(150)])
        async with httpx.AsyncClient(base_url=servers[0].url) as client:
            read = await client.get("/counters/hot")
            health = await client.get("/health/ready")
            head = await client.head("/health/ready")  # HEAD over a real socket: headers only
        logs = servers[0].log() + servers[1].log()

    counted = [r for r in hot if r.status_code == 200]
    assert len(counted) == PER_COUNTER, {r.status_code for r in hot}
    # Each request took its own place in the one shared window: no two were given the same.
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in counted) == list(range(PER_COUNTER))
    for refused in (r for r in hot if r.status_code != 200):
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "writes per hour to this counter" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert refused.headers["ratelimit-limit"] == str(PER_COUNTER)

    assert [r.status_code for r in cold].count(200) == PER_CLIENT - len(hot)
    assert {r.status_code for r in cold} == {200, 429}
    assert {r.json()["detail"].split(";")[0] for r in cold if r.status_code == 429} == {
        f"more than {PER_CLIENT} requests per hour from this client"
    }
    assert read.status_code == 429  # the client's window is used up, for reads too
    assert health.status_code == 200  # health checks are never limited
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(health.content))
    assert "COUNTER_REDIS_ULR is not a setting of this service and is ignored" in logs
    assert "did you mean COUNTER_REDIS_URL?" in logs

    store = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await store.hget(f"{redis_prefix}c:hot", "count") == str(PER_COUNTER).encode()
        windows = [key.decode() async for key in store.scan_iter(f"{redis_prefix}rate-limit:*")]
        # The client's, hot's, and each cold counter's that the client's limit let through.
        assert len(windows) == 2 + PER_CLIENT - len(hot)
        for key in windows:
            assert 0 < await store.ttl(key) <= 3600
        counters = [key async for key in store.scan_iter(f"{redis_prefix}c:*")]
        assert len(counters) == 1 + PER_CLIENT - len(hot)  # hot, and every cold counter counted
    finally:
        await store.aclose()


async def test_a_redis_that_does_not_answer_lets_requests_pass_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisWindowStore.on(f"redis://127.0.0.1:{free_port()}/0", namespace="t:rate-limit")
    caplog.set_level(logging.WARNING, logger="counter.http")
    try:
        assert await store.hit("k", 60) is None
        assert await store.hit("k", 60) is None
    finally:
        await store.__aexit__(None, None, None)
    warnings = [
        r for r in caplog.records if r.getMessage() == "rate limits not counted: Redis does not answer"
    ]
    assert len(warnings) == 1  # not one a request


async def test_the_redis_window_counts_and_ends(redis_url: str, redis_prefix: str) -> None:
    store = RedisWindowStore.on(redis_url, namespace=f"{redis_prefix}rate-limit")
    try:
        windows = await asyncio.gather(*(store.hit("k", 1) for _ in range(30)))
        assert sorted(w.count for w in windows if w is not None) == list(range(1, 31))
        assert {w.reset_in for w in windows if w is not None} == {1}
        await asyncio.sleep(1.1)  # the one-second window ends in Redis itself
        again = await store.hit("k", 1)
        assert again is not None
        assert again.count == 1
    finally:
        await store.__aexit__(None, None, None)
