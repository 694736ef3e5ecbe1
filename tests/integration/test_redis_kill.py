"""Redis killed (SIGKILL, then restarted on the same port) or hung (SIGSTOP, then SIGCONT) under load
from a real `counter serve --workers 2`: every 2xx is counted exactly once, every error is a 503
with Retry-After within its bound, an "outcome unknown" is settled by a retry with its key, and
the service heals by itself. Each test runs about 8 s of load and stops by itself."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fault_load import (
    REDIS_503_BOUND_SECONDS,
    Answer,
    Load,
    PersistentRedis,
    persistent_redis,
    read_count,
    retry_each,
)
from tests.integration.server_process import running_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PATH = "/counters/faults"
UNKNOWN = "503 outcome-unknown"
UNAVAILABLE = "503 store-unavailable"
SAMPLE_OF_2XX = 300  # 2xx keys retried after the fault: each must be replayed


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PersistentRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    with persistent_redis(directory) as server:
        yield server


async def run_fault(
    redis: PersistentRedis,
    log: Path,
    fault: Callable[[], Awaitable[tuple[float, float]]],
) -> tuple[Load, float, float, str]:
    """Load from 8 clients for 1.5 s, then `fault()` (which returns when the fault began and
    ended), then 3 s more of load. Returns the load, the fault's times and the server's URL
    (the server is stopped by then: what it answered is in the load)."""
    env = {"COUNTER_BACKEND": "redis", "COUNTER_REDIS_URL": redis.url}
    with running_server(env, log, workers=2) as server:
        load = Load(server.url, PATH, clients=8)
        load.start()
        await asyncio.sleep(1.5)
        began, ended = await fault()
        await asyncio.sleep(3.0)
        await load.stop()
        return load, began, ended, await settle(load, server.url)


async def settle(load: Load, url: str) -> str:
    """Check exactness once the store is back; returns the summary line that the test prints."""
    answers = load.answers
    by_kind: dict[str, list[Answer]] = {}
    for answer in answers:
        by_kind.setdefault(answer.kind, []).append(answer)
    unexpected = set(by_kind) - {"200", UNKNOWN, UNAVAILABLE}
    assert not unexpected, f"answers other than 200 and the two 503s: {load.kinds()}"
    ok = {answer.key for answer in by_kind.get("200", [])}
    unknown = [answer.key for answer in by_kind.get(UNKNOWN, [])]
    unavailable = [answer.key for answer in by_kind.get(UNAVAILABLE, [])]
    assert len(ok) + len(unknown) + len(unavailable) == len(answers), "a key was sent twice"
    stored = await read_count(url, PATH)

    retried = await retry_each(url, PATH, unknown + unavailable)
    assert {answer.kind for answer in retried} <= {"200"}, f"retries: {[a.kind for a in retried]}"
    replayed = {answer.key for answer in retried if answer.replayed}
    unknown_applied = len(replayed & set(unknown))
    assert not replayed & set(unavailable), "a 503 store-unavailable was counted"
    assert stored == len(ok) + unknown_applied, (
        f"stored {stored} != 2xx {len(ok)} + outcome-unknown that were applied {unknown_applied}"
    )
    sample = sorted(ok)[:SAMPLE_OF_2XX]
    again = await retry_each(url, PATH, sample)
    assert all(answer.replayed for answer in again), "a 2xx key was forgotten (or counted twice)"
    final = await read_count(url, PATH)
    distinct = len(ok) + len(unknown) + len(unavailable)  # every key has a 2xx by now
    assert final == distinct, f"final count {final} != {distinct} keys that got a 2xx"
    return (
        f"sent {len(answers)}, 2xx {len(ok)}, {UNKNOWN} {len(unknown)} (applied: {unknown_applied}),"
        f" {UNAVAILABLE} {len(unavailable)}; stored {stored} = 2xx + applied unknowns;"
        f" after retrying every 503 with its key: {final} = distinct keys with a 2xx;"
        f" {len(sample)} 2xx keys retried: all replayed"
    )


def assert_503s_bounded_with_retry_after(answers: list[Answer]) -> float:
    """Every 503 carries Retry-After and came within the bound; returns the slowest answer."""
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after is not None, answer
            assert int(answer.retry_after) >= 1, answer
    slowest = max(answer.seconds for answer in answers)
    assert slowest <= REDIS_503_BOUND_SECONDS, f"an answer took {slowest:.2f} s"
    return slowest


async def test_redis_killed_under_load_counts_every_2xx_once_and_heals(
    redis: PersistentRedis, tmp_path: Path
) -> None:
    async def kill_then_restart() -> tuple[float, float]:
        killed_at = time.monotonic()
        redis.kill()
        await asyncio.sleep(1.0)
        restarting_at = time.monotonic()
        await asyncio.to_thread(redis.start)  # same port, same append-only file
        return killed_at, restarting_at

    load, killed_at, restarting_at, summary = await run_fault(
        redis, tmp_path / "server.log", kill_then_restart
    )
    answers = load.answers
    before = [a for a in answers if a.sent_at + a.seconds < killed_at]
    dead = [a for a in answers if killed_at + 0.05 <= a.sent_at and a.sent_at + a.seconds < restarting_at]
    after = [a for a in answers if a.sent_at >= restarting_at + 2.0]
    assert before
    assert all(a.status == 200 for a in before), "before the kill every increment counts"
    assert dead
    assert all(a.status == 503 for a in dead), "a dead Redis answers 503, never a count"
    slowest_dead = max(a.seconds for a in dead)
    slowest = assert_503s_bounded_with_retry_after(answers)
    assert after
    assert all(a.status == 200 for a in after), "healed once Redis is back"
    print(
        f"\nredis SIGKILL, 2 workers: {summary}; while dead: {len(dead)} answers, all 503 with"
        f" Retry-After, slowest {slowest_dead * 1000:.0f} ms; slowest answer {slowest:.2f} s;"
        f" after the restart: {len(after)} answers, all 200"
    )


async def test_redis_hung_under_load_answers_503_in_bound_and_counts_every_2xx_once(
    redis: PersistentRedis, tmp_path: Path
) -> None:
    async def stop_then_continue() -> tuple[float, float]:
        stopped_at = time.monotonic()
        redis.signal(signal.SIGSTOP)
        await asyncio.sleep(3.0)
        redis.signal(signal.SIGCONT)
        return stopped_at, time.monotonic()

    load, stopped_at, continued_at, summary = await run_fault(
        redis, tmp_path / "server.log", stop_then_continue
    )
    answers = load.answers
    # Answered while Redis was stopped (sent before or during the hang): none may be a count.
    hung = [a for a in answers if stopped_at + 0.05 <= a.sent_at + a.seconds < continued_at]
    after = [a for a in answers if a.sent_at >= continued_at + 1.0]
    assert hung
    assert all(a.status == 503 for a in hung), "a hung Redis answers 503, never a count"
    slowest = assert_503s_bounded_with_retry_after(answers)
    assert after
    assert all(a.status == 200 for a in after), "healed once Redis answers again"
    print(
        f"\nredis SIGSTOP 3 s, 2 workers: {summary}; answered while hung: {len(hung)}, all 503 with"
        f" Retry-After, slowest {max(a.seconds for a in hung):.2f} s; slowest answer {slowest:.2f} s"
        f" (bound {REDIS_503_BOUND_SECONDS:g} s);"
        f" after SIGCONT: {len(after)} answers, all 200"
    )
