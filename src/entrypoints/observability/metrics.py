"""The service's metric families, and their rendering in the Prometheus text format.

With one process the families live in a registry of the app's own. With several workers
(`counter serve --workers N`) prometheus-client's multiprocess mode is on: each worker writes
its values to files in PROMETHEUS_MULTIPROC_DIR (set up by entrypoints.observability.multiprocess
before the workers start) and a scrape, answered by any worker, sums every worker's files.

Label children are made once, where their values are known in advance (the store's operations),
or once per new combination (route, method, status), and the hot path's updates are buffered
(buffered.py): a metric there costs an addition to an integer, never a label lookup or a write
to a shared file. `flush` writes them, every second, before a scrape and at the end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from entrypoints.observability.buffered import BufferedCounter, BufferedHistogram
from entrypoints.observability.multiprocess import MULTIPROC_DIR_VARIABLE

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Requests: most answers take well under a millisecond here, the ConfigMap store's tens of ms.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
STORE_OPERATIONS = ("get", "increment", "set", "delete", "list", "ping")
FLUSH_INTERVAL_SECONDS = 1.0  # how far behind a scrape may see the other workers' counts


class _Flushable(Protocol):
    def flush(self) -> None: ...


def multiprocess_mode() -> bool:
    """True when values go to the files of several processes (decided once, by prometheus-client,
    when it is first imported: the variable must be set before)."""
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


class Metrics:
    """Every metric family of one app (one server process)."""

    def __init__(self, *, store: str, version: str = "", registry: CollectorRegistry | None = None) -> None:
        version = version or metadata.version("counter-web-server")
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the `_created` series double every family for nothing here
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.store = store
        r = self.registry
        self.requests = Counter(
            "counter_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "counter_request_duration_seconds",
            "Time from routing to the last byte of the answer, by route template and method",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.increments = Counter(
            "counter_increments", "Increments applied (replays of an Idempotency-Key are not)", registry=r
        )
        self.store_duration = Histogram(
            "counter_store_operation_duration_seconds",
            "Time of one call of the store, by store and operation",
            ["store", "operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "counter_store_errors",
            "Store calls that failed (unavailable, unknown outcome, full, unreadable data or a bug);"
            " refusals of bad input or overflow are not errors",
            ["store", "operation"],
            registry=r,
        )
        self.build_info = Gauge(
            "counter_build_info", "The running version and store (always 1)", ["version", "store"],
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.build_info.labels(version, store).set(1)
        self.event_streams_open = Gauge(
            "counter_event_streams_open", "Live-update streams (GET .../events) open now",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self._buffers: list[_Flushable] = []
        self._stats_syncs: list[Callable[[], None]] = []
        self.store_duration_of = {
            op: self.buffered_histogram(self.store_duration.labels(store, op)) for op in STORE_OPERATIONS
        }
        # Failures are rare and worth seeing at once: written directly.
        self.store_errors_of = {op: self.store_errors.labels(store, op) for op in STORE_OPERATIONS}
        self.increment_applied = self.buffered_counter(self.increments).inc

    def buffered_counter(self, child: Counter) -> BufferedCounter:
        buffered = BufferedCounter(child)
        self._buffers.append(buffered)
        return buffered

    def buffered_histogram(self, child: Histogram) -> BufferedHistogram:
        buffered = BufferedHistogram(child)
        self._buffers.append(buffered)
        return buffered

    def add_stats_sync(self, sync: Callable[[], None]) -> None:
        """`sync` copies a store's own counters into metrics; it runs before each scrape."""
        self._stats_syncs.append(sync)

    def flush(self) -> None:
        """Write what the buffers gathered, and read the stores' own counters in."""
        for sync in self._stats_syncs:
            sync()
        for buffer in self._buffers:
            buffer.flush()

    @asynccontextmanager
    async def flushing(self, interval: float) -> AsyncIterator[None]:
        """While the block runs (the app serves), `flush` every `interval` seconds, and once
        more at its end."""

        async def every_interval() -> None:
            while True:
                await asyncio.sleep(interval)
                self.flush()

        task = asyncio.get_running_loop().create_task(every_interval())
        try:
            yield
        finally:
            task.cancel()
            self.flush()

    def render(self) -> bytes:
        """The text a scrape gets: every worker's values when there are several."""
        self.flush()
        if multiprocess_mode():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
