"""A store in a dict: the tests' fake, and a store for one process that needs no durability."""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime

from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, Incremented, Page, Replaced, add_checked

# Amortised clean-up of expired Idempotency-Key records: only look when the table has grown by
# this much, so increments stay O(1).
_SWEEP_EVERY = 1024


class InMemoryCounterRepository:
    """Single-process store. No operation awaits in the middle, so each is atomic on the one
    event loop that serves it; a second worker process would see other counts, so the settings
    refuse `memory` with more than one worker.

    One wall clock (`time.time()`) stamps the counters and dates the Idempotency-Key records, as
    in the other stores, so that a record's expiry and the timestamps it replays agree."""

    def __init__(self) -> None:
        self._counters: dict[str, Counter] = {}
        self._names: list[str] = []  # sorted, for listing
        self._records: dict[str, IdempotencyRecord] = {}  # by Idempotency.record_key

    async def get(self, name: str) -> Counter:
        return self._counters.get(name) or Counter(name=name, count=0)

    async def increment(self, name: str, by: int, idempotency: Idempotency | None = None) -> Incremented:
        now = time.time()
        if idempotency is not None:
            replay = decide(idempotency, self._records.get(idempotency.record_key), now)
            if replay is not None:
                return replay
        current = self._counters.get(name)
        counter = self._write(name, add_checked(name, 0 if current is None else current.count, by), now)
        if idempotency is not None:
            self._records[idempotency.record_key] = idempotency.record(counter, now)
            self._sweep(now)
        return Incremented(counter=counter)

    async def set(self, name: str, count: int) -> Replaced:
        current = self._counters.get(name)
        counter = self._write(name, count, time.time())
        return Replaced(counter=counter, previous=0 if current is None else current.count)

    async def delete(self, name: str) -> Counter | None:
        current = self._counters.pop(name, None)
        if current is not None:
            del self._names[bisect.bisect_left(self._names, name)]
        return current

    async def list(self, after: str | None, limit: int) -> Page:
        start = 0 if after is None else bisect.bisect_right(self._names, after)
        names = self._names[start : start + limit]
        more = start + limit < len(self._names)
        return Page(
            counters=[self._counters[n] for n in names],
            next_after=names[-1] if more and names else None,
        )

    async def ping(self) -> None:
        return None

    def _write(self, name: str, count: int, now: float) -> Counter:
        """Store `count` under `name` at `now`, creating the counter (and its place in the sorted
        names) when it is new."""
        current = self._counters.get(name)
        stamp = datetime.fromtimestamp(now, UTC)
        counter = Counter(name, count, stamp if current is None else current.created_at, stamp)
        self._counters[name] = counter
        if current is None:
            bisect.insort(self._names, name)
        return counter

    def _sweep(self, now: float) -> None:
        if len(self._records) % _SWEEP_EVERY:
            return
        for record_key in [k for k, record in self._records.items() if record.expired(now)]:
            del self._records[record_key]
