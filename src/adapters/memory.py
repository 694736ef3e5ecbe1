"""A store in a dict: the tests' fake, and a store for one process that needs no durability."""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime

from domain.errors import IdempotencyKeyReusedError
from domain.idempotency import Idempotency
from domain.model import Counter, Incremented, Page, Replaced, add_checked


class InMemoryCounterRepository:
    """Single-process store. No operation awaits in the middle, so each is atomic on the one
    event loop that serves it; a second worker process would see other counts, so the settings
    refuse `memory` with more than one worker."""

    def __init__(self) -> None:
        self._counters: dict[str, Counter] = {}
        self._names: list[str] = []  # sorted, for listing
        self._idempotency: dict[str, tuple[str, float, Counter]] = {}
        self._monotonic = time.monotonic

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    async def get(self, name: str) -> Counter:
        return self._counters.get(name) or Counter(name=name, count=0)

    async def increment(self, name: str, by: int, idempotency: Idempotency | None = None) -> Incremented:
        if idempotency is not None:
            recorded = self._idempotency.get(idempotency.key)
            if recorded is not None and recorded[1] > self._monotonic():
                if recorded[0] != idempotency.fingerprint:
                    raise IdempotencyKeyReusedError(
                        "this Idempotency-Key was first used with a different request"
                    )
                return Incremented(counter=recorded[2], replayed=True)
        current = self._counters.get(name)
        now = self._now()
        count = add_checked(name, 0 if current is None else current.count, by)
        counter = Counter(
            name=name,
            count=count,
            created_at=now if current is None else current.created_at,
            updated_at=now,
        )
        self._store(counter, is_new=current is None)
        if idempotency is not None:
            self._idempotency[idempotency.key] = (
                idempotency.fingerprint,
                self._monotonic() + idempotency.ttl_seconds,
                counter,
            )
            self._expire_keys()
        return Incremented(counter=counter)

    async def set(self, name: str, count: int) -> Replaced:
        current = self._counters.get(name)
        now = self._now()
        counter = Counter(
            name=name,
            count=count,
            created_at=now if current is None else current.created_at,
            updated_at=now,
        )
        self._store(counter, is_new=current is None)
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

    def _store(self, counter: Counter, *, is_new: bool) -> None:
        self._counters[counter.name] = counter
        if is_new:
            bisect.insort(self._names, counter.name)

    def _expire_keys(self) -> None:
        # Amortised clean-up: only look when the table has grown, so increments stay O(1).
        if len(self._idempotency) % 1024:
            return
        now = self._monotonic()
        for key in [k for k, (_, expires, _) in self._idempotency.items() if expires <= now]:
            del self._idempotency[key]
