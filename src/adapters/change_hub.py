"""The fan-out that every store's change signal feeds: one subscription to the store per watched
counter per process, however many consumers listen, each consumer with a bounded buffer.

A store's signal source tells the hub what changed (`publish`), and learns from it which
counters are watched (`watched`, and the `on_watch` / `on_unwatch` callbacks, for a store that
subscribes per counter). The hub never waits for a consumer: a state that finds a consumer's
buffer full ends that consumer (see domain.changes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from domain.changes import ChangesEndedError
from domain.model import Counter, CounterId

OVERFLOW = "its buffer of changes filled: the client reads too slowly"


class _Ended:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class HubSubscription:
    """One consumer's buffer of states. Filled by the hub without waiting, read by the consumer."""

    def __init__(self, counter: CounterId, buffer: int, leave: Callable[[HubSubscription], None]) -> None:
        if buffer < 1:
            raise ValueError("a buffer holds at least one state")
        self.counter = counter
        self._leave = leave
        self._queue: asyncio.Queue[Counter | _Ended] = asyncio.Queue(maxsize=buffer)
        self._ended: _Ended | None = None

    def deliver(self, state: Counter) -> None:
        if self._ended is not None:
            return
        try:
            self._queue.put_nowait(state)
        except asyncio.QueueFull:
            self.end(OVERFLOW)

    def end(self, reason: str) -> None:
        if self._ended is not None:
            return
        self._ended = _Ended(reason)
        while not self._queue.empty():  # what is left unread is dropped with the consumer
            self._queue.get_nowait()
        self._queue.put_nowait(self._ended)

    async def next(self, wait_seconds: float) -> Counter | None:
        try:
            item = await asyncio.wait_for(self._queue.get(), wait_seconds)
        except TimeoutError:
            return None
        if isinstance(item, _Ended):
            self._queue.put_nowait(item)  # ended for good: every later call says so too
            raise ChangesEndedError(item.reason)
        return item

    def close(self) -> None:
        """Leave: no more states come. Safe to call more than once, and never waits."""
        self.end("closed")
        self._leave(self)


def _nothing(_counter: CounterId) -> None:
    """No per-counter subscription to make or drop."""


class ChangeHub:
    """Consumers by counter. `on_watch(counter)` runs when a counter gets its first consumer,
    `on_unwatch(counter)` when it loses its last one; neither may wait (a store that must tell
    its server schedules that)."""

    def __init__(
        self,
        on_watch: Callable[[CounterId], None] = _nothing,
        on_unwatch: Callable[[CounterId], None] = _nothing,
    ) -> None:
        self._consumers: dict[CounterId, set[HubSubscription]] = {}
        self._on_watch = on_watch
        self._on_unwatch = on_unwatch

    @property
    def watched(self) -> list[CounterId]:
        return list(self._consumers)

    @property
    def consumers(self) -> int:
        return sum(len(consumers) for consumers in self._consumers.values())

    def add(self, counter: CounterId, buffer: int) -> HubSubscription:
        """A new consumer of `counter`; it leaves with its `close()`."""
        subscription = HubSubscription(counter, buffer, self._leave)
        consumers = self._consumers.get(counter)
        if consumers is None:
            consumers = self._consumers[counter] = set()
            self._on_watch(counter)
        consumers.add(subscription)
        return subscription

    async def subscribe(
        self, counter: CounterId, buffer: int, live: Callable[[CounterId], Awaitable[None]]
    ) -> HubSubscription:
        """`add`, then wait for `live(counter)`: the store's signal of it is live. A consumer whose
        wait fails (the store is down) leaves at once."""
        subscription = self.add(counter, buffer)
        try:
            await live(counter)
        except BaseException:
            subscription.close()
            raise
        return subscription

    def _leave(self, subscription: HubSubscription) -> None:
        consumers = self._consumers.get(subscription.counter)
        if consumers is None or subscription not in consumers:
            return
        consumers.discard(subscription)
        if not consumers:
            del self._consumers[subscription.counter]
            self._on_unwatch(subscription.counter)

    def publish(self, state: Counter) -> None:
        """Give `state` to every consumer of its counter (none: nothing happens)."""
        for subscription in list(self._consumers.get(state.id, ())):
            subscription.deliver(state)

    def end_all(self, reason: str) -> None:
        for consumers in list(self._consumers.values()):
            for subscription in list(consumers):
                subscription.end(reason)
