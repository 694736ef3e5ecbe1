"""The port every store implements. Adapters live in `adapters/`, one per technology."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from domain.idempotency import Idempotency
from domain.model import Counter, CounterId, Incremented, Page, Replaced
from domain.rules import Rules


@runtime_checkable
class CounterRepository(Protocol):
    """Where counters live. Every method is atomic on its own.

    Rules every implementation keeps (the contract suite in tests/contract states them):
    - an increment that returns was applied exactly once; one that raises was not applied,
      except StoreUnavailableError raised after the store may have applied it, which the caller
      can retry safely only with an Idempotency;
    - a result outside the signed 64-bit range raises CounterOverflowError and changes nothing;
    - stored data it cannot read raises StoreCorruptedError and is never overwritten;
    - a store that cannot be reached raises StoreUnavailableError;
    - every valid CounterId is its own counter: two ids never share stored data, and no id
      shares it with the store's own bookkeeping;
    - a counter's rules, expiry and admin key hash are kept with it and never change: an
      increment outside its step range raises StepOutOfRangeError and changes nothing, checked in
      the same atomic step as the write; each write (and a get with `touch`) moves its expiry to
      now + ttl_seconds; an expired counter is gone: it reads as missing, an increment or a set
      makes it again as a plain counter (no rules), and `create` may make it again;
    - a counter's version is 0 while it does not exist, 1 once made (again), and grows by at
      least one with every change (create, increment, set), in the same atomic step, and is kept
      with an Idempotency-Key's record; a set or a delete with `expected_version` checks it in
      that step too (domain.model.check_version) and changes nothing when it does not hold.
    """

    async def get(self, counter: CounterId, touch: bool = False) -> Counter:
        """The counter, or a counter at 0 (no timestamps) when it does not exist. `touch`
        moves the expiry of a counter with a ttl forward, as a write would."""
        ...

    async def create(
        self, counter: CounterId, count: int, rules: Rules, admin_key_hash: str | None
    ) -> Counter:
        """Create the counter at `count` with `rules` (and the hash of its admin key), or raise
        CounterExistsError when it exists and has not expired."""
        ...

    async def increment(
        self, counter: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        """Add `by` (non-zero, may be negative) and return the new state."""
        ...

    async def set(self, counter: CounterId, count: int, expected_version: int | None = None) -> Replaced:
        """Set the counter to `count`, creating it if needed; return the new and previous values.
        `expected_version` (0: it does not exist): otherwise raise VersionMismatchError."""
        ...

    async def delete(self, counter: CounterId, expected_version: int | None = None) -> Counter | None:
        """Remove the counter and return its last state, or None when it did not exist.
        `expected_version` (0: it does not exist): otherwise raise VersionMismatchError."""
        ...

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        """Up to `limit` counters of `namespace` with keys greater than `after`, sorted by key."""
        ...

    async def ping(self) -> None:
        """Return when the store answers, raise StoreUnavailableError otherwise."""
        ...
