"""The write budget: at most `rate` API writes per second on average, a token bucket.

The Kubernetes API server is the whole cluster's: every write of a ConfigMap is an etcd write and
a watch event for everyone who watches it, and client-go holds each client to 5 requests per
second with bursts of 10 by default. The bucket refills at `rate` tokens per second up to `burst`
(one second's worth, at least 1) and every API write takes one, so over any t seconds the store
makes at most `rate * t + burst` writes, whatever the load. Under load nothing is lost: the group
commit puts whatever queued while the writer waited into the next write.

A token may be reserved before it is there (the bucket goes below zero, as in
golang.org/x/time/rate), so that writers waiting together (coalescing off) get their turns in
order; a reservation whose turn would come after the caller's deadline is refused at once and
takes nothing, so that the caller can answer 503 instead of waiting in vain. A token taken and
not used is given back. The state is two numbers: no history of writes, whatever the rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Final

# Float arithmetic on refills: a bucket this close to a whole token has it.
_EPSILON: Final = 1e-9


class WriteBudget:
    """A token bucket; `rate` 0 is no limit (every method answers "now")."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate >= 0:
            raise ValueError("the write budget must be 0 (no limit) or a positive rate")
        self.rate = rate
        self.burst = max(1.0, rate) if burst is None else burst
        if self.burst < 1:
            raise ValueError("the burst must be at least 1 write")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()

    @property
    def limited(self) -> bool:
        return self.rate > 0

    def delay(self) -> float:
        """Seconds until the next token is free (0: now), after the turns already reserved."""
        if not self.limited:
            return 0.0
        self._refill()
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def reserve(self, max_wait: float) -> float | None:
        """Take the next token if it is free within `max_wait` seconds: the seconds until it is.

        None: its turn would come later, and nothing was taken.
        """
        wait = self.delay()
        if wait > max(0.0, max_wait):  # a token that is free now is never refused
            return None
        if self.limited:
            self._tokens -= 1.0
        return wait

    def refund(self) -> None:
        """Give back a token that was taken and not used for a write."""
        if self.limited:
            self._refill()
            self._tokens = min(self.burst, self._tokens + 1.0)

    async def take(self, max_wait: float) -> float | None:
        """Reserve a token and wait for it: the seconds waited, None if refused (see `reserve`)."""
        wait = self.reserve(max_wait)
        if wait is None or wait <= 0:
            return wait
        try:
            await self._sleep(wait)
        except BaseException:  # cancelled while waiting: the token was not used
            self.refund()
            raise
        return wait

    async def ready(self, max_wait: float) -> float:
        """Wait until a token is free, at most `max_wait` seconds, without taking it: the wait."""
        wait = min(self.delay(), max_wait)
        if wait <= 0:
            return 0.0
        await self._sleep(wait)
        return wait

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
