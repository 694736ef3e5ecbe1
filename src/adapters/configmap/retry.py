"""How long an operation keeps trying: a number of tries and a deadline, whichever comes first.

Conflicts and transient failures are retried with full-jitter exponential backoff, so that
writers who collided do not collide again in step; a 429 waits exactly as long as Retry-After
asks, and gives up at once when that wait would pass the deadline (better a prompt 503 than an
answer after the client has left).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass

from adapters.configmap.api import ApiError, Kind
from adapters.configmap.stats import ConfigMapStats


@dataclass(slots=True)
class Bounds:
    max_tries: int
    deadline: float  # time.monotonic()
    tries: int = 0
    retry_after: float = 1.0  # what to tell the client when we give up
    last_error: str = ""

    @staticmethod
    def start(max_tries: int, seconds: float, deadline: float = math.inf) -> Bounds:
        """`seconds` from now, or until `deadline` if that comes first (the oldest caller's)."""
        return Bounds(max_tries, min(time.monotonic() + seconds, deadline))

    def exhausted(self, wait: float = 0.0) -> bool:
        return self.tries >= self.max_tries or time.monotonic() + wait > self.deadline


def backoff(tries: int) -> float:
    """Full jitter: a random delay up to 10 ms * 2^tries, capped at 1 s."""
    return random.uniform(0.0, min(1.0, 0.01 * 2 ** min(tries, 10)))  # noqa: S311 - jitter, not secrets


async def sleep(bounds: Bounds, delay: float) -> None:
    await asyncio.sleep(max(0.0, min(delay, bounds.deadline - time.monotonic())))


async def pause(bounds: Bounds, error: ApiError, stats: ConfigMapStats) -> None:
    """Count a transient failure as a try and wait before the next one."""
    bounds.tries += 1
    bounds.last_error = error.detail
    if error.kind is Kind.THROTTLED:
        stats.throttled += 1
        wait = error.retry_after if error.retry_after is not None else 1.0
        bounds.retry_after = max(bounds.retry_after, wait)
        if bounds.exhausted(wait):
            bounds.tries = bounds.max_tries  # waiting as asked would pass the deadline
            return
        await asyncio.sleep(wait)
        return
    stats.transient_errors += 1
    await sleep(bounds, backoff(bounds.tries))


async def after_conflict(bounds: Bounds, error: ApiError) -> None:
    """Count a lost compare-and-swap as a try and back off before reading again."""
    bounds.tries += 1
    bounds.last_error = error.detail
    await sleep(bounds, backoff(bounds.tries))
