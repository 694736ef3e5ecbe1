"""Compare-and-swap with group commit: one write applies a whole batch of operations.

While one write is in flight, further operations queue up and go into the next write together,
so a hot counter costs one read and one write per batch instead of per request. A write is based
on the snapshot it was planned on and fails if anyone wrote since; then the batch is planned
again on a fresh read, within the retry bounds. After a successful write the answer is the next
batch's snapshot, which saves a read, unless other writers are at work (contention: then that
cached state is probably stale and would only cost a failed write, and building on it would
starve them). Before it is sent, every write is measured exactly, `_writers` included (room): one
over the limit is never sent.

Every write, first tries, retries after a conflict and fences alike, takes a token of the write
budget first. It is taken before the read that the write will be based on, so that waiting for
the token does not make that read stale, and given back when the batch needs no write after all,
or when the write was refused by its resourceVersion test (409, or 422 from the `test`): the API
server refused it before writing anything to etcd, as cheap for the cluster as a read, and each
such refusal was caused by another writer's applied write, so they are bounded by the others'
budgets. That holds for one writer per process (group commit); the naive baseline without it
(`refund_refused=False`), whose writers in one process collide with each other, is charged for
every write it sends.
A turn that would come after the batch's time bound is not waited for: the batch fails at once
with 503 (nothing counted), or, with a write still unconfirmed, goes on to settle it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass

from adapters.configmap.api import MAYBE_APPLIED, TRANSIENT, ApiError, ConfigMapApi, Kind
from adapters.configmap.batch import Op, Outcomes, Plan, mark_retrieved, plan
from adapters.configmap.budget import WriteBudget
from adapters.configmap.codec import WRITERS_KEY, Codec, Snapshot, writers_value
from adapters.configmap.contention import Contention
from adapters.configmap.retry import Bounds, after_conflict, pause
from adapters.configmap.room import MAX_BYTES, entry_bytes, store_full
from adapters.configmap.settle import Settlement
from adapters.configmap.stats import ConfigMapStats
from domain.errors import DomainError, OutcomeUnknownError, StoreUnavailableError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _State:
    bounds: Bounds
    use_cache: bool
    settlement: Settlement
    snapshot: Snapshot | None = None  # None: read before planning
    from_cache: bool = False
    holding: bool = False  # a token of the write budget, for the next write
    read_seconds: float = 0.0  # what the read this write is based on took


class Committer:
    """Writes batches to one ConfigMap and resolves each operation's future with its outcome."""

    def __init__(
        self,
        api: ConfigMapApi,
        codec: Codec,
        stats: ConfigMapStats,
        budget: WriteBudget,
        *,
        max_attempts: int,
        max_retry_seconds: float,
        contention: Contention,
        refund_refused: bool = True,
    ) -> None:
        self._api = api
        self._codec = codec
        self._stats = stats
        self._budget = budget
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._seq = itertools.count(1)  # this instance's write numbers, as `_writers` shows them
        self._cache: Snapshot | None = None
        self.contention = contention
        self._refund_refused = refund_refused

    async def commit(self, ops: list[Op], writer: str, *, use_cache: bool) -> None:
        """Apply `ops` in one write and resolve every op's future; never raises."""
        self._stats.batches += 1
        self._stats.operations += len(ops)
        try:
            outcomes = await self._outcomes(ops, writer, use_cache=use_cache)
        except asyncio.CancelledError:
            closed = OutcomeUnknownError(
                "the ConfigMap store was closed during the write; the outcome is unknown"
            )
            for op in ops:
                if not op.future.done():
                    op.future.add_done_callback(mark_retrieved)
                    op.future.set_exception(closed)
            raise
        except DomainError as error:
            outcomes = [error] * len(ops)
        except Exception as error:  # a bug must fail the batch, not kill the writer
            log.exception("configmap_commit_failed", extra={"configmap": self._api.name})
            failed = StoreUnavailableError(f"the ConfigMap store failed: {type(error).__name__}")
            outcomes = [failed] * len(ops)
        for op, outcome in zip(ops, outcomes, strict=True):
            if op.future.done():
                continue
            if isinstance(outcome, BaseException):
                op.future.set_exception(outcome)
            else:
                op.future.set_result(outcome)

    async def _outcomes(self, ops: list[Op], writer: str, *, use_cache: bool) -> Outcomes:
        settlement = Settlement(
            self._api.name, self._codec.where, self._stats, request_timeout=self._api.timeout
        )
        # No caller waits longer than its own bound, however long it queued.
        bounds = Bounds.start(self._max_attempts, self._max_retry_seconds, min(op.deadline for op in ops))
        state = _State(bounds, use_cache, settlement)
        if use_cache and not self.contention.contended():
            state.snapshot = self._cache
            state.from_cache = self._cache is not None
        try:
            return await self._rounds(ops, writer, state)
        finally:
            if state.holding:
                self._budget.refund()

    async def _rounds(self, ops: list[Op], writer: str, state: _State) -> Outcomes:
        settlement = state.settlement
        while True:
            if not state.holding and not await self._take_token(state):
                continue
            if state.snapshot is None:
                await self._read(state)
                continue
            settled = settlement.settle(state.snapshot, writer, state.bounds)
            if settled is not None:
                return settled
            planned = plan(
                [] if settlement.settling else ops, state.snapshot, self._codec, force=bool(settlement)
            )
            if not planned.must_write:
                if state.from_cache:  # decisions without a write need a fresh read
                    state.snapshot = None
                    continue
                return planned.outcomes
            written = await self._write(state, planned, writer)
            if written is not None:
                return written

    async def _take_token(self, state: _State) -> bool:
        """Wait for a write token within the bounds; False when refused and settling goes on."""
        waited = await self._budget.take(state.bounds.deadline - time.monotonic())
        if waited is not None:
            if waited > 0:
                self._stats.budget_waits += 1
                self._stats.budget_wait_seconds += waited
            state.holding = True
            return True
        self._stats.budget_refused += 1
        wait = self._budget.delay()
        rate = f"{self._budget.rate:g} API writes per second"
        if not state.settlement:
            raise StoreUnavailableError(
                f"the write budget of {rate} has no turn for the write to {self._codec.where}"
                " within its time bound; nothing was counted",
                retry_after=max(1, math.ceil(wait)),
            )
        state.bounds.retry_after = max(state.bounds.retry_after, wait)
        state.bounds.last_error = f"no turn within the write budget of {rate}"
        state.bounds.tries = state.bounds.max_tries  # waiting for the turn would pass the deadline
        state.settlement.check(state.bounds)  # raises, or grants the tries that settle the batch
        return False

    async def _read(self, state: _State) -> None:
        started = time.monotonic()
        try:
            state.snapshot = await self._api.read()
        except ApiError as error:
            if error.kind not in TRANSIENT:
                raise state.settlement.failed(self._api.unavailable(error, "get")) from None
            await pause(state.bounds, error, self._stats)
            state.settlement.check(state.bounds)
            return
        state.from_cache = False
        state.read_seconds = time.monotonic() - started
        self.contention.seen(state.snapshot.written)
        if state.use_cache:
            self._cache = state.snapshot

    async def _write(self, state: _State, planned: Plan, writer: str) -> Outcomes | None:
        """One compare-and-swap write: the outcomes when it was applied, None to go round again."""
        assert state.snapshot is not None
        seq = next(self._seq)
        base = state.snapshot
        writers = writers_value(base, writer, seq)
        changes = {**planned.changes, WRITERS_KEY: writers}
        # Every byte of what the write leaves, `_writers` included, counted exactly: a write that
        # grows the data past the limit is never sent (one that does not grow it always may be).
        footprint = self._codec.footprint(base)
        room = footprint.after(base.data, changes, WRITERS_KEY)
        if room.used + entry_bytes(WRITERS_KEY, writers) > MAX_BYTES and room.used > footprint.used:
            raise state.settlement.failed(store_full(self._codec.where))
        assert state.holding, "every write takes a token of the write budget"
        state.holding = False
        started = time.monotonic()
        try:
            state.snapshot = await self._api.write(base, changes)
        except ApiError as error:
            if error.kind in MAYBE_APPLIED:
                state.settlement.lost(seq, base, planned.outcomes, error)
            state.snapshot = await self._after_failed_write(error, base, state)
            state.settlement.check(state.bounds)
            return None
        self._codec.remember(state.snapshot, room)  # the written state is `base` with `changes`
        if state.snapshot.version:
            self.contention.seen(state.snapshot.written)
        self.contention.round_took(state.read_seconds + time.monotonic() - started)
        state.read_seconds = 0.0
        self.contention.wrote()
        if state.use_cache:
            self._cache = state.snapshot if state.snapshot.version else None
        if state.settlement.settling:
            # The fence is written: no earlier attempt can apply any more.
            raise state.settlement.not_counted(state.bounds)
        return planned.outcomes

    async def _after_failed_write(self, error: ApiError, base: Snapshot, state: _State) -> Snapshot | None:
        """Account for a failed write and wait; return the snapshot to retry on (None: read again)."""
        verb = "create" if base.version is None else "patch"
        if error.kind is Kind.NOT_FOUND and base.version is None:
            raise state.settlement.failed(self._api.unavailable(error, verb))  # the namespace is missing
        if error.kind in {Kind.CONFLICT, Kind.NOT_FOUND}:  # NOT_FOUND: deleted since the read
            self._stats.conflicts += 1
            if self._refund_refused:  # refused before anything was written: see the module's docstring
                self._budget.refund()
            self.contention.lost()
            await after_conflict(state.bounds, error)
            return None
        if error.kind not in TRANSIENT:  # denied, invalid, too large: permanent, never retried
            raise state.settlement.failed(self._api.unavailable(error, verb))
        await pause(state.bounds, error, self._stats)
        # After 429 or no connection nothing was applied: the snapshot is still worth a try.
        return None if error.kind in MAYBE_APPLIED else base
