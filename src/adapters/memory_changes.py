"""Change signals of the memory store: in-process, straight from its writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from adapters.change_hub import ChangeHub, HubSubscription
from adapters.memory import InMemoryCounterRepository
from domain.model import CounterId


class InMemoryCounterChanges:
    """CounterChanges of one process: the memory store tells it of each change as it makes it,
    so every state is delivered, none coalesced."""

    def __init__(self) -> None:
        self.hub = ChangeHub()

    async def subscribe(self, counter: CounterId, buffer: int) -> HubSubscription:
        return self.hub.add(counter, buffer)


async def open_memory_changes(repository: object) -> AsyncIterator[InMemoryCounterChanges]:
    """Resource: the changes of `repository` when it is the memory store (anything else, a test's
    stand-in, signals nothing)."""
    changes = InMemoryCounterChanges()
    if isinstance(repository, InMemoryCounterRepository):
        repository.on_change = changes.hub.publish
    yield changes
