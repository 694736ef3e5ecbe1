"""The port on a ConfigMap: operations queue for one writer task, reads share one GET.

The queue is what makes group commit work: every `increment`, `set` and `delete` waits on its own
future while the writer task takes up to `max_batch` queued operations at a time and commits them
in one write. A caller cancelled before its turn is skipped, so it was not applied. With a write
budget the writer waits for its token before it takes the next batch, so everything that queued
meanwhile goes into that write; a caller still queued at the end of its time bound is refused
(503, nothing counted), which also keeps the queue from growing under a load beyond the budget.
When other writers (other processes, other replicas) are at work on the same ConfigMap, the
writer task leaves them a turn after each of its writes (contention), and what queues meanwhile
goes into its next write.
`coalesce=False` (one read and one write per operation, each concurrent operation a writer of
its own) is the naive baseline for benchmarks: under contention it needs far more tries than the
bounds allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypedDict, Unpack

from kubernetes import client as k8s_client

from adapters.configmap.api import ApiError, ConfigMapApi, Kind, new_api_client, resolve_namespace
from adapters.configmap.batch import Op
from adapters.configmap.budget import WriteBudget
from adapters.configmap.codec import Codec
from adapters.configmap.commit import Committer
from adapters.configmap.contention import Contention
from adapters.configmap.names import counter_of, data_key
from adapters.configmap.reads import SharedReader
from adapters.configmap.stats import ConfigMapStats
from domain.errors import StoreUnavailableError
from domain.idempotency import Idempotency
from domain.model import Counter, CounterId, Incremented, Page, Replaced
from domain.restore import Restored
from domain.rules import Rules

DEFAULT_THREADS: Final = 8


class ConfigMapCounterRepository:
    """Counters in one ConfigMap. Blocking client calls run in a small dedicated thread pool.

    With `coalesce=True` (the default) one writer task per repository applies queued operations in
    batches of up to `max_batch`, one compare-and-swap write per batch; with `coalesce=False`
    every operation reads and writes on its own (the naive baseline). Conflicts, 429, 5xx and
    timeouts are retried with jittered exponential backoff within `max_attempts` tries and
    `max_retry_seconds`; past that the operations fail with StoreUnavailableError and were not
    counted, or, when a write that may still land (a 5xx, a timeout) could not be settled by
    re-reading and fencing, with OutcomeUnknownError. A full ConfigMap refuses new counter names
    and new Idempotency-Keys only (room), before writing.
    `max_writes_per_second` (0: no limit, the default here; the service passes
    COUNTER_CONFIGMAP_MAX_WRITES_PER_SECOND) paces the API writes of this instance (budget).
    """

    def __init__(
        self,
        api: Any,
        name: str,
        namespace: str,
        *,
        coalesce: bool = True,
        max_batch: int = 512,
        max_attempts: int = 10,
        max_retry_seconds: float = 10.0,
        request_timeout: float = 5.0,
        threads: int = DEFAULT_THREADS,
        max_writes_per_second: float = 0.0,
    ) -> None:
        if max_batch < 1 or max_attempts < 1 or threads < 1:
            raise ValueError("max_batch, max_attempts and threads must be at least 1")
        self.name = name
        self.namespace = namespace
        self.coalesce = coalesce
        self.stats = ConfigMapStats()
        self._max_batch = max_batch
        self._max_retry_seconds = max_retry_seconds
        self.budget = WriteBudget(max_writes_per_second)
        self._api = ConfigMapApi(
            api, name, namespace, timeout=request_timeout, threads=threads, stats=self.stats
        )
        self._codec = Codec(namespace, name)
        self._id = secrets.token_hex(6)  # this instance's name in `_writers`
        self.contention = Contention(self._id)
        self._committer = Committer(
            self._api,
            self._codec,
            self.stats,
            self.budget,
            max_attempts=max_attempts,
            max_retry_seconds=max_retry_seconds,
            contention=self.contention,
            refund_refused=coalesce,
        )
        self._reader = SharedReader(
            self._api, self.stats, max_attempts=max_attempts, max_retry_seconds=max_retry_seconds
        )
        self._free_slots: list[int] = []
        self._slots = itertools.count(1)
        self._pending: deque[Op] = deque()
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    # --- counters that tests and benchmarks read ------------------------------------------------

    @property
    def api_writes(self) -> int:
        return self.stats.api_writes

    @property
    def api_reads(self) -> int:
        return self.stats.api_reads

    @property
    def conflicts(self) -> int:
        return self.stats.conflicts

    @property
    def max_writes_per_second(self) -> float:
        """The write budget, 0 for none: API writes stay within it times t plus `budget.burst`."""
        return self.budget.rate

    # --- the port -------------------------------------------------------------------------------

    async def get(self, name: CounterId, touch: bool = False) -> Counter:
        snapshot = await self._reader.read()
        value = self._codec.value(snapshot.data, data_key(name))
        if value is None or value.expired(time.time()):
            return Counter(name, 0)
        if touch and value.rules is not None and value.rules.ttl_seconds is not None:
            touched: Counter = await self._submit("touch", name, 0, None)  # moves the expiry: a write
            return touched
        return value.counter(name)

    async def create(self, name: CounterId, count: int, rules: Rules, admin_key_hash: str | None) -> Counter:
        result: Counter = await self._submit(
            "create", name, count, None, rules=rules, admin_key_hash=admin_key_hash
        )
        return result

    async def increment(
        self, name: CounterId, by: int, idempotency: Idempotency | None = None
    ) -> Incremented:
        result: Incremented = await self._submit("increment", name, by, idempotency)
        return result

    async def set(
        self,
        name: CounterId,
        count: int,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Replaced:
        made = expected_created_at
        result: Replaced = await self._submit(
            "set", name, count, None, expected_version=expected_version, expected_created_at=made
        )
        return result

    async def delete(
        self,
        name: CounterId,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
    ) -> Counter | None:
        made = expected_created_at
        result: Counter | None = await self._submit(
            "delete", name, 0, None, expected_version=expected_version, expected_created_at=made
        )
        return result

    async def list(self, namespace: str, after: str | None, limit: int) -> Page:
        snapshot = await self._reader.read()
        stored = ((counter_of(k), k) for k in snapshot.data)
        names = sorted(
            (c.key, k)
            for c, k in stored
            if c is not None and c.namespace == namespace and (after is None or c.key > after)
        )
        now = time.time()
        counters: list[Counter] = []
        more = False
        for key, name in names:  # expired counters are skipped, and only a page is read
            value = self._codec.value(snapshot.data, name)
            if value is None or value.expired(now):
                continue
            if len(counters) == limit:
                more = True
                break
            counters.append(value.counter(CounterId(namespace, key)))
        return Page(counters=counters, next_after=counters[-1].key if more and counters else None)

    async def namespaces(self, after: str | None, limit: int) -> Sequence[str]:
        snapshot = await self._reader.read()
        found = {c.namespace for c in map(counter_of, snapshot.data) if c is not None}
        return sorted(n for n in found if after is None or n > after)[:limit]

    async def restore(self, counter: Counter, replace: bool = False) -> Restored:
        result: Restored = await self._submit(
            "restore", counter.id, 0, None, restored=counter, replace=replace
        )
        return result

    async def ping(self) -> None:
        try:
            await self._api.ping()
        except ApiError as error:
            if error.kind is not Kind.NOT_FOUND:  # a missing ConfigMap is created on the first write
                raise self._api.unavailable(error, "get") from None

    async def aclose(self) -> None:
        """Stop the writer, fail what is still queued, release the threads."""
        if self._closed:
            return
        self._closed = True
        self._api.closed = True
        if self._writer is not None:
            self._writer.cancel()
        await self._reader.aclose()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        closed = StoreUnavailableError("the ConfigMap store is closed")
        while self._pending:
            op = self._pending.popleft()
            if not op.future.done():
                op.future.set_exception(closed)
        await self._api.shutdown()

    # --- the queue ------------------------------------------------------------------------------

    async def _submit(
        self,
        kind: Literal["increment", "set", "delete", "create", "touch", "restore"],
        name: CounterId,
        amount: int,
        idem: Idempotency | None,
        *,
        rules: Rules | None = None,
        admin_key_hash: str | None = None,
        expected_version: int | None = None,
        expected_created_at: datetime | None = None,
        restored: Counter | None = None,
        replace: bool = False,
    ) -> Any:
        if self._closed:
            raise StoreUnavailableError("the ConfigMap store is closed")
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self._max_retry_seconds
        op = Op(
            kind,
            name,
            amount,
            idem,
            loop.create_future(),
            deadline,
            rules,
            admin_key_hash,
            expected_version,
            expected_created_at,
            restored,
            replace,
        )
        if not self.coalesce:
            # A writer recognises a lost write by its entry in `_writers`, which a concurrent write
            # under the same name would overwrite: each operation in flight writes as its own.
            slot = self._free_slots.pop() if self._free_slots else next(self._slots)
            try:
                await self._committer.commit([op], f"{self._id}.{slot}", use_cache=False)
            finally:
                self._free_slots.append(slot)
            return op.future.result()
        self._pending.append(op)
        if self._writer is None:
            self._wakeup = asyncio.Event()
            self._writer = loop.create_task(self._write_loop())
        assert self._wakeup is not None
        self._wakeup.set()
        return await op.future

    async def _write_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                # Whatever queues while the writer leaves other writers their turn, or waits for
                # its token, goes into that write.
                await self._leave_the_turn()
                waited = await self.budget.ready(self._pending[0].deadline - time.monotonic())
                if waited:
                    self.stats.budget_waits += 1
                    self.stats.budget_wait_seconds += waited
                batch: list[Op] = []
                now = time.monotonic()
                while self._pending and len(batch) < self._max_batch:
                    op = self._pending.popleft()
                    if op.future.done():  # a caller cancelled before its turn: not applied
                        continue
                    if op.deadline <= now:
                        self.stats.expired_in_queue += 1
                        op.future.set_exception(self._expired())
                        continue
                    batch.append(op)
                if batch:
                    await self._committer.commit(batch, self._id, use_cache=True)

    async def _leave_the_turn(self) -> None:
        """Under contention, wait out the gap after this writer's last write (contention)."""
        gap = min(self.contention.not_before, self._pending[0].deadline) - time.monotonic()
        if gap > 0:
            self.stats.turns_left += 1
            await asyncio.sleep(gap)

    def _expired(self) -> StoreUnavailableError:
        limit = f" (at most {self.budget.rate:g} API writes per second)" if self.budget.limited else ""
        return StoreUnavailableError(
            f"the ConfigMap store {self.namespace}/{self.name} had no turn to write within"
            f" {self._max_retry_seconds:g} s{limit}; nothing was counted",
            retry_after=max(1, math.ceil(self.budget.delay())),
        )


class ConfigMapOptions(TypedDict, total=False):
    """The repository's tuning, passed through `open_configmap_repository` unchanged."""

    coalesce: bool
    max_batch: int
    max_attempts: int
    max_retry_seconds: float
    request_timeout: float
    threads: int
    max_writes_per_second: float


async def open_configmap_repository(
    name: str,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    **options: Unpack[ConfigMapOptions],
) -> AsyncIterator[ConfigMapCounterRepository]:
    """Resource: a repository on ConfigMap `name`, closed with its client at the end."""
    # One HTTP connection per API thread, so that no thread waits for a connection.
    pool_size = options.get("threads", DEFAULT_THREADS)
    api_client = await asyncio.to_thread(new_api_client, kubeconfig, context=context, pool_size=pool_size)
    try:
        resolved = await asyncio.to_thread(resolve_namespace, namespace, kubeconfig)
        repository = ConfigMapCounterRepository(k8s_client.CoreV1Api(api_client), name, resolved, **options)
        try:
            yield repository
        finally:
            await repository.aclose()
    finally:
        await asyncio.to_thread(api_client.close)
