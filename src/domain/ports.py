"""The port every store implements. Adapters live in `adapters/`, one per technology."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from domain.idempotency import Idempotency
from domain.model import Counter, CounterId, Incremented, Page, Replaced
from domain.restore import Restored
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
      that step too (domain.model.check_version) and changes nothing when it does not hold, and
      so with `expected_created_at`, the `created_at` of the life of the counter it may change
      (a counter deleted and made again has another one, whatever its version);
    - `restore` writes a counter with exactly the given state, in one atomic step with the
      reading of what it holds, as `domain.restore` decides.
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

    async def set(
        self,
        counter: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        """Set the counter to `count`, creating it if needed; return the new and previous values.
        Only at `expected_version` (0: it does not exist) and, when given, on the counter made at
        `expected_created_at`: otherwise raise VersionMismatchError."""
        ...

    async def delete(
        self,
        counter: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        """Remove the counter and return its last state, or None when it did not exist.
        Only at `expected_version` (0: it does not exist) and, when given, on the counter made at
        `expected_created_at`: otherwise raise VersionMismatchError."""
        ...

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        """Up to `limit` counters of `namespace` with keys greater than `after`, sorted by key."""
        ...

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        """Up to `limit` namespaces greater than `after` that hold counters, sorted; fewer than
        `limit` when no more follow. A namespace whose counters have all expired may be listed."""
        ...

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        """Write `counter` as it is given (value, times, rules, expiry, admin key hash, and the
        version `state_to_restore` gives it) when `decide_restore` says so, as it judges the
        live counter read in the same atomic step; missing times become the store's now, as
        `state_to_restore` makes them."""
        ...

    async def ping(self) -> None:
        """Return when the store answers, raise StoreUnavailableError otherwise."""
        ...
