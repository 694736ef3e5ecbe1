"""The ConfigMap store's write budget: the token bucket on a fake clock, and its setting.

No I/O and no real time: the clock only moves when a test (or the bucket's own sleep) moves it.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from dependency_injector import providers

from adapters.configmap.budget import WriteBudget
from entrypoints.container import Container, build_container
from entrypoints.settings import Settings, SettingsError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(rate: float, clock: FakeClock, burst: float | None = None) -> WriteBudget:
    return WriteBudget(rate, burst=burst, clock=clock, sleep=clock.sleep)


def test_a_full_bucket_lets_a_burst_through_then_one_write_per_interval() -> None:
    clock = FakeClock()
    budget = bucket(10, clock)
    assert budget.burst == 10  # one second's worth
    assert [budget.reserve(0.0) for _ in range(10)] == [0.0] * 10
    assert budget.delay() == pytest.approx(0.1)
    clock.now += 0.05
    assert budget.delay() == pytest.approx(0.05)
    clock.now += 0.05
    assert budget.reserve(0.0) == 0.0


def test_an_idle_bucket_fills_up_to_its_burst_only() -> None:
    clock = FakeClock()
    budget = bucket(2, clock)
    for _ in range(2):
        budget.reserve(0.0)
    clock.now += 3600.0
    assert [budget.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    assert budget.delay() == pytest.approx(0.5)


def test_the_burst_is_at_least_one_write() -> None:
    clock = FakeClock()
    assert bucket(0.5, clock).burst == 1
    assert bucket(20, clock).burst == 20
    with pytest.raises(ValueError, match="at least 1"):
        bucket(5, clock, burst=0.5)
    with pytest.raises(ValueError, match="positive"):
        bucket(-1, clock)
    with pytest.raises(ValueError, match="positive"):
        bucket(float("nan"), clock)


def test_reservations_take_turns_in_order() -> None:
    clock = FakeClock()
    budget = bucket(10, clock, burst=1)
    waits = [budget.reserve(10.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert budget.delay() == pytest.approx(0.4)


def test_a_turn_after_the_deadline_is_refused_and_takes_nothing() -> None:
    clock = FakeClock()
    budget = bucket(1, clock)
    assert budget.reserve(0.0) == 0.0
    assert budget.reserve(0.5) is None  # the next token is 1 s away
    assert budget.delay() == pytest.approx(1.0)  # nothing was taken
    assert budget.reserve(1.0) == pytest.approx(1.0)


def test_a_free_token_is_never_refused_even_past_the_deadline() -> None:
    clock = FakeClock()
    budget = bucket(1, clock)
    assert budget.reserve(-0.001) == 0.0
    assert budget.reserve(-0.001) is None


def test_a_refund_gives_the_token_back_up_to_the_burst() -> None:
    clock = FakeClock()
    budget = bucket(1, clock)
    budget.reserve(0.0)
    budget.refund()
    assert budget.delay() == 0.0
    budget.refund()  # a full bucket stays full
    assert budget.reserve(0.0) == 0.0
    assert budget.delay() == pytest.approx(1.0)


def test_no_limit_always_answers_now() -> None:
    clock = FakeClock()
    budget = bucket(0, clock)
    assert not budget.limited
    assert all(budget.reserve(-1.0) == 0.0 for _ in range(10_000))
    assert budget.delay() == 0.0


def test_over_any_interval_the_writes_stay_within_rate_times_length_plus_burst() -> None:
    """The promise the setting makes, checked over every window of a random workload."""
    rng = random.Random(7)
    for rate in (1.0, 5.0, 10.0, 20.0, 333.0):
        clock = FakeClock()
        budget = bucket(rate, clock)
        granted: list[float] = []
        for _ in range(600):
            clock.now += rng.choice([0.0, 0.0, rng.expovariate(rate * 2), rng.expovariate(rate / 3)])
            wait = budget.reserve(rng.choice([0.0, 0.5, 10.0]))
            if wait is None:
                continue
            if rng.random() < 0.1:  # planned, then no write needed
                budget.refund()
                continue
            granted.append(clock.now + wait)
            clock.now += wait * rng.random()  # a concurrent writer may reserve while this one waits
        granted.sort()
        assert len(granted) > 100
        for i, start in enumerate(granted):
            for j in range(i, len(granted)):
                writes = j - i + 1
                assert writes <= rate * (granted[j] - start) + budget.burst + 1e-6, (rate, i, j)


async def test_take_waits_for_its_turn_and_ready_waits_without_taking() -> None:
    clock = FakeClock()
    budget = bucket(4, clock, burst=1)
    assert await budget.take(1.0) == 0.0
    assert await budget.ready(1.0) == pytest.approx(0.25)
    assert budget.delay() == 0.0  # ready took nothing
    assert await budget.take(1.0) == 0.0
    assert await budget.ready(0.1) == pytest.approx(0.1)  # at most until the caller's deadline
    assert await budget.take(0.1) is None
    assert await budget.take(1.0) == pytest.approx(0.15)
    assert clock.slept == pytest.approx([0.25, 0.1, 0.15])


async def test_a_waiter_cancelled_before_its_turn_gives_the_token_back() -> None:
    budget = WriteBudget(2, burst=1)  # the real clock: a sleep that can be cancelled
    assert budget.reserve(0.0) == 0.0
    waiter = asyncio.create_task(budget.take(10.0))
    await asyncio.sleep(0)
    assert budget.delay() == pytest.approx(1.0, abs=0.05)  # its turn, then the next one
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.delay() == pytest.approx(0.5, abs=0.05)


# --- the setting -------------------------------------------------------------------------------


def test_the_setting_defaults_to_ten_writes_per_second_and_accepts_zero_and_fractions() -> None:
    assert Settings.from_env({}).configmap_max_writes_per_second == 10
    for text, value in (("0", 0.0), ("1", 1.0), ("2.5", 2.5), ("1000", 1000.0)):
        settings = Settings.from_env({"COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND": text})
        assert settings.configmap_max_writes_per_second == value


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.5", "out of range"),
        ("1001", "out of range"),
        ("-1", "out of range"),
        ("nan", "out of range"),
        ("fast", "not a number"),
    ],
)
def test_a_wrong_budget_names_the_variable_and_the_bounds(value: str, words: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND": value})
    assert raised.value.variable == "COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND"
    assert words in str(raised.value)
    assert "(0 or 1-1000)" in str(raised.value)


def test_the_container_passes_the_budget_to_the_configmap_store() -> None:
    settings = Settings.from_env({"COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND": "2.5"})
    container: Container = build_container(settings)
    configmap = container.repository.providers["configmap"]
    assert isinstance(configmap, providers.Resource)
    assert configmap.kwargs["max_writes_per_second"]() == 2.5
