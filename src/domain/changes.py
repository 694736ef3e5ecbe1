"""The port of live updates: each store's own signal that a counter changed.

A subscription yields the states of one counter as the store signals them. Signals may repeat a
state, come out of order with a re-read, or skip states that a store coalesces (a poll that sees
two commits at once, a ConfigMap write that carries a batch): `is_news` is the one rule that
decides what a stream passes on, so that a client sees every state it is sent once, in order.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from domain.model import Counter, CounterId


class ChangesEndedError(Exception):
    """A subscription ended: its buffer filled (a consumer too slow for the changes), or it was
    closed (the server stops). `reason` says which, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChangeSubscription(Protocol):
    """The changes of one counter, as one consumer receives them."""

    async def next(self, wait_seconds: float) -> Counter | None:
        """The next state signalled, or None when none came within `wait_seconds`; raises
        ChangesEndedError once the subscription has ended."""
        ...

    def end(self, reason: str) -> None:
        """End the subscription: `next` raises ChangesEndedError(reason) from now on."""
        ...

    def close(self) -> None:
        """Stop receiving, and let the store stop watching when no one else does. Never waits
        and never fails (it runs where the consumer is being torn down), and may run twice."""
        ...


@runtime_checkable
class CounterChanges(Protocol):
    """Where a store's change signals arrive. Every consumer of one counter in one process
    shares one subscription to the store; the store is watched only while someone listens.

    Rules every implementation keeps:
    - a change committed after `subscribe` returned is delivered (as its state, or as a later
      state that includes it);
    - after a loss of the signal (a reconnect, an expired watch), the current state of every
      watched counter is delivered again;
    - a consumer whose buffer (`buffer` states) is full when a state arrives is ended, never
      waited for: one slow consumer does not hold the others back.
    """

    async def subscribe(self, counter: CounterId, buffer: int) -> ChangeSubscription:
        """Receive the states of `counter` until the subscription's `close()`. Returns once the
        store's signal for it is live, so a read made after it misses nothing after that read."""
        ...


def is_news(last_version: int | None, state: Counter) -> bool:
    """Whether `state` is to be sent to a consumer that was last sent `last_version` (None:
    nothing yet): a newer version, or the removal (version 0) of a counter it saw existing.
    Versions only grow while a counter exists, so an older or repeated state is never news."""
    if last_version is None:
        return True
    if state.version == 0:
        return last_version != 0
    return state.version > last_version


def missed(last_event_id: int | None, current: Counter) -> bool:
    """Whether a consumer that connects (again) with `last_event_id` (None: a first connection)
    is to be sent `current` at once: always on a first connection, and whenever the counter is no
    longer at the version it last saw (changes were missed, or the counter was made again)."""
    return last_event_id is None or current.version != last_event_id
