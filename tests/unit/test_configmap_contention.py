"""How a ConfigMap writer reacts to the others (adapters.configmap.contention), on a fake clock."""

from __future__ import annotations

import pytest

from adapters.configmap.contention import (
    CONTENDED_SECONDS,
    LONE_GAP_EVERY_SECONDS,
    LONE_GAP_ROUNDS,
    MAX_GAP_SECONDS,
    STARTING_SECONDS,
    Contention,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WALL = 1_700_000_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


def writer(clock: Clock, name: str = "me") -> Contention:
    return Contention(name, clock=clock, wall=lambda: WALL + clock.now, jitter=lambda low, high: 1.0)


def test_a_new_writer_assumes_others_until_it_has_seen_none_for_a_while(clock: Clock) -> None:
    contention = writer(clock)
    assert contention.contended()  # it cannot know yet who else writes
    contention.seen({"me": WALL + clock.now})
    clock.now += STARTING_SECONDS + 0.1
    contention.seen({"me": WALL + clock.now})
    assert not contention.contended()


def test_other_writers_entries_and_lost_races_are_contention(clock: Clock) -> None:
    contention = writer(clock)
    clock.now += CONTENDED_SECONDS + 0.1
    contention.seen({"me": WALL + clock.now, "other": WALL + clock.now - 1})
    assert contention.others == 1
    assert contention.contended()
    contention.seen({"me": WALL + clock.now, "other": WALL + clock.now - 60})  # long gone
    assert contention.others == 0
    assert not contention.contended()
    contention.lost()
    assert contention.contended()
    clock.now += CONTENDED_SECONDS + 0.1
    assert not contention.contended()


def test_under_contention_each_write_leaves_two_rounds_per_other_writer(clock: Clock) -> None:
    contention = writer(clock)
    contention.round_took(0.01)
    contention.seen({"me": WALL + clock.now, "a": WALL + clock.now, "b": WALL + clock.now})
    contention.wrote()
    assert contention.not_before == pytest.approx(clock.now + 2 * 2 * 0.01)
    contention.round_took(1.0)  # a very slow API: the gap stays bounded
    contention.wrote()
    assert contention.not_before == pytest.approx(clock.now + MAX_GAP_SECONDS)


def test_a_lone_writer_leaves_a_short_gap_only_now_and_then(clock: Clock) -> None:
    contention = writer(clock)
    contention.round_took(0.01)
    clock.now += CONTENDED_SECONDS + 0.1
    contention.seen({"me": WALL + clock.now})
    contention.wrote()  # the first since it knows it is alone, more than the interval after its start
    assert contention.not_before == pytest.approx(clock.now + LONE_GAP_ROUNDS * 0.01)
    gaps = 0
    for _ in range(96):
        clock.now += LONE_GAP_EVERY_SECONDS / 8  # exact in binary: no drift over the steps
        contention.wrote()
        gaps += contention.not_before > clock.now
    assert gaps == 96 // 8  # one in every LONE_GAP_EVERY_SECONDS, whatever the number of writes
