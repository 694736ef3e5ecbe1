"""A store in a dict: the tests' fake, and a store for one process that needs no durability."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from domain.errors import CounterExistsError
from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, CounterId, Incremented, Page, Replaced, add_checked, check_version
from domain.restore import Restored, decide_restore, state_to_restore
from domain.rules import Rules, expired

# Amortised clean-up of expired Idempotency-Key records: only look when the table has grown by
# this much, so increments stay O(1).
_SWEEP_EVERY = 1024


def _unobserved(_state: Counter) -> None:
    """No one listens to the changes."""


def _check(
    counter: CounterId, current: Counter | None, version: int | None, created_at: datetime | None
) -> None:
    if current is None:
        check_version(counter, version, 0, created_at)
    else:
        check_version(counter, version, current.version, created_at, current.created_at)


class InMemoryCounterRepository:
    """Single-process store. No operation awaits in the middle, so each is atomic on the one
    event loop that serves it; a second worker process would see other counts, so the settings
    refuse `memory` with more than one worker.

    Counters are keyed by their CounterId itself, so no two ids share one, and each namespace
    keeps its keys sorted for listing.

    One wall clock (`time.time()`) stamps the counters and dates the Idempotency-Key records, as
    in the other stores, so that a record's expiry and the timestamps it replays agree."""

    def __init__(self) -> None:
        self._counters: dict[CounterId, Counter] = {}
        self._keys: dict[str, list[str]] = {}  # namespace -> its keys, sorted, for listing
        self._records: dict[str, IdempotencyRecord] = {}  # by Idempotency.record_key
        self._expiring: set[CounterId] = set()  # counters with an expiry, swept now and then
        self._writes = 0
        # Told of every change as it is made: the new state, or the counter at 0 (version 0)
        # once it is gone (adapters.memory_changes listens here).
        self.on_change: Callable[[Counter], None] = _unobserved

    async def get(self, counter: CounterId, touch: bool = False) -> Counter:
        now = time.time()
        current = self._live(counter, now)
        if current is None:
            return Counter(counter, 0)
        if touch and current.rules is not None and current.rules.ttl_seconds is not None:
            current = replace(current, expires_at=current.rules.expires_at(datetime.fromtimestamp(now, UTC)))
            self._counters[counter] = current
        return current

    async def create(
        self, counter: CounterId, count: int, rules: Rules, admin_key_hash: str | None
    ) -> Counter:
        now = time.time()
        if self._live(counter, now) is not None:
            raise CounterExistsError(f"counter {str(counter)!r} exists")
        return self._write(counter, count, now, rules=rules, admin_key_hash=admin_key_hash)

    async def increment(
        self, counter: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        now = time.time()
        if idempotency is not None:
            replay = decide(idempotency, self._records.get(idempotency.record_key), now)
            if replay is not None:
                return replay
        current = self._live(counter, now)
        if current is not None and current.rules is not None:
            current.rules.check_step(counter, by)
        state = self._write(counter, add_checked(counter, 0 if current is None else current.count, by), now)
        if idempotency is not None:
            self._records[idempotency.record_key] = idempotency.record(state, now)
            self._sweep(now)
        return Incremented(counter=state)

    async def set(
        self,
        counter: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        now = time.time()
        current = self._live(counter, now)
        _check(counter, current, expected_version, expected_created_at)
        state = self._write(counter, count, now)
        return Replaced(counter=state, previous=0 if current is None else current.count)

    async def delete(
        self,
        counter: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        current = self._live(counter, time.time())
        _check(counter, current, expected_version, expected_created_at)
        if current is not None:
            self._remove(counter)
        return current

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        keys = self._keys.get(namespace, [])
        start = 0 if after is None else bisect.bisect_right(keys, after)
        now = datetime.fromtimestamp(time.time(), UTC)
        live = (self._counters[CounterId(namespace, k)] for k in keys[start:])
        page: list[Counter] = []
        more = False
        for counter in live:
            if expired(counter.expires_at, now):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(counter)
        return Page(counters=page, next_after=page[-1].key if more and page else None)

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        names = sorted(self._keys)
        start = 0 if after is None else bisect.bisect_right(names, after)
        return names[start : start + limit]

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC)
        existing = self._live(counter.id, now)
        outcome = decide_restore(existing, counter, replace=replace, now=stamp)
        if not outcome.writes:
            return Restored(outcome, existing or counter)
        state = state_to_restore(counter, existing, stamp)
        self._counters[counter.id] = state
        if state.expires_at is not None:
            self._expiring.add(counter.id)
        else:
            self._expiring.discard(counter.id)
        if existing is None:
            bisect.insort(self._keys.setdefault(counter.namespace, []), counter.key)
        return Restored(outcome, state)

    async def ping(self) -> None:
        return None

    def _live(self, counter: CounterId, now: float) -> Counter | None:
        """The counter, or None when it does not exist; an expired one is removed here."""
        current = self._counters.get(counter)
        if current is not None and expired(current.expires_at, datetime.fromtimestamp(now, UTC)):
            self._remove(counter)
            return None
        return current

    def _remove(self, counter: CounterId) -> None:
        self._expiring.discard(counter)
        del self._counters[counter]
        keys = self._keys[counter.namespace]
        del keys[bisect.bisect_left(keys, counter.key)]
        if not keys:
            del self._keys[counter.namespace]
        self.on_change(Counter(counter, 0))

    def _write(
        self,
        counter: CounterId,
        count: int,
        now: float,
        *,
        rules: Rules | None = None,
        admin_key_hash: str | None = None,
    ) -> Counter:
        """Store `count` for `counter` at `now`, creating the counter (and its place among the
        sorted keys of its namespace) when it is new, with `rules`; an existing one keeps its
        rules and has its expiry moved forward. Callers have removed an expired one (_live)."""
        current = self._counters.get(counter)
        stamp = datetime.fromtimestamp(now, UTC)
        if current is not None:
            rules, admin_key_hash = current.rules, current.admin_key_hash
        created = stamp if current is None else current.created_at
        expires_at = None if rules is None else rules.expires_at(stamp)
        version = 1 if current is None else current.version + 1
        state = Counter(counter, count, created, stamp, rules, expires_at, admin_key_hash, version)
        self._counters[counter] = state
        if expires_at is not None:
            self._expiring.add(counter)
        if current is None:
            bisect.insort(self._keys.setdefault(counter.namespace, []), counter.key)
        self._writes += 1
        self.on_change(state)
        if self._writes % _SWEEP_EVERY == 0:
            # Expired counters nobody touches again are pruned here, amortised over the writes.
            for expiring in list(self._expiring):
                self._live(expiring, now)
        return state

    def _sweep(self, now: float) -> None:
        if len(self._records) % _SWEEP_EVERY:
            return
        for record_key in [k for k, record in self._records.items() if record.expired(now)]:
            del self._records[record_key]
