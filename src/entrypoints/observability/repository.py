"""Decorators of the CounterRepository port, applied at the composition root (container.py):
every store is measured and traced the same way, and no adapter knows of either.

`MeasuredRepository` times each call (a histogram by store and operation), counts the calls
that failed, and counts the increments applied. `TracedRepository` (only when tracing is on)
makes a child span of the request's span for each call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from domain.errors import DomainError, StoreCorruptedError, StoreUnavailableError
from domain.idempotency import Idempotency
from domain.model import Counter, CounterId, Incremented, Page, Replaced
from domain.ports import CounterRepository
from domain.restore import Restored
from domain.rules import Rules
from entrypoints.observability.metrics import Metrics
from entrypoints.observability.store_stats import stats_sync
from entrypoints.observability.tracing import Tracing

T = TypeVar("T")

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span, Tracer


def is_store_failure(error: Exception) -> bool:
    """A failure of the store (or a bug), as opposed to a refusal of what the client asked:
    a bad name, an overflow, a reused Idempotency-Key."""
    failure = isinstance(error, StoreUnavailableError | StoreCorruptedError)
    return failure or not isinstance(error, DomainError)


class _Probe:
    """The duration histogram and failure counter of one operation, their children's bound
    methods looked up once: the hot path pays for the updates only."""

    __slots__ = ("failed", "observe")

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self.observe = metrics.store_duration_of[operation].observe
        self.failed = metrics.store_errors_of[operation].inc

    async def measure(self, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception as error:
            if is_store_failure(error):
                self.failed()
            raise
        finally:
            self.observe(time.perf_counter() - started)


class MeasuredRepository:
    """Times, and counts the failures of, every call of `inner`."""

    def __init__(self, inner: CounterRepository, metrics: Metrics) -> None:
        self.inner = inner
        self._increment_applied = metrics.increment_applied
        self._get = _Probe(metrics, "get")
        self._increment = _Probe(metrics, "increment")
        self._set = _Probe(metrics, "set")
        self._delete = _Probe(metrics, "delete")
        self._list = _Probe(metrics, "list")
        self._ping = _Probe(metrics, "ping")

    async def get(self, name: CounterId, touch: bool = False) -> Counter:
        return await self._get.measure(self.inner.get(name, touch))

    async def create(self, name: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        # Measured with the sets: both write a counter at a given value.
        return await self._set.measure(self.inner.create(name, count, rules, admin_key_hash))

    async def increment(
        self, name: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        result = await self._increment.measure(self.inner.increment(name, by, idempotency))
        if not result.replayed:
            self._increment_applied()
        return result

    async def set(
        self,
        name: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        return await self._set.measure(self.inner.set(name, count, expected_version, expected_created_at))

    async def delete(
        self,
        name: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        return await self._delete.measure(self.inner.delete(name, expected_version, expected_created_at))

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        return await self._list.measure(self.inner.list(namespace, after, limit))

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        return await self._list.measure(self.inner.namespaces(after, limit))

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        # Measured with the sets, like create: a counter written at a given value.
        return await self._set.measure(self.inner.restore(counter, replace))

    async def ping(self) -> None:
        await self._ping.measure(self.inner.ping())


class TracedRepository:
    """A child span (`store <operation>`, kind CLIENT) of the current span for every call."""

    def __init__(self, inner: CounterRepository, tracer: Tracer, store: str) -> None:
        from opentelemetry.trace import SpanKind

        self.inner = inner
        self._tracer = tracer
        self._kind = SpanKind.CLIENT
        self._attributes = {"db.system.name": store, "counter.store": store}

    def _span(self, operation: str, name: CounterId | None = None) -> AbstractContextManager[Span]:
        attributes = {**self._attributes, "db.operation.name": operation}
        if name is not None:
            attributes["counter.name"] = str(name)  # the key alone in the default namespace
        span_name = f"store {operation}"
        return self._tracer.start_as_current_span(span_name, kind=self._kind, attributes=attributes)

    async def get(self, name: CounterId, touch: bool = False) -> Counter:
        with self._span("get", name):
            return await self.inner.get(name, touch)

    async def create(self, name: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        with self._span("create", name):
            return await self.inner.create(name, count, rules, admin_key_hash)

    async def increment(
        self, name: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        with self._span("increment", name):
            return await self.inner.increment(name, by, idempotency)

    async def set(
        self,
        name: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        with self._span("set", name):
            return await self.inner.set(name, count, expected_version, expected_created_at)

    async def delete(
        self,
        name: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        with self._span("delete", name):
            return await self.inner.delete(name, expected_version, expected_created_at)

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        with self._span("list"):
            return await self.inner.list(namespace, after, limit)

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        with self._span("namespaces"):
            return await self.inner.namespaces(after, limit)

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        with self._span("restore", counter.id):
            return await self.inner.restore(counter, replace)

    async def ping(self) -> None:
        with self._span("ping"):
            await self.inner.ping()


def instrument_repository(
    repository: CounterRepository, *, metrics: Metrics, tracing: Tracing, store: str
) -> CounterRepository:
    """The store as the service sees it: traced (when tracing is on), then measured. Its own
    counters, if it keeps any, are read into the metrics too (store_stats)."""
    sync = stats_sync(repository, metrics)
    if sync is not None:
        metrics.add_stats_sync(sync)
    inner = repository
    if tracing.tracer is not None:
        inner = TracedRepository(inner, tracing.tracer, store)
    return MeasuredRepository(inner, metrics)
