"""A store in a dict: the tests' fake, and a store for one process that needs no durability."""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime

from domain.idempotency import Idempotency, IdempotencyRecord, decide
from domain.model import Counter, CounterId, Incremented, Page, Replaced, add_checked

# Amortised clean-up of expired Idempotency-Key records: only look when the table has grown by
# this much, so increments stay O(1).
_SWEEP_EVERY = 1024


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

    async def get(self, counter: CounterId) -> Counter:
        return self._counters.get(counter) or Counter(counter, 0)

    async def increment(
        self, counter: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        now = time.time()
        if idempotency is not None:
            replay = decide(idempotency, self._records.get(idempotency.record_key), now)
            if replay is not None:
                return replay
        current = self._counters.get(counter)
        state = self._write(counter, add_checked(counter, 0 if current is None else current.count, by), now)
        if idempotency is not None:
            self._records[idempotency.record_key] = idempotency.record(state, now)
            self._sweep(now)
        return Incremented(counter=state)

    async def set(self, counter: CounterId, count: int) -> Replaced:
        current = self._counters.get(counter)
        state = self._write(counter, count, time.time())
        return Replaced(counter=state, previous=0 if current is None else current.count)

    async def delete(self, counter: CounterId) -> Counter | None:
        current = self._counters.pop(counter, None)
        if current is not None:
            keys = self._keys[counter.namespace]
            del keys[bisect.bisect_left(keys, counter.key)]
            if not keys:
                del self._keys[counter.namespace]
        return current

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        keys = self._keys.get(namespace, [])
        start = 0 if after is None else bisect.bisect_right(keys, after)
        page = keys[start : start + limit]
        more = start + limit < len(keys)
        return Page(
            counters=[self._counters[CounterId(namespace, k)] for k in page],
            next_after=page[-1] if more and page else None,
        )

    async def ping(self) -> None:
        return None

    def _write(self, counter: CounterId, count: int, now: float) -> Counter:
        """Store `count` for `counter` at `now`, creating the counter (and its place among the
        sorted keys of its namespace) when it is new."""
        current = self._counters.get(counter)
        stamp = datetime.fromtimestamp(now, UTC)
        state = Counter(counter, count, stamp if current is None else current.created_at, stamp)
        self._counters[counter] = state
        if current is None:
            bisect.insort(self._keys.setdefault(counter.namespace, []), counter.key)
        return state

    def _sweep(self, now: float) -> None:
        if len(self._records) % _SWEEP_EVERY:
            return
        for record_key in [k for k, record in self._records.items() if record.expired(now)]:
            del self._records[record_key]
