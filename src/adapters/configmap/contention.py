"""Several writers on one ConfigMap: how each one leaves the others their turn.

Every replica, and every worker process of one, writes the same ConfigMap with a compare-and-swap
on its resourceVersion. Left alone, one writer captures it: after its own write it holds the new
state (the write's answer) and writes again at once, while every other writer must read first and
then loses the race to it, again and again, until its batch fails at the retry bounds (503, after
seconds of waiting). So a writer that sees others at work changes how it writes:

- it reads before every write instead of building on its own last answer: all writers race on
  equal terms, and no write is sent on a state that is surely stale;
- after each of its writes it leaves a gap, of about two read-and-write rounds per other writer
  and jittered so that writers do not fall into step, in which the others can take their turn
  (one round per writer was measured too short: a writer slowed by its CPU still lost 10 races
  in a row now and then);
  what queues meanwhile goes into its next write, so batches grow with the contention;
- a write that lost the race is planned again on a fresh read, after a jittered backoff
  (retry.after_conflict); it wrote nothing, so the committer gives its write-budget token back.

"Others at work": `_writers` showed another writer's write within CONTENDED_SECONDS, or this writer
lost a race within that time, or it started less than STARTING_SECONDS ago (it cannot know yet who
else writes). A writer that joins while another seems alone to itself cannot show itself until
one of its writes succeeds; so a writer that sees nobody else still leaves a gap of a few rounds
every LONE_GAP_EVERY_SECONDS, which costs it a few per cent of its throughput without a write
budget and nothing with one (the wait for a token is longer than the gap). None of this is needed for
correctness (the compare-and-swap is); it decides how few writes are wasted and how long a
request waits.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Final

# `_writers` keeps whole seconds: an entry up to this old (plus up to 1 s) counts as at work.
CONTENDED_SECONDS: Final = 3.0
MAX_GAP_SECONDS: Final = 0.25  # however slow the API gets, the gap never grows beyond this
LONE_GAP_EVERY_SECONDS: Final = 1.0
LONE_GAP_ROUNDS: Final = 3  # long enough for a newcomer's read and write, jitter included
STARTING_SECONDS: Final = 1.0  # a new writer assumes others this long, until it has seen them
_SMOOTHING: Final = 0.2  # weight of the latest round in the moving average of round times


class Contention:
    """What one writer has seen of the others, and what it does about it."""

    def __init__(
        self,
        writer: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._wall = wall
        self._jitter = jitter
        # As if it had just lost a race: a new writer assumes others until it has seen them.
        self._last_conflict = clock() - CONTENDED_SECONDS + STARTING_SECONDS
        self._others = 0  # other writers at work in the last state seen
        self._others_seen = -math.inf  # clock() when that state was seen
        self._round = 0.0  # seconds: a read and a write, moving average
        self._lone_gap = clock()  # when this writer last left a gap while alone
        self.not_before = 0.0  # clock() before which this writer leaves the turn to others

    @property
    def others(self) -> int:
        """Other writers at work, as far as this one knows."""
        return self._others if self._clock() - self._others_seen <= CONTENDED_SECONDS else 0

    def contended(self) -> bool:
        return self.others > 0 or self._clock() - self._last_conflict <= CONTENDED_SECONDS

    def seen(self, written: Mapping[str, float]) -> None:
        """A state of the ConfigMap was read or written: `written` is `_writers`' last write times."""
        now = self._wall()
        self._others = sum(
            1
            for writer, at in written.items()
            if writer != self._writer and now - at <= CONTENDED_SECONDS + 1.0
        )
        self._others_seen = self._clock()

    def lost(self) -> None:
        """A write of this writer was refused because another one wrote first."""
        self._last_conflict = self._clock()

    def round_took(self, seconds: float) -> None:
        self._round = seconds if not self._round else (1 - _SMOOTHING) * self._round + _SMOOTHING * seconds

    def wrote(self) -> None:
        """A write of this writer was applied: under contention, leave the others a turn first."""
        now = self._clock()
        if self.contended():
            turns = 2 * max(1, self.others)
        elif now - self._lone_gap >= LONE_GAP_EVERY_SECONDS:
            self._lone_gap = now
            turns = LONE_GAP_ROUNDS
        else:
            self.not_before = 0.0
            return
        gap = min(MAX_GAP_SECONDS, turns * self._round * self._jitter(0.5, 1.5))
        self.not_before = now + gap
